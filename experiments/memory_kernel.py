"""Does a KMN-style kernel on STM-1's memory read keep masks off look-alikes far away?

Kernelized Memory Network (Seong et al., ECCV 2020): each memory position finds its best match in the
query frame, and its affinity to every query position is weighted by a Gaussian of the distance to that
match, so a memory pixel cannot pour its value into a far look-alike. Applied at read time only, to the
shipped weights (no training). Runs ``msn evaluate`` with STM.read replaced:

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/memory_kernel.py --sigma 3 -- --propagators stm \
        --selectors first,msn --data-dir runs/built_train --sequences ... --out-dir runs/kernel3

``--sigma 0`` runs the plain read (the same code path, for a like-for-like baseline). ``--topk K``
keeps, for each query position, only its K strongest memory positions before the softmax (STCN's and
XMem's top-k read, applied at test time only as STCN does); it combines with the kernel.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from msn_core import cli
from msn_core.models.stm import STM


def kernel_read(sigma: float, topk: int = 0):
    def read(self, q_key, m_keys, m_values):
        ck, h, w = q_key.shape[1:]
        o, t, cv = m_values.shape[:3]
        hm, wm = m_keys.shape[-2:]
        mk = m_keys.permute(1, 0, 2, 3).reshape(ck, -1)
        logits = mk.t() @ q_key.reshape(ck, h * w) / math.sqrt(ck)  # (M, N)
        if sigma > 0:
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            qy, qx = ys.reshape(-1).float(), xs.reshape(-1).float()
            best = logits.argmax(1)  # each memory position's best query position
            d2 = (qy[best][:, None] - qy[None]) ** 2 + (qx[best][:, None] - qx[None]) ** 2
            logits = logits - d2 / (2 * sigma**2)
        if 0 < topk < logits.shape[0]:
            kth = logits.topk(topk, dim=0).values[-1:]  # (1, N): each query position's K-th best
            logits = logits.masked_fill(logits < kth, float("-inf"))
        affinity = torch.softmax(logits, dim=0)
        mv = m_values.permute(0, 2, 1, 3, 4).reshape(o, cv, -1)
        return (mv @ affinity).reshape(o, cv, h, w)

    return read


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sigma", type=float, required=True, help="kernel width in stride-16 cells; 0 = plain read")
    p.add_argument("--topk", type=int, default=0, help="memory positions kept per query position; 0 = all")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the arguments of msn evaluate")
    args = p.parse_args()
    STM.read = kernel_read(args.sigma, args.topk)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return cli.main(["evaluate", *rest])


if __name__ == "__main__":
    sys.exit(main())
