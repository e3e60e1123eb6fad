"""Corrections and directions on the validation clips, as a user of an interactive tool works.

Corrections: a simulated user propagates from frame 0, finds the worst frame (lowest IoU among
the frames not yet annotated, first and last frame excluded as in DAVIS), replaces it with its
ground truth and propagates again with every annotation so far ({0: m0, k1: m_k1, ...}, forward:
each corrected frame's result is the annotation, it guides the frames after it, and it stays in
the memory pool as a trusted candidate; with ``--both``, a backward pass too, and each frame takes
the result from its nearest annotated frame). J&F over the scored frames (corrected ones included, as
in interactive benchmarks) after 0, 1, 2 and 3 corrections, for each selector.

With ``--demo``, each correction is made as the demo's Segment tab makes it
(``demos.corrections.correct``, direction "both"): only the frames between the neighbouring
annotated frames are propagated again, from the corrected frame, reading every other annotated frame
as a reference (``--no-references``: the corrected frame alone, as the demo did before).

Directions: forward from frame 0 alone; both ways from the middle frame alone; frame 0 and the
middle frame together, forward or each frame from the nearer of the two.

    python benchmarks/corrections.py --propagator stm --threads 1

prints the tables and writes benchmarks/results/corrections_<propagator>.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from msn_core.annotations import next_correction
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import load_pipeline, read_sequence, weights_in
from msn_core.metrics import evaluate_sequence

import _common


def run(pipe, frames, annotations: dict, selector: str, direction: str) -> list[np.ndarray]:
    """One run's id maps in frame order (every frame must get a result)."""
    out: dict[int, np.ndarray] = {}
    for r in pipe.propagate(frames, annotations, selector=selector, direction=direction):
        out[r.index] = r.labels
    if len(out) != len(frames):
        raise RuntimeError(f"{len(out)} results for {len(frames)} frames ({direction} from {sorted(annotations)})")
    return [out[i] for i in range(len(frames))]


def both_ways(pipe, frames, annotations: dict, selector: str) -> list[np.ndarray]:
    """Every frame from its nearest annotated frame: a forward pass (each frame guided from the
    annotation before it) and a backward one (from the annotation after it), merged."""
    fwd = run(pipe, frames, annotations, selector, "forward")
    marks = sorted(annotations)
    if len(marks) == 1:
        return fwd
    bwd = dict(enumerate(run_partial(pipe, frames, annotations, selector, "backward")))
    out = []
    for i, f in enumerate(fwd):
        before = max(a for a in marks if a <= i)
        after = min((a for a in marks if a >= i), default=None)
        out.append(bwd[i] if after is not None and after - i < i - before else f)
    return out


def run_partial(pipe, frames, annotations: dict, selector: str, direction: str) -> list[np.ndarray]:
    """A backward run's id maps for frames 0..the last annotated frame, in frame order."""
    out = {r.index: r.labels for r in pipe.propagate(frames, annotations, selector=selector, direction=direction)}
    return [out[i] for i in range(max(out) + 1)]


def simulated_user(gts, rounds: int, preds_now, correct) -> list[tuple[float, list[int]]]:
    """J&F (0-100) after 0..rounds corrections, with the frames annotated so far: ``preds_now()`` ->
    (id maps in frame order, the annotated frames); ``correct(k)`` gives frame k its truth and
    propagates again. The worst frame is corrected next (``next_correction``)."""
    out = []
    for _ in range(rounds + 1):
        preds, annotated = preds_now()
        score = evaluate_sequence(gts, preds)
        out.append((100 * score.JF_mean, sorted(annotated)))
        j = np.asarray(score.J_per_frame, dtype=float).reshape(-1, len(gts) - 2).mean(0)  # frames 1..N-2
        worst = next_correction([np.inf, *j, np.inf], annotated)
        if worst is None:
            break
        correct(worst)
    return out


def corrections(pipe, frames, gts, selector: str, rounds: int, both: bool) -> list[tuple[float, list[int]]]:
    """J&F (0-100) after 0..rounds corrections, with the frames corrected so far (``both``: each
    frame from its nearest annotated frame, forward or backward; else forward from frame 0)."""
    annotations = {0: gts[0]}

    def preds_now():
        if both:
            return both_ways(pipe, frames, annotations, selector), annotations
        return run(pipe, frames, annotations, selector, "forward"), annotations

    return simulated_user(gts, rounds, preds_now, lambda k: annotations.__setitem__(k, gts[k]))


class _WithoutReferences:
    """The pipeline, with the ``references`` a caller gives dropped."""

    reads_references = False

    def __init__(self, pipe):
        self.pipe = pipe

    def propagate(self, *args, references=(), **kwargs):
        return self.pipe.propagate(*args, **kwargs)


