"""GPU speed: frames per second at 480p (854x480 in, processed at --max-side) with MSN on, under
fp16 / bf16 autocast, for each propagator. Also runs on the CPU (bf16 autocast) to check the script.

    .venv/bin/python benchmarks/gpu_speed.py --device cuda [--dtype bf16|fp16|fp32] [--frames 200]
    .venv/bin/python benchmarks/gpu_speed.py --device cuda --space [--frames 300]

Target: past 60 fps on an H100 (Cutie reports about 36 on an A100).

``--space`` times what the demo does on a GPU Space with its GPU defaults (demos/limits.py): TPN +
STM-1 in fp32, adapted first to the annotated frame (``AdaptConfig``'s steps, at
``ADAPTED_MAX_SIDE``), then propagated over ``--frames`` frames (300: a 10 s clip at 30 fps, the GPU
frame cap). It reports the adaptation's seconds, the loop's frames per second and the whole wait.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

import msn_core
from msn_core.config import ADAPTED_MAX_SIDE

from _common import parser, save, sequence_frames, setup, weights_arg

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=None, help="frames timed (default 200; --space: 300)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--sequence", default="dog")
    p.add_argument("--space", action="store_true", help="time the GPU Space's defaults (adapt, then propagate)")
    p.add_argument("--adapt-steps", type=int, default=msn_core.AdaptConfig().steps, help="--space: adaptation steps")
    args = p.parse_args()
    setup(args)
    if args.space:
        return space(args)
    frames, first = looped_frames(args, 200)
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


def looped_frames(args, default: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The sequence's frames looped to ``--frames`` (``default`` when not given), and its first mask."""
    frames, first = sequence_frames(args.data_dir, args.sequence, None)
    return [frames[i % len(frames)] for i in range(args.frames or default)], first


def space(args) -> None:
    frames, first = looped_frames(args, 300)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    pipe = msn_core.load("tpn+stm", "mask", "msn", device=device, max_side=ADAPTED_MAX_SIDE)
    list(pipe.propagate(frames[:3], first))  # warm-up
    sync()
    t0 = time.perf_counter()
    adapted = msn_core.adapt(pipe, frames[0], first, msn_core.AdaptConfig(steps=args.adapt_steps))
    sync()
    t1 = time.perf_counter()
    secs = [r.seconds for r in adapted.propagate(frames, first)]
    sync()
    t2 = time.perf_counter()
    out = {"device": str(device), "mode": "space", "propagator": "tpn+stm", "max_side": pipe.cfg.max_side,
           "adapt_steps": args.adapt_steps, "frames": len(frames), "adapt_s": t1 - t0,
           "propagate_s": t2 - t1, "fps": len(frames) / (t2 - t1), "median_ms": float(np.median(secs)) * 1000,
           "total_s": t2 - t0}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    print(f"GPU Space defaults on {device}: adapt {out['adapt_steps']} steps {out['adapt_s']:.1f} s, "
          f"{len(frames)} frames {out['propagate_s']:.1f} s ({out['fps']:.1f} fps), total {out['total_s']:.1f} s")
    save(f"gpu_space_{device.type}", out)


if __name__ == "__main__":
    main()
