"""Policy kernel ids: one integer per kernel family; ``Params.policy`` selects it.

The study's five and every policy that only changes the score's weights share
``SCORE``; compositions (a production mechanism plus the risk price) share their
mechanism's id with ``lambda_r`` set. One compiled kernel serves them all.
"""

SCORE, ENVOY_OD, PEAK_EWMA, BREAKER, EPP, PREQUAL, WRR, P2C_LC = range(8)
