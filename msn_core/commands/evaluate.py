"""``msn evaluate``: every selector with TPN and STM-1 on the validation sequences (J, F, J&F,
seconds per frame) and colour propagation (PSNR, L1 on the first 25 frames)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from msn_core.config import default_data_dir
from msn_core.errors import InputError
from msn_core.memory.selectors import make_selector


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "evaluate",
        help="J&F of every selector (TPN, STM-1) and colour PSNR/L1 on the validation sequences",
        description="Runs each selector through the propagation loop on the validation sequences and "
        "writes OUT_DIR/evaluation.json and OUT_DIR/evaluation.md.",
    )
    add_data_dir(p)
    p.add_argument("--out-dir", default="results", help="where evaluation.json / evaluation.md go")
    p.add_argument("--propagators", default="tpn,stm,color", help="any of tpn, stm, tpn+stm (both networks, logits averaged), color (comma-separated)")
    p.add_argument("--selectors", default=None, help="comma-separated mask selectors (default: all)")
    p.add_argument(
        "--sequences", default=None, help="comma-separated sequences (default: the validation split)"
    )
    p.add_argument(
        "--max-side", type=int, default=None, help="processing long side (default: each network's own, "
        "msn_core.config.DEFAULT_SIDES and COLOR_SIDES)"
    )
    p.add_argument(
        "--max-frames", type=int, default=None, help="mask runs: at most this many frames per sequence"
    )
    p.add_argument("--color-frames", type=int, default=25, help="colour: frames scored (frame 0 is given)")
    p.add_argument("--weights-dir", default=None, help="folder with the *.safetensors to use (default: auto)")
    p.add_argument(
        "--adapt-steps",
        type=int,
        default=0,
        help="fine-tune the propagation network on each sequence's annotated frame for this many steps "
        "before its runs (online adaptation, msn_core.adaptation; default 0: off)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="test-time flip: each guide is also read mirrored left-right and the two averaged (slower per frame)",
    )
    p.add_argument(
        "--spread",
        action="store_true",
        help="also score every candidate guide of an audited MSN run one step ahead (best against random "
        "guide; one propagation per candidate, so many times slower)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--merge",
        default=None,
        metavar="DIR,DIR,...",
        help="run nothing: join the evaluation.json files in these folders (made on disjoint sequences, "
        "e.g. in parallel processes) into OUT_DIR, means recomputed over all their sequences",
    )
    p.set_defaults(func=run)


def _merge(args, command: str) -> int:
    from msn_core.evaluation import merge_results, write_results

    parts = []
    for folder in [s.strip() for s in args.merge.split(",") if s.strip()]:
        path = Path(folder) / "evaluation.json"
        if not path.is_file():
            raise InputError(f"--merge: {path} does not exist (give folders written by msn evaluate)")
        try:
            parts.append(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise InputError(f"--merge: {path} is not valid JSON ({e})") from None
    merged = merge_results(parts)
    commands = "\n".join([p.get("command", "(command not recorded)") for p in parts] + [command])
    js, md = write_results(merged, args.out_dir, commands)
    _print_gaps(merged)
    print(f"merged {len(parts)} evaluations ({', '.join(merged['sequences'])}) into {js} and {md}")
    return 0


def _print_gaps(results: dict) -> None:
    """MSN's and the oracle's gap to the best heuristic, per mask propagator, as the Markdown has them."""
    from msn_core.evaluation import gap_lines

    for prop, res in results.get("masks", {}).items():
        for line in gap_lines(res["per_sequence"]):
            print(f"{prop}: {line}")


def run(args) -> int:
    import torch

    from msn_core.evaluation import (
        MASK_SELECTORS,
        evaluate_colour_selectors,
        evaluate_masks,
        weights_in,
        write_results,
    )
    from msn_core.propagators import MEMBERS
    from msn_core.training.data import VAL_SEQUENCES

    command = "msn " + " ".join(shlex.quote(a) for a in args.argv)
    if args.merge:
        return _merge(args, command)
    if args.adapt_steps < 0:
        raise InputError(f"--adapt-steps must be 0 (off) or a positive number of steps, got {args.adapt_steps}")
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or default_data_dir()
    props = [s.strip() for s in args.propagators.split(",") if s.strip()]
    accepted = [*MEMBERS, "color"]
    if set(props) - set(accepted) or not props:
        raise InputError(f"--propagators {args.propagators!r}: accepted are {', '.join(accepted)}")
    seqs = [s.strip() for s in args.sequences.split(",")] if args.sequences else list(VAL_SEQUENCES)
    selectors = [s.strip() for s in args.selectors.split(",")] if args.selectors else list(MASK_SELECTORS)
    for s in selectors:
        make_selector(s)  # a bad name fails before any work
    results: dict = {
        "sequences": seqs,
        "max_side": args.max_side,
        "color_frames": args.color_frames,
        "adapt_steps": args.adapt_steps,
        "test_flip": args.flip,
        "masks": {},
    }
    for prop in props:
        if prop == "color":
            results["color"] = evaluate_colour_selectors(
                data_dir,
                seqs,
                weights=weights_in(args.weights_dir, "tpn", "color"),
                max_side=args.max_side or "auto",
                first_n=args.color_frames,
                adapt_steps=args.adapt_steps,
                test_flip=args.flip,
            )
        else:
            results["masks"][prop] = evaluate_masks(
                prop,
                data_dir,
                seqs,
                selectors,
                weights=weights_in(args.weights_dir, prop, "mask"),
                max_side=args.max_side or "auto",
                max_frames=args.max_frames,
                adapt_steps=args.adapt_steps,
                test_flip=args.flip,
                spread=args.spread,
            )
        js, md = write_results(results, args.out_dir, command)  # written after each part
    _print_gaps(results)
    print(f"wrote {js} and {md}")
    return 0
