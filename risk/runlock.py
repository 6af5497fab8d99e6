"""One writer per run directory: the lock file ``<run dir>/.lock``.

Every command that writes into a run directory holds `RunLock` for as long as it writes. The lock file
is JSON ``{"pid", "host", "started", "proc_start", "command", "token"}`` and appears atomically with its
whole content (written to a private temporary file, then ``os.link``-ed to ``.lock``, which fails if
``.lock`` exists — the same all-or-nothing creation as ``O_CREAT | O_EXCL``, without a window in which
another process could read an empty lock).

A second writer gets `RunLocked` (an `InputError`: the CLI exits 2) naming the lock file and the
holder's PID and host. A lock is **stale** when its holder is on this host and its process is gone: the
PID does not exist, is a zombie, or now belongs to a process that started at another time (PID reuse;
``proc_start`` is the start time from ``/proc/<pid>/stat``). A stale lock is taken over under an
exclusive ``flock`` on the run directory, after re-reading it: two processes that both find the same
stale lock cannot both remove it and each believe it holds the new one. A lock of another host is never
taken over (its PID cannot be checked): remove it by hand once that run is gone.

>>> with RunLock("runs/demo"):      # doctest: +SKIP
...     Pipeline(STAGES, ctx).run()
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from risk.errors import InputError

LOCK_NAME = ".lock"


class RunLocked(InputError):
    """Another live process holds the run directory's lock."""


def _proc_start(pid: int) -> str | None:
    """Start time of a process (clock ticks since boot, /proc/<pid>/stat field 22), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def holder_alive(info: dict) -> bool:
    """Is the process recorded in a lock alive? (Locks of other hosts count as alive.)"""
    if info.get("host") != socket.gethostname():
        return True
    try:
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    if _proc_state(pid) in ("Z", "X"):
        return False
    recorded, now = info.get("proc_start"), _proc_start(pid)
    return recorded is None or now is None or recorded == now


def read_lock(path: Path) -> dict | None:
    """The lock's JSON content, ``{}`` if unreadable, None if there is no lock."""
    try:
        return json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


class RunLock:
    """Exclusive lock on a run directory (created if missing); a context manager.

    Parameters
    ----------
    run_dir : the run directory.
    command : what the holder is doing (shown to a second writer).
    """

    def __init__(self, run_dir: str | Path, command: str | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.command = command or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))
        self.token: str | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        pid = os.getpid()
        info = {"pid": pid, "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "proc_start": _proc_start(pid), "command": self.command, "token": token}
        tmp = self.run_dir / f"{LOCK_NAME}.{token}.tmp"
        tmp.write_text(json.dumps(info))
        try:
            for _ in range(50):
                try:
                    os.link(tmp, self.path)
                    self.token = token
                    return self
                except FileExistsError:
                    pass
                held = read_lock(self.path)
                if held is None:  # released meanwhile: try again
                    continue
                if held == {} or holder_alive(held):
                    if held == {}:  # a lock written by hand, or truncated: not ours to judge
                        raise RunLocked("run directory is locked (unreadable lock file); remove it if no run "
                                        "is writing here", path=self.path, field="lock")
                    raise RunLocked(
                        f"run directory is in use by PID {held.get('pid')} on {held.get('host')} since "
                        f"{held.get('started')} ({held.get('command', '?')}); wait for it to finish, or remove "
                        "the lock file if that process is gone", path=self.path, field="lock")
                self._break_stale(held)
            raise RunLocked("could not take the run directory's lock (contended)", path=self.path, field="lock")
        finally:
            tmp.unlink(missing_ok=True)

    def _break_stale(self, stale: dict) -> None:
        """Remove ``stale`` if ``.lock`` still is that very lock, under a flock of the run directory."""
        fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = read_lock(self.path)
            if current is not None and current.get("token") == stale.get("token") and not holder_alive(current):
                self.path.unlink()
        finally:
            os.close(fd)  # releases the flock

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        if self.token is None:
            return
        fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = read_lock(self.path)
            if current and current.get("token") == self.token:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
            self.token = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
