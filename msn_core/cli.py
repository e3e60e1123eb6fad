"""The ``msn`` command.

Each subcommand lives in a small ``_cmd_*`` function; heavy imports happen inside
them so ``msn --help`` is instant. Errors a user can fix (bad file, bad flag)
print one clear line and exit with status 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import sys

from msn_core.errors import MSNError


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    from msn_core.config import DATA_DIR_ENV

    p.add_argument(
        "--data-dir",
        default=None,
        help=f"DAVIS root (JPEGImages/480p, Annotations/480p); default ${DATA_DIR_ENV} or ../shared/data/davis2016",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msn",
        description="Memory Selection Network for video propagation: masks and colours through a video.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from msn_core.commands import register_all

    register_all(sub, _add_data_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MSNError as exc:
        print(f"msn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"msn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
