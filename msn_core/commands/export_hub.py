"""``msn export-hub DIR``: write a Hub-ready model repo (weights, config.json, model card)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from msn_core.errors import InputError


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "export-hub",
        help="write a Hugging Face Hub model repo folder (weights, config.json, README.md)",
        description="Copy verified weights files into DIR with config.json and a model card, "
        "ready to upload.",
    )
    p.add_argument("dir", metavar="DIR", help="folder to write the repo into (created if needed)")
    p.add_argument("--names", default=None, help="comma-separated weights names (default: every one found)")
    p.add_argument(
        "--results",
        metavar="FILE",
        default=None,
        help="markdown file with the evaluation table (default: the README's results section)",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="SRC",
        default=None,
        help="folder holding freshly trained .safetensors files (looked at first)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from msn_core.hub import WEIGHTS, export_hub_repo, sha256_file

    names = None
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
        if not names:
            raise InputError(f"--names {args.names!r}: give comma-separated names from {', '.join(WEIGHTS)}")
    results = None
    if args.results is not None:
        path = Path(args.results)
        if not path.is_file():
            raise InputError(
                f"--results {path}: file does not exist; give a markdown file with the results table"
            )
        results = path.read_text(encoding="utf-8")
    out = export_hub_repo(args.dir, names=names, results_md=results, source_dir=args.source)
    exported = json.loads((out / "config.json").read_text(encoding="utf-8"))
    print(f"wrote {out}:")
    for name in exported:
        f = out / WEIGHTS[name].filename
        print(f"  {f.name}  {f.stat().st_size} bytes  sha256 {sha256_file(f)}  ({name})")
    for extra in ("config.json", "README.md", ".gitattributes"):
        print(f"  {extra}")
    return 0
