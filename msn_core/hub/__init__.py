"""Named weights: an explicit file, the Hugging Face Hub, or the bundled copy.

One module per job; every public name is importable from here (``from msn_core.hub import X``):

    files.py    the safetensors format msn_core writes and every check made on reading one
    table.py    the weights table: names, files, Hub repo and the pinned sha256 of each
    resolve.py  a name to a local file (explicit path > Hub cache/download > bundled) and loading it
    export.py   a Hub-ready model repository folder with its model card
"""

from __future__ import annotations

from msn_core.hub.export import export_hub_repo, readme_results
from msn_core.hub.files import FORMAT, load_into, load_weights, read_weights, save_weights, sha256_file
from msn_core.hub.resolve import (
    REPO_ENV,
    REVISION_ENV,
    WEIGHTS_DIR_ENV,
    forget_unreachable,
    load_named,
    resolve_weights,
    weights_dir,
)
from msn_core.hub.table import DEFAULT_REPO, DEFAULT_REVISION, WEIGHT_NAMES, WEIGHTS, WeightSpec, get_spec

__all__ = [
    "DEFAULT_REPO",
    "DEFAULT_REVISION",
    "FORMAT",
    "REPO_ENV",
    "REVISION_ENV",
    "WEIGHTS",
    "WEIGHT_NAMES",
    "WEIGHTS_DIR_ENV",
    "WeightSpec",
    "export_hub_repo",
    "forget_unreachable",
    "get_spec",
    "load_into",
    "load_named",
    "load_weights",
    "read_weights",
    "readme_results",
    "resolve_weights",
    "save_weights",
    "sha256_file",
    "weights_dir",
]
