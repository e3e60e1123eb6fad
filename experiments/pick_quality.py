"""How well MSN picks on the mined training targets: mean quality (IoU) of the candidate that each
rule picks (MSN's argmax, always the annotated frame, always the newest, the best possible), read
from a mining cache that ``msn train msn`` wrote.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/pick_quality.py MINED.json WORK_DIR MSN.safetensors [...]

MINED.json: the mining cache (``mined_tpn-mask_*.json``) that ``msn train msn`` wrote into its output
folder, e.g. the one of the views-only TPN mining in results/training.md; WORK_DIR: the folder holding the
feature caches of the same run. TPN masks only.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from msn_core.config import BackboneConfig, MSNConfig, default_data_dir, from_dict
from msn_core.hub import load_named
from msn_core.models.backbone import build_backbone
from msn_core.models.selection import MSN
from msn_core.training.data import TRAIN_SEQUENCES, VIEWS, cached_features, load_sequence, sequence_view
from msn_core.training.samples import first_frame_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mined", help="mining cache JSON written by `msn train msn`")
    ap.add_argument("work_dir", help="folder with the feature caches of the same training run")
    ap.add_argument("weights", nargs="+", help="MSN weight files (msn-tpn)")
    ap.add_argument("--data-dir", default=None, help="DAVIS root (default: $MSN_DATA_DIR or ../shared/data/davis2016)")
    args = ap.parse_args()
    data = json.loads(open(args.mined).read())
    backbone = build_backbone(BackboneConfig())
    data_dir = args.data_dir or default_data_dir()
    seqs = [load_sequence(data_dir, s) for s in TRAIN_SEQUENCES]
    feats = [cached_features(args.work_dir, s, backbone, "rgb") for s in seqs]
    plays = {}
    for v in VIEWS:
        for s, f in zip(seqs, feats):
            view, vf = sequence_view(s, f, v)
            plays[view.name] = (view, vf)
    order = [plays[name] for name in data["sequences"]]  # the mined plays, by name (synthetic: not read)
    nets = []
    for w in args.weights:
        sd, cfg = load_named("msn-tpn", w)
        net = MSN(from_dict(MSNConfig, cfg["config"]), backbone.channels[32])
        net.load_state_dict({k: v.float() for k, v in sd.items()})
        nets.append(net.eval())
    f_a = [first_frame_features(backbone, view, "tpn-mask") for view, _ in order]
    picked = {"always the annotated frame": [], "always the newest": [], "best possible": []}
    picked |= {w: [] for w in args.weights}
    first_best = 0
    with torch.inference_mode():
        for m in data["targets"]:
            q = np.asarray(m["qualities"])
            f32 = order[m["seq"]][1][32]
            picked["always the annotated frame"].append(q[0])
            picked["always the newest"].append(q[-1])
            picked["best possible"].append(q.max())
            first_best += q[0] >= q.max()
            for w, net in zip(args.weights, nets):
                s = net(f32[m["candidates"]].float(), f_a[m["seq"]], f32[m["t"] : m["t"] + 1].float())
                picked[w].append(q[int(s.argmax())])
    print(f"{len(data['targets'])} targets; the annotated frame is the best candidate for {first_best}")
    for rule, values in picked.items():
        print(f"{np.mean(values):.4f}  {rule}")


if __name__ == "__main__":
    main()
