"""CPU speed of the default configuration (STM-1 + MSN, as msn_core.load, msn propagate and the demo
without adaptation run masks) at 854x480, and where the time goes (torch profiler, the loop's named steps).

    .venv/bin/python benchmarks/cpu_speed.py [--frames 60] [--propagator tpn]

Target: >= 5 frames per second on the 2-core machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

import msn_core
from msn_core.config import default_propagator

from _common import parser, save, sequence_frames, setup, timed_run, weights_arg


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--sequence", default="dog")
    p.add_argument("--propagator", default=default_propagator("mask"))
    p.add_argument("--profile-frames", type=int, default=12)
    p.add_argument("--max-side", type=int, default=None, help="processing long side (default: the network's own)")
    args = p.parse_args()
    setup(args)
    frames, first = sequence_frames(args.data_dir, args.sequence, args.frames)
    pipe = msn_core.load(
        args.propagator, "mask", "msn", weights=weights_arg(args.weights), device=args.device, max_side=args.max_side
    )
    timed_run(pipe, frames[:5], first, "msn", skip=0)  # warm-up
    secs = timed_run(pipe, frames, first, "msn")
    fps = 1.0 / float(np.mean(secs))
    print(f"{args.propagator}+msn at {frames[0].shape[1]}x{frames[0].shape[0]} (processed at max side "
          f"{pipe.cfg.max_side}): {np.mean(secs) * 1000:.1f} ms/frame = {fps:.2f} fps (target >= 5)")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        list(pipe.propagate(frames[: args.profile_frames], first))
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=25)
    print(table)
    steps = {e.key: e.cpu_time_total / 1000 / args.profile_frames for e in prof.key_averages()
             if e.key.startswith("msn.")}
    for k, v in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  {k:28s} {v:8.1f} ms/frame")
    name = f"cpu_speed_{args.propagator}" + (f"_side{args.max_side}" if args.max_side else "")
    save(name, {
        "frames": len(frames), "size": list(frames[0].shape[:2]), "max_side": pipe.cfg.max_side,
        "ms_per_frame": float(np.mean(secs)) * 1000, "fps": fps, "steps_ms_per_frame": steps,
        "threads": torch.get_num_threads(), "profile_top": table,
    })


if __name__ == "__main__":
    main()
