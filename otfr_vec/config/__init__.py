"""Configuration: dataclass schema registered with Hydra, composition helper, validation."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .schema import SCHEDULERS, Config
from .validate import validate

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

ConfigStore.instance().store(name="base_config", node=Config)


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
