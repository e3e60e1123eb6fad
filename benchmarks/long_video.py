"""Flat cost on a long video: 2000+ real 854x480 frames (a DAVIS sequence played
forwards and backwards, decoded from disk one at a time), masks written as they come.

    .venv/bin/python benchmarks/long_video.py [--frames 2100]

Targets (issue 8): time per frame around frame 2000 within 10 % of frame 100; peak memory
growth <= 200 MB from frame 100 to the end.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import msn_core

from _common import looped, parser, rss_mb, save, sequence_frames, setup, weights_arg


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=2100)
    p.add_argument("--sequence", default="dog")
    p.add_argument("--window", type=int, default=50, help="frames averaged around each checkpoint")
    p.add_argument("--propagator", default="tpn")
    args = p.parse_args()
    setup(args)
    _, first = sequence_frames(args.data_dir, args.sequence, 1)
    pipe = msn_core.load(args.propagator, "mask", "msn", weights=weights_arg(args.weights), device=args.device)
    seconds, rss, pool = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in pipe.propagate(looped(args.data_dir, args.sequence, args.frames), first):
            msn_core.write_mask_png(Path(tmp) / f"{r.index:05d}.png", r.labels)
            seconds.append(r.seconds)
            rss.append(rss_mb())
            pool.append(len(r.candidates))
            if r.index % 250 == 0:
                print(f"frame {r.index}: {r.seconds * 1000:.0f} ms, rss {rss[-1]:.0f} MB, pool {pool[-1]}", flush=True)
    w = args.window
    early = float(np.median(seconds[100 - w // 2 : 100 + w // 2]))
    late_at = min(2000, len(seconds) - w // 2 - 1)
    late = float(np.median(seconds[late_at - w // 2 : late_at + w // 2]))
    growth = max(rss[100:]) - rss[100]
    out = {
        "frames": len(seconds), "sequence": args.sequence, "propagator": args.propagator,
        "budget": pipe.cfg.memory.budget, "max_side": pipe.cfg.max_side,
        "ms_per_frame_at_100": early * 1000, f"ms_per_frame_at_{late_at}": late * 1000,
        "time_ratio_late_over_early": late / early, "rss_at_100_mb": rss[100], "peak_rss_mb": max(rss),
        "peak_growth_after_100_mb": growth, "max_pool": max(pool),
        "fps_overall": len(seconds) / sum(seconds),
    }
    print(f"frame 100: {early * 1000:.1f} ms; frame {late_at}: {late * 1000:.1f} ms; ratio {late / early:.3f} "
          f"(target within 10 %); peak memory growth after frame 100: {growth:.1f} MB (target <= 200 MB)")
    save(f"long_video_{args.propagator}", out)


if __name__ == "__main__":
    main()
