"""The llm-d endpoint picker: ``epp`` and, with the risk price as one more scorer,
``epp_otfr``.

Weighted scorers on engine metrics scraped every ``scrape_interval``. Prefill workers:
the default profile, queue depth (weight 2) and KV-cache utilisation (weight 2); decode
workers: the P/D deployment's decode profile, queue depth (weight 1). Both profiles'
prefix-cache scorers (weights 3 and 2) are left out because the model has no prefix
reuse (they would score 0 for every worker). Max-score picker with a random tie-break.
A worker whose snapshot is older than ``staleness`` counts as saturated and is filtered
out. The picker does not see its own decisions between scrapes. KV utilisation of a
prefill worker: requests whose KV it holds (in prefill or not yet sent) over
``service.decode_slots`` (the model has no KV memory; this is the capacity a decode
worker has).

Sources: llm-d/llm-d-inference-scheduler ``pkg/epp/config/loader/defaults.go`` (scorer
weights), ``deploy/config/pd-epp-config.yaml`` (the decode profile),
``scorer/queuedepth``, ``scorer/kvcacheutilization``, ``picker/maxscore``,
``server/options.go`` (50 ms refresh), ``saturationdetector/utilization`` (200 ms
staleness).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import epp as K
from ..kernels.policy.ids import EPP
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "llm-d inference scheduler default profile (defaults.go, options.go)"


@dataclass
class Epp:
    scrape_interval: float = knob(0.05, "s between metric scrapes", SRC, 0, None, True)
    staleness: float = knob(0.2, "s after which a snapshot counts as saturated", SRC, 0)
    queue_weight: float = knob(2.0, "prefill: weight of the queue-depth scorer", SRC, 0)
    kv_weight: float = knob(2.0, "prefill: weight of the KV-cache-utilisation scorer", SRC, 0)
    decode_queue_weight: float = knob(
        1.0, "decode: weight of the queue-depth scorer", "llm-d pd-epp-config.yaml", 0
    )
    decode_kv_weight: float = knob(
        0.0, "decode: weight of the KV-cache-utilisation scorer", "llm-d pd-epp-config.yaml", 0
    )


INDEX = {
    K.K_SCRAPE: "scrape_interval",
    K.K_STALE: "staleness",
    K.K_QUEUE_W: "queue_weight",
    K.K_KV_W: "kv_weight",
    K.K_DQUEUE_W: "decode_queue_weight",
    K.K_DKV_W: "decode_kv_weight",
}


def _bind(price: bool):
    def bind(cfg, knobs: Epp) -> Binding:
        params = hooked(
            EPP, cfg, price, has_extra=1, load_weight=0.0, tick=float(knobs.scrape_interval)
        )
        return Binding(params, knob_vector(knobs, INDEX, K.N_KNOBS), (K.N_I, K.N_F, 0, 0, 0))

    return bind


register(
    Policy(
        "epp",
        "llm-d endpoint picker: queue and KV scorers on 50 ms metric snapshots",
        SRC + "; scorer/queuedepth, scorer/kvcacheutilization, picker/maxscore",
        "#bcbd22",
        15,
        "production",
        knobs=Epp,
        bind=_bind(False),
    )
)
register(
    Policy(
        "epp_otfr",
        "epp with the risk price as one more scorer (minus lambda_r x pi)",
        SRC + "; the study's risk price (price.*, weights.lambda_r) as one more term",
        "#6b6b00",
        31,
        "composition",
        base="epp",
        knobs=Epp,
        knobs_key="epp",
        bind=_bind(True),
    )
)

__all__ = ["Epp"]
