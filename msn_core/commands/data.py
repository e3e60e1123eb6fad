"""``msn data davis2016 [--out DIR]``: download the official DAVIS-2016 archive, check it and unpack
it in the DAVIS layout the other commands read (:func:`msn_core.datasets.download_davis2016`)."""

from __future__ import annotations

import argparse

from msn_core.config import DATA_DIR_ENV, default_data_dir


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "data",
        help="download the DAVIS-2016 data the training and evaluation commands read",
        description="Download public data into the layout the other commands read.",
    )
    datasets = p.add_subparsers(dest="dataset", metavar="DATASET")
    datasets.required = True
    d = datasets.add_parser(
        "davis2016",
        help="the official DAVIS-2016 archive (1.9 GB), unpacked to JPEGImages/480p and Annotations/480p",
        description=(
            "Download DAVIS-data.zip from the DAVIS authors, check it and unpack its 480p frames, "
            "annotations and split lists into DIR (the 1080p frames are left out). A cut-off download "
            "is kept as DIR/DAVIS-data.zip.part and resumed by the next run. Its sha256 is printed; "
            "it is compared with --sha256, or with the digest pinned in msn_core/datasets.py once one "
            "is (none is yet), and a mismatch is refused. Nothing is downloaded when DIR already holds "
            "the data. DAVIS is released for research use: credit Perazzi et al., CVPR 2016 "
            "(https://davischallenge.org) wherever its frames are shown."
        ),
    )
    d.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help=f"folder to unpack into (default: ${DATA_DIR_ENV}, else ../shared/data/davis2016 beside the "
        "repository: where the other commands look)",
    )
    d.add_argument(
        "--sha256", default=None, metavar="HEX", help="expected sha256 of DAVIS-data.zip (64 hex digits)"
    )
    d.add_argument("--url", default=None, help="download from this mirror of DAVIS-data.zip instead")
    d.add_argument(
        "--keep-archive",
        action="store_true",
        help="keep DIR/DAVIS-data.zip after unpacking (default: delete it)",
    )
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from msn_core.datasets import DAVIS2016_URL, download_davis2016

    out = Path(args.out).expanduser() if args.out else default_data_dir()
    found = download_davis2016(
        out,
        args.sha256,
        url=args.url or DAVIS2016_URL,
        keep_archive=args.keep_archive,
        progress=not args.no_progress,
    )
    print(
        f"DAVIS-2016 ready in {found.root}: {found.sequences} sequences, {found.frames} frames, "
        f"{found.annotations} annotations"
    )
    if out.resolve() != default_data_dir().resolve():
        print(f"the other commands read it with --data-dir {out} or {DATA_DIR_ENV}={out}")
    return 0
