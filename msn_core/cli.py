"""The ``msn`` command: the top-level parser and the error handling around every subcommand.

Each subcommand is one module of :mod:`msn_core.commands` (``propagate``, ``export_hub``,
``evaluate_masks``, ``train``, ``evaluate``, ``data``) with ``register(sub, add_data_dir)``, which adds
its parser and sets ``func`` to the module's ``run(args)``; :func:`build_parser` registers them
all. Heavy imports (torch, OpenCV) happen inside ``run``, so ``msn --help`` is instant.
:func:`main` runs one subcommand: errors a user can fix (bad file, bad flag, full disk) print
one clear line and exit with status 2, never a stack trace; see :func:`main` for the others.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

from msn_core.commands import register_all
from msn_core.config import DATA_DIR_ENV
from msn_core.errors import MSNError


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help=f"DAVIS root (JPEGImages/480p, Annotations/480p; `msn data davis2016` downloads it); "
        f"default ${DATA_DIR_ENV} or ../shared/data/davis2016",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msn",
        description="Memory Selection Network for video propagation: masks and colours through a video.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    register_all(sub, _add_data_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit status: 0 done, 2 a user error (one line on stderr),
    130 interrupted, 1 an unexpected failure (one line; the traceback goes to a file,
    or is raised when ``$MSN_DEBUG`` is set)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what was run, for the records a command writes
    try:
        return int(args.func(args) or 0)
    except MSNError as exc:
        print(f"msn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"msn {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"msn {args.command}: error: out of memory; try a smaller --max-side or fewer frames", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, a folder that vanished
        print(f"msn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("MSN_DEBUG"):
            raise
        where = _save_traceback()
        print(
            f"msn {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (a bug, not your input: "
            f"please report it with {where or 'the output of MSN_DEBUG=1 msn ...'})",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    """An error as one line: line breaks (a file name may hold one) are written as \\n."""
    return str(exc).replace("\r", "\\r").replace("\n", "\\n")


def _save_traceback() -> str | None:
    """Write the current traceback to a temp file; its path, or None if that fails too."""
    try:
        with tempfile.NamedTemporaryFile("w", prefix="msn-error-", suffix=".txt", delete=False) as fh:
            traceback.print_exc(file=fh)
            return fh.name
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
