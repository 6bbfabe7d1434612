"""The SimPy model of benchmarks/jsq.py simulates the same queues as the kernels.

The speed ratio in benchmarks/RESULTS.md is only meaningful if both model the same
system: one pod of single-server FIFO queues, join the shortest queue, exponential
service in whole tokens, 1 s patience. At load 0.97 reneging is common enough to compare:
the timeout counts (independent runs, so Var(K - S) = phi (K + S); timeouts come in bursts
when queues are long: phi up to ~6 here) agree within 4 sigma, and so do the arrivals.
"""

from __future__ import annotations

import math

from benchmarks import jsq  # run from the repository root (make test: python -m pytest)


def test_simpy_jsq_model_matches_the_kernels(monkeypatch):
    monkeypatch.setattr(jsq, "LOAD", 0.97)
    k = jsq.kernels(16, 400.0)
    s = jsq.simpy_model(16, 400.0, seed=3)
    assert abs(k["requests"] - s["requests"]) <= 4 * math.sqrt(k["requests"] + s["requests"])
    tk, ts = k["timed_out"], s["timed_out"]
    assert tk > 50 and ts > 50  # the regime where the patience matters
    assert abs(tk - ts) <= 4 * math.sqrt(6.0 * (tk + ts)) + 4, (tk, ts)
    # and a real difference is caught: the same model at load 0.9 has far fewer timeouts
    monkeypatch.setattr(jsq, "LOAD", 0.9)
    low = jsq.simpy_model(16, 400.0, seed=3)["timed_out"]
    assert abs(tk - low) > 4 * math.sqrt(6.0 * (tk + low)) + 4, (tk, low)
