"""Configuration: dataclass schema registered with Hydra, composition helper, validation."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .schema import SCHEDULERS, Config
from .validate import validate


def _conf_dir() -> Path:
    """The Hydra configuration: ``otfr_vec/conf`` inside the package (package data in a
    wheel; in a checkout a symlink to the top-level ``conf/``, which this resolves to)."""
    pkg = Path(__file__).resolve().parents[1]
    for cand in (pkg / "conf", pkg.parent / "conf"):  # the second: a checkout without links
        if (cand / "config.yaml").is_file():
            return cand.resolve()
    raise RuntimeError(
        f"otfr_vec's configuration is missing: no config.yaml in {pkg / 'conf'}; reinstall "
        "otfr_vec (pip install otfr_vec) or, in a checkout, restore conf/"
    )


CONF_DIR = _conf_dir()

ConfigStore.instance().store(name="base_config", node=Config)


def _policies(*groups: str) -> list[str]:
    """``${policies:all}``, ``${policies:study,production}``: registered scheduler names of
    the given registry groups, in table order (so a grid need not list them)."""
    from .. import policies

    allowed = ("all", *policies.GROUPS)
    for g in groups or ("all",):
        if g not in allowed:
            raise ConfigError(f"${{policies:{g}}}: allowed groups are {', '.join(allowed)}")
    return [
        n
        for n in policies.names()
        if "all" in groups or not groups or policies.get(n).group in groups
    ]


OmegaConf.register_new_resolver("policies", _policies, replace=True)


def make_config(
    overrides: list[str] | tuple[str, ...] = (), config_name: str = "config"
) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra command-line style overrides and validate it.

    >>> cfg = make_config(["degradation.r=0.05", "cluster.pods=4"])
    """
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    return validate(cfg)


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


__all__ = ["CONF_DIR", "SCHEDULERS", "Config", "ConfigError", "make_config", "to_yaml", "validate"]
