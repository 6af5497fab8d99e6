"""One writer per run directory (issue 18), with real processes: a holder, a second writer, SIGKILL, take-over."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.runlock import LOCK_NAME, RunLock, RunLocked, read_lock

GOOD = Path(__file__).parent / "studies" / "good.yaml"
HOLD = """
import sys, time
from pathlib import Path
from risk.runlock import RunLock
try:
    lock = RunLock(sys.argv[1]).acquire()
except Exception as err:
    print("locked", err, flush=True)
    sys.exit(0)
print("got", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.05)
"""


def _holder(run: Path, release: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(release)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().split()[0] in ("got", "locked")
    return proc


def test_second_writer_exits_2_naming_the_lock_and_pid_then_takes_over_after_sigkill(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    holder = _holder(run, tmp_path / "never")
    res = CliRunner().invoke(app, ["ingest", str(GOOD), "--out", str(run)])
    assert res.exit_code == 2, res.output
    msg = " ".join(res.output.split())
    assert str(run / LOCK_NAME) in msg and f"PID {holder.pid}" in msg, msg
    assert not (run / "stages.json").exists()  # the second writer wrote nothing

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert read_lock(run / LOCK_NAME)["pid"] == holder.pid  # the killed run left its lock behind
    res = CliRunner().invoke(app, ["ingest", str(GOOD), "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert "ingest" in json.loads((run / "stages.json").read_text())
    assert not (run / LOCK_NAME).exists()  # released at the end


def test_two_processes_on_one_stale_lock_exactly_one_wins(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "token": "old"}))
    release = tmp_path / "release"
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(release)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    first = [p.stdout.readline().split()[0] for p in procs]
    release.write_text("")
    for p in procs:
        p.wait(timeout=60)
    assert sorted(first) == ["got", "locked"], first


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "token": "x"}))
    with pytest.raises(RunLocked, match="elsewhere.example"):
        RunLock(run).acquire()
    assert read_lock(run / LOCK_NAME)["token"] == "x"


def test_reused_pid_counts_as_stale(tmp_path):
    """The PID is alive but started at another time than the lock says: a reused PID, the lock is stale."""
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": "x",
                                             "proc_start": "1"}))
    with RunLock(run) as lock:
        assert read_lock(run / LOCK_NAME)["token"] == lock.token
    assert not (run / LOCK_NAME).exists()


def test_release_leaves_someone_elses_lock_alone(tmp_path):
    run = tmp_path / "run"
    lock = RunLock(run).acquire()
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "token": "theirs"}))
    lock.release()
    assert read_lock(run / LOCK_NAME)["token"] == "theirs"
    assert not list(run.glob("*.tmp"))
