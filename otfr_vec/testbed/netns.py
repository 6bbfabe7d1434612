"""A private, anonymous network namespace for one testbed run, and the checks around it.

The testbed's conductor process calls :func:`enter_private_netns` as the first thing it
does: ``unshare(CLONE_NEWNET)`` gives it a fresh network namespace holding only a (down)
loopback. Every process of the run (router, workers, load generator) is forked from the
conductor and inherits it; each is started with ``PR_SET_PDEATHSIG`` so that it dies with
its parent. The namespace is never bind-mounted under ``/run/netns``: it exists exactly
as long as a process is inside it, so when the last process of a run exits, however it
exits (normal end, SIGINT, SIGTERM, a crash, even SIGKILL of the conductor), the kernel
removes the namespace with its loopback qdiscs, filters and the IFB device. Nothing of
the run is visible in ``ip netns list`` or in the host's network namespace at any time.

:func:`netns_id` names a namespace by its inode (``/proc/PID/ns/net``) and
:func:`netns_alive` says whether any process is still inside it: the host side uses them
to check that a finished run left nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import signal

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1


class NotRootError(PermissionError):
    """The testbed needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for namespaces and tc."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError(
            "the testbed needs root: it creates a private network namespace and shapes its "
            "loopback with Linux traffic control (CAP_SYS_ADMIN and CAP_NET_ADMIN); run it as "
            "root, e.g. `sudo .venv/bin/python -m otfr_vec.testbed run`, or use the simulator "
            "(`python -m otfr_vec.run`), which needs no privileges"
        )


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent thread exits."""
    if _libc().prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")


def enter_private_netns() -> None:
    """Move the calling (single-threaded) process into a new anonymous network namespace."""
    require_root()
    if _libc().unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def netns_id(pid: int | str = "self") -> int:
    """The inode that identifies the network namespace of process ``pid``."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def netns_pids(ns: int) -> list[int]:
    """Processes whose network namespace is ``ns`` (empty once the namespace is gone)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}/ns/net").st_ino == ns:
                out.append(int(name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def netns_alive(ns: int) -> bool:
    return bool(netns_pids(ns))
