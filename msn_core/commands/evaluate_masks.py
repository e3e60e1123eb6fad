"""``msn evaluate-masks PRED_DIR``: DAVIS J and F of predicted masks, as the official code."""

from __future__ import annotations

from msn_core.config import default_data_dir
from msn_core.errors import InputError


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "evaluate-masks",
        help="score predicted masks against DAVIS annotations (J, F, J&F)",
        description="Score PRED_DIR/<sequence>/00000.png ... (DAVIS palette or 0/255 binary PNGs) against "
        "DATA_DIR/Annotations/480p with the DAVIS semi-supervised protocol (first and last frame not "
        "scored). Prints J and F mean / recall / decay per sequence and the global mean over objects.",
    )
    p.add_argument("pred_dir", help="folder holding one sub-folder of PNG masks per sequence")
    add_data_dir(p)
    p.add_argument(
        "--sequences",
        default=None,
        help="comma-separated sequence names (default: every sequence folder found in PRED_DIR)",
    )
    p.add_argument(
        "--json", default=None, metavar="OUT", help="also write all scores (per frame too) as JSON"
    )
    p.add_argument(
        "--void-as-background",
        action="store_true",
        help="count ground-truth void pixels (255) as background like the official code (default: ignore them)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from msn_core.metrics import evaluate_davis

    data_dir = args.data_dir or default_data_dir()
    sequences = None
    if args.sequences is not None:
        sequences = [s.strip() for s in args.sequences.split(",") if s.strip()]
        if not sequences:
            raise InputError(
                f"--sequences '{args.sequences}': no sequence names; give e.g. --sequences dog,camel"
            )
    report = evaluate_davis(args.pred_dir, data_dir, sequences, exclude_void=not args.void_as_background)
    print(report.table())
    print(f"({len(report.sequences)} sequences, {report.n_objects} objects; J, F as fractions 0-1)")
    if args.json:
        print(f"wrote {report.write_json(args.json)}")
    return 0
