"""Figures and tables of the study's results (R1-R10) and of the baselines from sweep stores.

    python -m otfr_vec.report outputs/*.zarr --out outputs/report
    python -m otfr_vec.report outputs/*.zarr --use severity=outputs/severity.zarr

Each result says what it needs (swept keys, schedulers, variables) and which grid it comes
from. A store is chosen by what it is (its recorded grid and configuration), never by
its name or position: when several stores qualify and the grid does not settle it, the
report stops before writing anything and lists the candidates; ``--use KEY=PATH`` (a
result such as R1, or a grid such as severity) names the one. A store that lacks what a
result needs yields that result's skip message and the rest of the report; a
half-finished store gives what is finished and says what is not. Where the study's own
figure stands beside ours, the report says whether the store ran the study's setting,
naming every key that differs. R10 reads the benchmarks' record (benchmarks/RESULTS.json).

Modules, by job: ``stats`` (intervals), ``stores`` (opening, choosing), ``tables``,
``plots``, ``drawers`` (R1-R7, R9, S), ``mechanism`` (R8), ``baselines`` (B), ``bench``
(R10), ``cli``.
"""

from .cli import RESULTS, build_report, main
from .stats import mean_ci, reduction_ci
from .stores import ReportError, Skip, open_store

__all__ = [
    "RESULTS",
    "ReportError",
    "Skip",
    "build_report",
    "main",
    "mean_ci",
    "open_store",
    "reduction_ci",
]
