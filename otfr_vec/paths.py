"""Output paths: what otfr_vec may create, resume or replace, and one writer at a time.

Nothing is deleted or replaced unless it is a store this tool wrote (its root attrs say
so and it holds nothing else); a path is checked for writability by really writing a
probe beside it (``os.access`` says yes to root on a read-only mount); ``lock`` holds
``<path>.lock`` while a process writes, naming the holder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
from pathlib import Path

import zarr

IDENTITY = "otfr_vec:sweep"  # attr of a sweep store: the configuration that defines the cells
CONFIG = "otfr_vec:config"  # attr of every store this tool writes: the resolved configuration
METADATA_FILES = {"zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata"}
PROBE = ".otfr_vec-probe-"  # the temporary file that tests whether a directory is writable


class StoreError(RuntimeError):
    """A store or output path that cannot be used; the message says why and what to do."""


def is_url(path: str) -> bool:
    return "://" in str(path)


def resolve(path, key: str = "store") -> str:
    """An absolute local path, or a URL whose protocol fsspec knows; StoreError otherwise."""
    path = str(path)
    if not path:
        raise StoreError(f"{key}='': give a path")
    if not is_url(path):
        return os.path.abspath(os.path.expanduser(path))
    proto = path.split("://", 1)[0]
    if proto == "file":
        return os.path.abspath(path.split("://", 1)[1])
    import fsspec

    try:
        fsspec.get_filesystem_class(proto)
    except ValueError:
        known = ", ".join(f"{p}://" for p in ("s3", "gs", "az", "abfs", "file"))
        raise StoreError(
            f"{key}={path}: unknown protocol {proto!r}; use a local path or a URL fsspec "
            f"knows (e.g. {known})"
        ) from None
    except ImportError as err:
        raise StoreError(f"{key}={path}: protocol {proto!r} needs a package: {err}") from None
    return path


def exists(path: str) -> bool:
    """Whether anything is at ``path`` (a local path, or a URL through fsspec)."""
    if not is_url(path):
        return os.path.exists(path)
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    return fs.exists(root)


def kind(path: str) -> str | None:
    """'sweep' or 'run' if ``path`` is a store this tool wrote (nothing else in it), else None."""
    if is_url(path):
        try:
            attrs = zarr.open_group(path, mode="r").attrs
        except Exception:
            return None
        return "sweep" if IDENTITY in attrs else "run" if CONFIG in attrs else None
    root = Path(path)
    if not root.is_dir() or foreign_entries(root):
        return None
    attrs = {}
    for name in ("zarr.json", ".zattrs"):
        try:
            meta = json.loads((root / name).read_text())
        except (OSError, ValueError):
            continue
        attrs = meta.get("attributes", {}) if name == "zarr.json" else meta
        break
    if IDENTITY in attrs:
        return "sweep"
    return "run" if CONFIG in attrs else None


def foreign_entries(root: Path) -> list[str]:
    """Entries of a directory that are not Zarr metadata files or Zarr arrays."""
    out = []
    for entry in root.iterdir():
        if entry.is_file() and (entry.name in METADATA_FILES or entry.name.startswith(PROBE)):
            continue  # (a probe left by a process killed while checking writability)
        if entry.is_dir() and any((entry / m).is_file() for m in METADATA_FILES):
            continue
        out.append(entry.name)
    return sorted(out)


def check_writable(path: str, key: str) -> None:
    """Raise StoreError unless ``path`` can be created or replaced (for a local path)."""
    if is_url(path):
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise StoreError(f"{key}={path}: is a file, not a store; choose another path")
    probe_dirs = [p] if p.is_dir() else []
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StoreError(f"{key}={path}: {parent} is a file, so the store cannot be made there")
    probe_dirs.append(parent)
    for d in probe_dirs:
        try:  # really write: os.access says yes to root on a read-only mount
            fd, probe = _mkstemp(d)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StoreError(
                f"{key}={path}: cannot write in {d} ({err.strerror}); choose a writable path"
            ) from None


def _mkstemp(d: Path):
    import tempfile

    return tempfile.mkstemp(prefix=PROBE, dir=d)


def check_target(path: str, key: str, replaceable: str) -> None:
    """Before any work: ``path`` must be new, or a store of kind ``replaceable`` that this
    tool wrote (to be resumed, or replaced); and writable."""
    check_writable(path, key)
    if not exists(path):
        return
    found = kind(path)
    if found is None:
        extra = foreign_entries(Path(path)) if not is_url(path) and Path(path).is_dir() else []
        what = (
            f"holds files otfr_vec did not write ({', '.join(extra[:5])}"
            + (", ..." if len(extra) > 5 else "")
            + ")"
            if extra
            else "is not a store written by otfr_vec"
        )
        raise StoreError(
            f"{key}={path}: exists and {what}; it is left untouched: choose a new path"
        )
    if found != replaceable:
        raise StoreError(
            f"{key}={path}: is an otfr_vec {found} store, not a {replaceable} store; it is "
            "left untouched: choose another path"
        )


def replace_dir(tmp: str, path: str) -> None:
    """Move the finished store ``tmp`` to ``path``, discarding what is there (a store of
    ours: checked by the caller), so ``path`` is always either the old or the new store."""
    if not os.path.exists(path):
        os.replace(tmp, path)
        return
    old = f"{path.rstrip('/')}.old-{os.getpid()}"
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old)


# ------------------------------------------------------------------ the writer lock


def _holder(lock_path: str) -> dict:
    try:
        return json.loads(Path(lock_path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(h: dict) -> str:
    if not h:
        return "an unknown process"
    return (
        f"pid {h.get('pid')} on host {h.get('host')} since {h.get('start')} "
        f"({h.get('command', '?')})"
    )


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True


@contextlib.contextmanager
def lock(path: str, key: str = "store", say=print):
    """Hold ``<path>.lock`` while writing ``path``: one writer at a time.

    The lock file names its holder (host, pid, start, command) and is held with
    ``flock``, which the kernel releases when the holder dies however it dies: a lock file
    left behind by a killed process is stale and taken over (with a note). Where the
    filesystem has no locks, a holder on this host whose pid is gone is stale too.
    """
    if is_url(path):
        say(f"note: {key}={path}: remote stores are not locked; run one writer at a time")
        yield
        return
    lock_path = f"{path.rstrip('/')}.lock"
    try:
        fd = _acquire(path, lock_path, key, say)
    except OSError as err:
        raise StoreError(
            f"{key}={path}: cannot write its lock file {lock_path} ({err.strerror or err})"
        ) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)


def _acquire(path: str, lock_path: str, key: str, say) -> int:
    """The descriptor of ``lock_path``, locked and naming this process."""
    import fcntl

    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start": now(),
        "command": " ".join(sys.argv)[:300],
    }
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _holder(lock_path)
            stale = holder.get("host") == me["host"] and not _alive(holder.get("pid"))
            if err.errno != errno.ENOLCK:
                os.close(fd)
                raise StoreError(
                    f"{key}={path}: another otfr_vec process is writing it: "
                    f"{_describe(holder)}; wait for it to finish or stop it (nothing was "
                    "changed)"
                ) from None
            if holder and not stale:
                os.close(fd)
                raise StoreError(
                    f"{key}={path}: locked by {_describe(holder)} and this filesystem cannot "
                    f"tell whether it still runs; if it does not, delete {lock_path}"
                ) from None
        try:  # the file may have been removed by its last holder between open and lock
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:  # through our descriptor: opening the file again could confuse the lock
            old = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
        except ValueError:
            old = {}
        if old and old.get("pid") != me["pid"]:
            say(f"note: {key}={path}: took over the stale lock of {_describe(old)}")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
