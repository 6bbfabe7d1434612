"""Refresh tests/baselines/metrics.json, the golden baseline of tests/test_baseline.py.

Run only on purpose, after an intended change of results (say why in the commit):

    .venv/bin/python benchmarks/update_baseline.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_baseline import CONFIGS, PATH, compute  # noqa: E402


def main() -> None:
    data = {name: compute(name) for name in sorted(CONFIGS)}
    PATH.parent.mkdir(parents=True, exist_ok=True)
    # json writes floats with repr, which round-trips exactly; NaN is written as NaN
    PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH} ({len(data)} configurations)")


if __name__ == "__main__":
    main()
