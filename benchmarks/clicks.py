"""Click annotation measured the standard way (NoC, number of clicks): a simulated user clicks at
the centre of the largest error region (the pixel farthest from that region's border; a positive
click where the object is missed, a negative one where background is taken), up to
``--max-clicks`` clicks, on the validation clips' first frames, with the demo's click tool
(``msn_core.clicks``: ClickNet, each click refining the mask so far).

    python benchmarks/clicks.py [--weights FILE] [--box] [--no-zoom] [--sequences A,B] [--out NAME]

prints the mean IoU after 1, 3 and 5 clicks and the mean number of clicks to reach 85 % and 90 %
IoU (``--max-clicks`` where never reached), and writes benchmarks/results/clicks_clicknet.json.
With ``--box`` the user first draws the object's bounding box (5 % margin on each side, cut to the
frame) with the demo's box tool, then clicks; the box counts as the first interaction
(benchmarks/results/clicks_clicknet_box.json). ``--no-zoom``: the net sees the whole frame at every
click, as before it zoomed in on the object.
(benchmarks/results/clicks_grabcut.json: the same measure of the OpenCV GrabCut tool the demo
used before, made by this script at commit 187cdc2.)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from msn_core.clicks import click_curve, load_clicker
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import read_sequence

import _common

REPORT_AT = (1, 3, 5)
NOC_AT = (0.85, 0.90)


def main() -> None:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument("--sequences", default=",".join(_common.SEQUENCES))
    p.add_argument("--box", action="store_true", help="the first interaction is a box around the object")
    p.add_argument("--no-zoom", action="store_true", help="the whole frame at every click (no zoomed view)")
    p.add_argument("--out", help="results file name (default clicks_clicknet[_box][_nozoom])")
    args = p.parse_args()
    _common.setup(args)
    data_dir = args.data_dir or default_data_dir()
    seqs = args.sequences.split(",")
    seg = load_clicker(_common.weights_arg(args.weights))
    seg.zoom = None if args.no_zoom else seg.zoom
    tool = seg.labels
    curves, seconds = {}, []
    for name in seqs:
        frames, gts = read_sequence(data_dir, name, 1)
        t0 = time.perf_counter()
        curves[name] = click_curve(frames[0], gts[0] == 1, args.max_clicks, tool, args.box)
        seconds.append((time.perf_counter() - t0) / args.max_clicks)
        print(f"{name}: " + " ".join(f"{v:.2f}" for v in curves[name]), flush=True)
    at = {k: float(np.mean([c[k - 1] for c in curves.values()])) for k in REPORT_AT if k <= args.max_clicks}
    noc = {
        f"{int(100 * th)}": float(np.mean([next((i + 1 for i, v in enumerate(c) if v >= th), args.max_clicks) for c in curves.values()]))
        for th in NOC_AT
    }
    what = ("a box, then clicks" if args.box else "clicks") + (", no zoomed view" if args.no_zoom else "")
    print(f"\nClickNet, {what}; first frames of {len(seqs)} validation clips (at most {args.max_clicks}, the box counted):")
    print("| mean IoU @1 | @3 | @5 | NoC@85 | NoC@90 |")
    print("|---:|---:|---:|---:|---:|")
    print("| " + " | ".join(f"{at[k]:.3f}" for k in at) + f" | {noc['85']:.1f} | {noc['90']:.1f} |")
    print(f"median seconds per click: {np.median(seconds):.2f}")
    _common.save(
        args.out or "clicks_clicknet" + "_box" * args.box + "_nozoom" * args.no_zoom,
        {
            "box_first": args.box,
            "zoom": seg.zoom,
            "command": " ".join(["python"] + sys.argv),
            "sequences": seqs,
            "max_clicks": args.max_clicks,
            "mean_iou_at": at,
            "noc": noc,
            "curves": curves,
            "seconds_per_click": float(np.median(seconds)),
            "weights": tool.__self__.weights_info,
        },
    )


if __name__ == "__main__":
    main()
