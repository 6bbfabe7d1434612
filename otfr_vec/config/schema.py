"""Typed configuration schema: every public key of docs/MODEL.md section 9, with defaults.

The defaults reproduce the study's setting (32 x 32 workers, r = 0.10, telemetry none,
imperfect labels). Each magnitude says where it comes from. Hydra validates YAML and
command-line overrides against these dataclasses (types, unknown keys); the value
ranges are checked by :mod:`otfr_vec.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

# keys that change how a run is carried out, never its results (not a store's identity)
RUNTIME_KEYS = ("out", "sim.memory_limit")

# the default scheduler list: the study's five (every registered policy: otfr_vec.policies)
SCHEDULERS = ("lc", "fault_aware_lc", "otfr", "fault_aware_otfr", "oracle")


@dataclass
class ClusterConfig:
    pods: int = 32  # the study: 32 pods x 32 workers = 1024
    workers_per_pod: int = 32
    prefill_fraction: float = 0.5  # share of each pod's workers that prefill (1 = prefill-only)
    cross_pod_cost: float = 1.0  # path_cost of a target outside the ingress / prefill pod


@dataclass
class WorkloadConfig:
    kind: str = "synthetic"  # synthetic | trace
    # requests/s; null = load x prefill capacity (load 0.7 -> 1792 req/s at the defaults)
    rate: float | None = None
    load: float = 0.7  # offered prefill load, used when rate is null (docs/MODEL.md 7a)
    prompt_dist: str = "lognormal"  # constant | exponential | lognormal
    prompt_mean: float = 2000.0  # tokens; long-context chat/RAG prompts (docs/MODEL.md 7a)
    prompt_sigma: float = 0.8  # lognormal shape (sigma of log)
    prompt_max: float = 8192.0  # clip, tokens (a common context limit)
    output_dist: str = "exponential"
    output_mean: float = 256.0  # tokens (docs/MODEL.md 7a)
    output_sigma: float = 0.8
    output_max: float = 4096.0
    # trace replay (kind=trace)
    # a path to an Azure CSV or Mooncake JSONL trace, or a packaged trace name
    # (azure_code, azure_conv, mooncake_conversation; see otfr_vec/data/traces/SOURCES.md)
    trace: str | None = None
    trace_format: str = "auto"  # auto | azure | mooncake
    trace_speedup: float = 1.0  # arrival times are divided by this
    trace_rate: float | None = None  # if set, scale the trace to this mean rate (req/s)
    # if set, scale the trace to this offered prefill load (like workload.load), so one
    # setting follows the cluster size and the trace's own mean prompt
    trace_load: float | None = None
    trace_start: float = 0.0  # window into the trace, seconds from its first arrival
    trace_end: float | None = None
    trace_loop: bool = True  # loop the window until sim.duration; false: stop at its end


@dataclass
class ServiceConfig:
    prefill_tokens_per_s: float = 10000.0  # per prefill worker; ~H100 TP-8 on a 70B model
    decode_slots: int = 48  # concurrent sequences per decode worker (continuous batching)
    tpot: float = 0.03  # s per output token (30 ms, a typical 70B decode SLO)


@dataclass
class NetworkConfig:
    # bytes/s of usable KV bandwidth per worker at f = 1: 100 Gb/s = 12.5 GB/s, a 400 Gb/s
    # NIC shared by 4 GPUs; gives rho_net ~ 0.18 at the default load (docs/MODEL.md section 2)
    bw0: float = 12.5e9
    # Llama-3-70B: 80 layers x 8 KV heads x 128 dim x 2 (K,V) x 2 bytes (bf16) = 327,680
    kv_bytes_per_token: float = 327680.0


@dataclass
class DegradationConfig:
    r: float = 0.10  # residual bandwidth factor of a degraded pod, in (0, 1]
    pattern: str = "step"  # step | ramp | spread | flap | none
    pods: float = 0.125  # < 1: fraction of pods; >= 1: a count (1/8 of 32 = 4 pods)
    onset: float = 100.0  # s
    duration: float = 120.0  # s
    ramp: float = 30.0  # s, ramp: time to slide from 1 to r (and back at recovery)
    spread_interval: float = 10.0  # s, spread: time for the degradation to reach the next pod
    period: float = 20.0  # s, flap: one degraded + healthy cycle
    duty: float = 0.5  # flap: degraded share of a period


@dataclass
class FaultsConfig:
    workers: float = 0.0  # hard faults: < 1 a fraction of workers, >= 1 a count
    onset: float = 100.0
    duration: float = 60.0


@dataclass
class TelemetryConfig:
    mode: str = "none"  # direct | delayed | none (the study's deployable setting)
    delay: float = 10.0  # s, for delayed


@dataclass
class HealthConfig:
    threshold: float = 0.5  # truth: unhealthy when the pod factor is below this
    delay: float = 30.0  # s, detection window (docs/MODEL.md 7a)
    miss: float = 0.3  # probability an episode of a pod is never labelled
    noise: float = 0.0  # probability a label flips at each refresh
    refresh: float = 5.0  # s between label refreshes
    granularity: str = "pod"  # pod | worker


@dataclass
class PriceConfig:
    alpha: float = 0.2  # utilisation
    beta: float = 1.0  # observed bandwidth deficit (absent with telemetry none)
    gamma: float = 1.0  # timeout rate
    eta: float = 1.0  # failure rate
    halflife: float = 5.0  # s, EWMA half-life; near the deadline works best (docs/MODEL.md 7a)
    kappa: float = 0.5  # locational blend with the pod mean


@dataclass
class WeightsConfig:
    lambda_f: float = 1000.0  # health penalty: strong but finite
    lambda_r: float = 3.0  # risk price
    lambda_p: float = 0.1  # path cost


@dataclass
class SimConfig:
    dt: float = 0.01  # s per step
    duration: float = 300.0  # s
    warmup: float = 20.0  # s excluded from the metrics
    timeout: float = 3.0  # s, TTFT deadline
    timeout_scope: str = "ttft"  # ttft | queue | e2e
    seed: int = 0
    window: float = 1.0  # s per time-series window
    # GiB: a run whose estimated peak memory (otfr_vec/memory.py) exceeds this is refused
    # before anything is allocated; null = 80 % of this machine's physical memory. How a
    # run is carried out, not what it computes: not part of a sweep store's identity.
    memory_limit: float | None = None


@dataclass
class ScenarioConfig:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    price: PriceConfig = field(default_factory=PriceConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    schedulers: list[str] = field(default_factory=lambda: list(SCHEDULERS))
    out: str | None = None  # run: also save the dataset to this Zarr path


def _with_policy_knobs(base: type) -> type:
    """``base`` plus one section per policy that has knobs (``envoy_od.interval``, ...),
    each the policy's own knob dataclass from the registry (otfr_vec/policies)."""
    from ..policies import knob_sections

    sections = [(name, cls, field(default_factory=cls)) for name, cls in knob_sections().items()]
    cls = make_dataclass("Config", sections, bases=(base,))
    cls.__module__ = __name__
    cls.__doc__ = "A scenario: the study's keys and every policy's knob section."
    return cls


Config = _with_policy_knobs(ScenarioConfig)
