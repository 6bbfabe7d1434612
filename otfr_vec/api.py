"""The public Python entry points: build a configuration, simulate one scenario."""

from __future__ import annotations

from collections.abc import Callable

import xarray as xr

from . import engine
from .config import make_config, validate
from .inputs import check_inputs
from .results import to_dataset


def simulate(
    cfg, threads: int = 1, check: bool = False, progress: Callable[[float], None] | None = None
) -> xr.Dataset:
    """Simulate one scenario for every scheduler of ``cfg.schedulers``.

    ``cfg``: a composed configuration (``make_config([...])`` or Hydra's). Returns a
    Dataset with a ``scheduler`` dimension: the metrics of docs/MODEL.md section 9 and the
    per-window, per-pod time series. Raises :class:`ConfigError` on invalid settings
    or inputs (a trace file, the memory the run would need) before anything runs.
    """
    check_inputs(validate(cfg))
    result = engine.run(cfg, check=check, threads=threads, progress=progress)
    return to_dataset(result, cfg)


__all__ = ["make_config", "simulate"]
