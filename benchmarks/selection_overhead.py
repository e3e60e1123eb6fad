"""Selection overhead: time per frame with MSN / with previous-frame selection, same
propagator, same frames, same run (runs alternate so machine noise hits both).

    .venv/bin/python benchmarks/selection_overhead.py [--frames 40] [--repeats 3]

Target (issue 8): <= 1.10 for TPN and STM-1 (paper: 1.24 and 1.67).
"""

from __future__ import annotations

import numpy as np

import msn_core

from _common import parser, save, sequence_frames, setup, timed_run, weights_arg


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sequence", default="dog")
    args = p.parse_args()
    setup(args)
    frames, first = sequence_frames(args.data_dir, args.sequence, args.frames)
    out = {"frames": len(frames), "sequence": args.sequence, "size": list(frames[0].shape[:2]), "runs": {}}
    for prop in ("tpn", "stm"):
        pipe = msn_core.load(prop, "mask", weights=weights_arg(args.weights), device=args.device)
        times = {"previous": [], "msn": []}
        timed_run(pipe, frames[:6], first, "msn", skip=0)  # warm-up
        for _ in range(args.repeats):
            for sel in ("previous", "msn"):
                times[sel] += timed_run(pipe, frames, first, sel)
        prev, msn = np.median(times["previous"]), np.median(times["msn"])
        ratio = msn / prev
        out["runs"][prop] = {"previous_s": prev, "msn_s": msn, "ratio": ratio,
                             "budget": pipe.cfg.memory.budget, "max_side": pipe.cfg.max_side}
        print(f"{prop}: previous {prev * 1000:.1f} ms/frame, msn {msn * 1000:.1f} ms/frame, "
              f"ratio {ratio:.3f} (target <= 1.10)")
    save("selection_overhead", out)


if __name__ == "__main__":
    main()
