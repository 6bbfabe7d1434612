"""What every process of a testbed run shares: the plan, the start handshake, the clock.

The conductor writes ``plan.json`` into the run directory and starts each process as
``python -m otfr_vec.testbed.<module> RUN_DIR [ARG]``. A process:

1. :func:`bootstrap`: asks to die with the conductor (``PR_SET_PDEATHSIG``) and exits
   at once if the conductor is already gone, so no process outlives its run;
2. sets up (binds its sockets), then :func:`ready` prints ``ready`` on stdout;
3. reads ``go T0`` on stdin: ``T0`` is the run's time zero on ``CLOCK_MONOTONIC``, which
   every process of the machine shares, so times in messages are absolute
   ``time.monotonic()`` values and the run's clock is ``time.monotonic() - T0``;
4. later stdin lines are commands (``dump``: write your records; ``stop``), read by
   :func:`stdin_lines` without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from .netns import die_with_parent

PLAN = "plan.json"


def bootstrap(argv: list[str]) -> tuple[Path, dict]:
    """Die with the parent; return the run directory and its plan."""
    parent = int(os.environ.get("OTFR_TESTBED_PARENT", "0"))
    die_with_parent()
    if parent and os.getppid() != parent:  # the conductor died before prctl took effect
        os._exit(1)
    run_dir = Path(argv[0])
    plan = json.loads((run_dir / PLAN).read_text())
    return run_dir, plan


def ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def stdin_lines():
    """Yield stdin lines (stripped) as they come, from inside an event loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.decode().strip()


async def wait_go(lines) -> float:
    """Wait for ``go T0``; return T0."""
    async for line in lines:
        if line.startswith("go "):
            return float(line.split()[1])
    raise SystemExit(1)  # stdin closed: the conductor is gone


def fatal(where: str, err: BaseException) -> None:
    """An unexpected exception in a testbed process ends the run: report it and exit."""
    import traceback

    sys.stderr.write(f"testbed {where}: fatal error\n")
    traceback.print_exception(err, file=sys.stderr)
    sys.stderr.flush()
    os._exit(70)


def fatal_on_error(task: asyncio.Task, where: str) -> None:
    """Done-callback: a background task that raised (or ended when it must not) is fatal."""
    if not task.cancelled():
        fatal(
            where,
            task.exception() or RuntimeError(f"{where}: a task that runs for the whole run ended"),
        )


def run_main(main, argv: list[str], where: str) -> None:
    """``asyncio.run(main(argv))``; any exception but an exit ends the process loudly."""
    try:
        asyncio.run(main(argv))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 - any crash ends the run
        fatal(where, err)
