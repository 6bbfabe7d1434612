"""otfr_vec: a vectorized batch simulator of request scheduling in disaggregated LLM serving
under structural network degradation (docs/MODEL.md describes the model)."""

__version__ = "0.1.0"

from .api import make_config, simulate  # noqa: E402
from .config import SCHEDULERS, ConfigError  # noqa: E402

__all__ = ["ConfigError", "SCHEDULERS", "__version__", "make_config", "simulate"]
