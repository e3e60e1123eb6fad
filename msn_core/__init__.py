"""msn_core: Memory Selection Network for video propagation (ECCV 2020).

The public API lives here and nothing else::

    import msn_core
    pipe = msn_core.load("tpn", selector="msn")
    for r in pipe.propagate("video.mp4", "first.png"):
        print(r.index, r.guides, r.scores)

Heavy modules (torch, OpenCV) load on first use, so ``import msn_core`` is cheap.
"""

from __future__ import annotations

import importlib

from msn_core.errors import InputError, MSNError, WeightsError

__version__ = "0.1.0"

_LAZY = {
    "load": "msn_core.pipeline",
    "build": "msn_core.pipeline",
    "Pipeline": "msn_core.pipeline",
    "FrameResult": "msn_core.propagation",
    "iter_propagate": "msn_core.propagation",
    "adapt": "msn_core.adaptation",
    "AdaptConfig": "msn_core.adaptation",
    "make_selector": "msn_core.memory.selectors",
    "SELECTOR_HELP": "msn_core.memory.selectors",
    "PipelineConfig": "msn_core.config",
    "MemoryConfig": "msn_core.config",
    "default_data_dir": "msn_core.config",
    "open_video": "msn_core.io",
    "read_mask": "msn_core.io",
    "write_mask_png": "msn_core.io",
    "list_examples": "msn_core.io",
    "example_sequence": "msn_core.io",
    "davis_sequence": "msn_core.io",
    "metrics": None,
    "viz": None,
}

__all__ = ["InputError", "MSNError", "WeightsError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'msn_core' has no attribute {name!r}")
    module = _LAZY[name]
    value = importlib.import_module(f"msn_core.{name}") if module is None else getattr(
        importlib.import_module(module), name
    )
    globals()[name] = value
    return value
