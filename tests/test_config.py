import pytest
from hydra.errors import ConfigCompositionException

from otfr_vec import ConfigError, make_config
from otfr_vec.config import SCHEDULERS


def test_defaults_are_the_study_setting():
    cfg = make_config()
    assert (cfg.cluster.pods, cfg.cluster.workers_per_pod) == (32, 32)
    assert cfg.degradation.r == 0.10 and cfg.telemetry.mode == "none"
    assert cfg.health.delay > 0 and cfg.health.miss > 0  # imperfect labels
    assert list(cfg.schedulers) == list(SCHEDULERS)


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("degradation.r=0", "degradation.r", "(0, 1]"),
        ("degradation.r=1.5", "degradation.r", "(0, 1]"),
        ("telemetry.mode=psychic", "telemetry.mode", "direct, delayed, none"),
        ("schedulers=[lc,magic]", "schedulers", "allowed: lc, fault_aware_lc"),
        ("health.delay=-1", "health.delay", "[0, inf)"),
        ("workload.rate=-3", "workload.rate", "(0, inf)"),
        ("network.kv_bytes_per_token=-1", "network.kv_bytes_per_token", "[0, inf)"),
        ("sim.dt=3", "sim.dt", "smaller than sim.timeout"),
        ("degradation.pods=40", "degradation.pods", "<= cluster.pods=32"),
        ("sim.timeout_scope=forever", "sim.timeout_scope", "ttft, queue, e2e"),
        ("degradation.pattern=zigzag", "degradation.pattern", "step, ramp, spread, flap"),
        ("health.noise=1.5", "health.noise", "[0, 1]"),
        ("cluster.prefill_fraction=0", "cluster.prefill_fraction", "(0, 1]"),
    ],
)
def test_bad_values_name_key_value_and_allowed(override, key, allowed):
    with pytest.raises(ConfigError) as err:
        make_config([override])
    msg = str(err.value)
    assert key in msg and allowed in msg
    assert override.split("=", 1)[1].strip("[]").split(",")[-1] in msg


def test_all_errors_reported_at_once():
    with pytest.raises(ConfigError) as err:
        make_config(["degradation.r=2", "health.miss=-0.5"])
    assert "degradation.r" in str(err.value) and "health.miss" in str(err.value)


def test_unknown_key_is_hydras_readable_error():
    with pytest.raises(ConfigCompositionException, match="degradation.rr"):
        make_config(["degradation.rr=0.1"])


def test_wrong_type_rejected():
    with pytest.raises(ConfigCompositionException):
        make_config(["cluster.pods=many"])
