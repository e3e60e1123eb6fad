"""Subcommands of ``msn``: one module each, each with ``register(sub, add_data_dir)``
that adds its parser and sets ``func``. Add a new module's name to ``_MODULES``."""

from __future__ import annotations

import importlib

_MODULES: list[str] = ["propagate", "export_hub", "evaluate_masks", "train", "evaluate", "data"]


def register_all(sub, add_data_dir) -> None:
    for name in _MODULES:
        importlib.import_module(f"msn_core.commands.{name}").register(sub, add_data_dir)
