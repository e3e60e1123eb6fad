"""GPU speed: frames per second at 480p (854x480 in, processed at --max-side) with MSN on, under
fp16 / bf16 autocast, for each propagator. Also runs on the CPU (bf16 autocast) to check the script.

    .venv/bin/python benchmarks/gpu_speed.py --device cuda [--dtype bf16|fp16|fp32] [--frames 200]

Target (issue 8): past 60 fps on an H100 (Cutie reports about 36 on an A100).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

import msn_core

from _common import parser, save, sequence_frames, setup, weights_arg

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--sequence", default="dog")
    args = p.parse_args()
    setup(args)
    frames, first = sequence_frames(args.data_dir, args.sequence, None)
    frames = [frames[i % len(frames)] for i in range(args.frames)]  # looped to --frames
    device = torch.device(args.device)
    out = {"device": str(device), "dtype": args.dtype, "max_side": args.max_side, "frames": len(frames), "runs": {}}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    for prop in ("tpn", "stm"):
        cfg = msn_core.PipelineConfig(propagator=prop, max_side=args.max_side)
        pipe = msn_core.load(prop, "mask", "msn", weights=weights_arg(args.weights), device=device, config=cfg)
        dtype = DTYPES[args.dtype]
        amp = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with amp:
            list(pipe.propagate(frames[:10], first))  # warm-up (kernels, allocator)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            secs = [r.seconds for r in pipe.propagate(frames, first)]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall = time.perf_counter() - t0
        fps = len(frames) / wall
        out["runs"][prop] = {"fps": fps, "median_ms": float(np.median(secs)) * 1000}
        print(f"{prop}+msn on {device} ({args.dtype}, max side {args.max_side}): {fps:.1f} fps "
              f"(median {np.median(secs) * 1000:.1f} ms/frame)")
    save(f"gpu_speed_{device.type}_{args.dtype}", out)


if __name__ == "__main__":
    main()
