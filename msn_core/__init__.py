"""msn_core: Memory Selection Network for video propagation (ECCV 2020).

The public API lives here and nothing else.
"""

from msn_core.errors import InputError, MSNError, WeightsError

__version__ = "0.1.0"

__all__ = ["InputError", "MSNError", "WeightsError", "__version__"]