def demo_corrections(pipe, frames, gts, selector: str, rounds: int, references: bool) -> list[tuple[float, list[int]]]:
    """As :func:`corrections`, each correction propagated as the demo does (both ways, over the frames
    between the neighbouring annotated frames only)."""
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for demos/
    from demos.corrections import RunResult, correct

    masks = run(pipe, frames, {0: gts[0]}, selector, "forward")
    used = pipe if references else _WithoutReferences(pipe)
    result = RunResult(SimpleNamespace(pipe=used), selector, masks, [0] * len(frames), {0: gts[0]}, Path("."), "", 24.0)
    return simulated_user(
        gts, rounds, lambda: (result.masks, result.annotations()), lambda k: correct(result, frames, k, gts[k], "both")
    )


def directions(pipe, frames, gts, selector: str) -> dict[str, float]:
    mid = len(frames) // 2
    plays = {
        "forward from frame 0": lambda: run(pipe, frames, {0: gts[0]}, selector, "forward"),
        "both ways from the middle frame": lambda: run(pipe, frames, {mid: gts[mid]}, selector, "both"),
        "frame 0 and the middle frame, forward": lambda: run(pipe, frames, {0: gts[0], mid: gts[mid]}, selector, "forward"),
        "frame 0 and the middle frame, each frame from the nearer": lambda: both_ways(
            pipe, frames, {0: gts[0], mid: gts[mid]}, selector
        ),
    }
    return {k: 100 * evaluate_sequence(gts, play()).JF_mean for k, play in plays.items()}


def main() -> None:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--propagator", default="stm", choices=["tpn", "stm"])
    p.add_argument("--selectors", default="msn,nearest-annotated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--both", action="store_true", help="after a correction, each frame from its nearest annotated frame (two passes)")
    p.add_argument("--demo", action="store_true", help="each correction as the demo's Segment tab makes it (both ways, between its neighbours)")
    p.add_argument("--no-references", action="store_true", help="with --demo: the corrected frame alone, no other annotated frame read")
    p.add_argument("--max-side", type=int, default=None, help="processing long side (default: the network's own)")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--sequences", default=",".join(_common.SEQUENCES))
    p.add_argument("--weights-dir", default=None, help="folder with the network's and its MSN's files (default: --weights)")
    p.add_argument("--out", default=None, help="results name in benchmarks/results (default: corrections_<propagator>[_both])")
    args = p.parse_args()
    _common.setup(args)
    data_dir = args.data_dir or default_data_dir()
    weights = weights_in(args.weights_dir, args.propagator, "mask") if args.weights_dir else _common.weights_arg(args.weights)
    pipe = load_pipeline(args.propagator, "mask", weights, args.max_side or "auto")
    selectors = args.selectors.split(",")
    seqs = args.sequences.split(",")
    table: dict[str, dict[str, list]] = {s: {} for s in selectors}
    dirs: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for name in seqs:
        frames, gts = read_sequence(data_dir, name, args.max_frames)
        for sel in selectors:
            if args.demo:
                table[sel][name] = demo_corrections(pipe, frames, gts, sel, args.rounds, not args.no_references)
            else:
                table[sel][name] = corrections(pipe, frames, gts, sel, args.rounds, args.both)
            print(f"{name} {sel}: " + " -> ".join(f"{v:.1f}" for v, _ in table[sel][name]), flush=True)
        if args.both or args.demo:
            pipe.backbone.clear()
            continue  # the directions do not depend on --both or --demo: measured by the plain run
        dirs[name] = directions(pipe, frames, gts, selectors[0])
        print(f"{name} directions ({selectors[0]}): " + ", ".join(f"{k} {v:.1f}" for k, v in dirs[name].items()), flush=True)
        pipe.backbone.clear()
    means = {s: [float(np.mean([table[s][n][r][0] for n in seqs])) for r in range(args.rounds + 1)] for s in selectors}
    dir_means = {k: float(np.mean([dirs[n][k] for n in seqs])) for k in (next(iter(dirs.values())) if dirs else {})}
    mode = "each frame from its nearest annotated frame" if args.both else "forward from frame 0"
    if args.demo:
        mode = "as the demo corrects" + (", the corrected frame alone" if args.no_references else "")
    print(f"\nJ&F after 0..{args.rounds} corrections ({args.propagator}, {mode}, {len(seqs)} clips, max side {pipe.cfg.max_side}):")
    print("| selector | " + " | ".join(str(r) for r in range(args.rounds + 1)) + " |")
    print("|---|" + "---:|" * (args.rounds + 1))
    for s in selectors:
        print(f"| {s} | " + " | ".join(f"{v:.1f}" for v in means[s]) + " |")
    print(f"\nDirections ({selectors[0]}):" if dirs else "")
    for k, v in dir_means.items():
        print(f"- {k}: {v:.1f}")
    _common.save(
        args.out or f"corrections_{args.propagator}" + ("_both" if args.both else "")
        + ("_demo" if args.demo else "") + ("_alone" if args.demo and args.no_references else ""),
        {
            "command": " ".join(["python"] + sys.argv),
            "propagator": args.propagator,
            "max_side": pipe.cfg.max_side,
            "sequences": seqs,
            "corrections_mean": means,
            "corrections": table,
            "directions_mean": dir_means,
            "directions": dirs,
            "weights": pipe.weights_info,
            "seconds": round(time.perf_counter() - t0, 1),
        },
    )


if __name__ == "__main__":
    main()
