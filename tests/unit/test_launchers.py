"""Launchers without a broker: the local launcher's PIDs (state file, adoption by a new
controller, graceful stop of the whole process group, SIGKILL after the grace, a reused PID
never signalled) with stand-in worker commands, and the command launcher's commands."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mover.errors import UsageError
from workers.launchers import local as local_mod
from workers.launchers.command import CommandLauncher
from workers.launchers.local import LocalLauncher, process_start_time
from workers.launchers.registry import Launcher, ensure_builtin, launchers

#: A stand-in worker: starts a child (like a pool process), writes both PIDs, sleeps.
WORKER = """
import os, signal, subprocess, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[3] + "/" + sys.argv[1] + ".pids", "w").write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""


def launcher(tmp_path: Path, mode: str = "polite", grace_s: float = 5.0) -> LocalLauncher:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return LocalLauncher(
        state_dir=tmp_path / "state",
        command=[sys.executable, str(script), "{name}", mode, str(tmp_path)],
        grace_s=grace_s,
        host="testhost",
    )


def pids_of(tmp_path: Path, name: str) -> tuple[int, int]:
    path = tmp_path / f"{name}.pids"
    deadline = time.monotonic() + 10
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the stand-in worker did not start"
        time.sleep(0.05)
    main, child = path.read_text().split()
    return int(main), int(child)


def alive(pid: int) -> bool:
    return process_start_time(pid) is not None


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path):
    yield
    for path in tmp_path.glob("*.pids"):
        for pid in map(int, path.read_text().split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_start_records_pids_and_stop_kills_the_group(tmp_path: Path) -> None:
    la = launcher(tmp_path)
    names = la.start(2)
    assert len(names) == 2 and all(n.startswith("auto-") and n.endswith("@testhost") for n in names)
    main, child = pids_of(tmp_path, names[0])
    assert la.pids()[names[0]] == main
    state = json.loads(la.state_file.read_text())
    assert {e["name"] for e in state} == set(names)
    assert all(e["start_time"] == process_start_time(e["pid"]) for e in state)
    stopped = la.stop(1, prefer=[names[0]])
    assert stopped == [names[0]]
    assert not alive(main) and not alive(child), "the pool child outlived its worker"
    assert la.running() == [names[1]]
    assert la.stop_all() == [names[1]]
    assert la.running() == [] and json.loads(la.state_file.read_text()) == []


def test_stop_prefers_newest_without_preference(tmp_path: Path) -> None:
    la = launcher(tmp_path)
    first = la.start(1)[0]
    time.sleep(0.05)
    second = la.start(1)[0]
    assert la.stop(1) == [second]
    assert la.running() == [first]
    la.stop_all()


def test_sigkill_after_grace_for_a_worker_that_ignores_sigterm(tmp_path: Path) -> None:
    la = launcher(tmp_path, mode="stubborn", grace_s=0.5)
    name = la.start(1)[0]
    main, child = pids_of(tmp_path, name)
    started = time.monotonic()
    assert la.stop(1) == [name]
    assert 0.5 <= time.monotonic() - started < 6
    assert not alive(main) and not alive(child)


def test_a_new_launcher_adopts_the_workers_and_forgets_dead_ones(tmp_path: Path) -> None:
    """A restarted controller: a fresh launcher on the same state dir finds the running
    workers (not its children) and stops them; one that died meanwhile is forgotten."""
    first = launcher(tmp_path)
    a, b = first.start(2)
    main_a, _ = pids_of(tmp_path, a)
    main_b, child_b = pids_of(tmp_path, b)
    os.killpg(main_a, signal.SIGKILL)
    first._procs[main_a].wait(5)  # reaped by its parent (the first controller)
    second = launcher(tmp_path)
    assert second.running() == [b]
    assert second.stop_all() == [b]
    assert not alive(main_b) and not alive(child_b)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A state file naming a PID whose start time differs (the PID was reused by another
    process): the entry is dropped and that process is left alone."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        la = launcher(tmp_path)
        start = process_start_time(bystander.pid)
        assert start is not None
        la.state_file.write_text(
            json.dumps(
                [{"name": "auto-old@testhost", "pid": bystander.pid, "start_time": start - 1}]
            )
        )
        assert la.running() == []
        assert la.stop_all() == []
        assert alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_default_command_is_mover_worker(tmp_path: Path) -> None:
    la = LocalLauncher(state_dir=tmp_path, concurrency=2, queues=["mover.s3"], host="h")
    argv = la.argv("auto-1@h")
    assert argv[1:] == [
        "-m", "mover.cli.main", "worker", "-n", "auto-1@h", "-c", "2", "--pool", "prefork",
        "-Q", "mover.s3",
    ]  # fmt: skip
    with pytest.raises(UsageError):
        LocalLauncher(state_dir=tmp_path, concurrency=0)


def test_default_state_dir_follows_mover_state_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MOVER_STATE_DIR", str(tmp_path))
    assert local_mod.default_state_dir() == tmp_path / "launcher"


def test_command_launcher_runs_the_operators_commands(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    la = CommandLauncher(
        start_command=f'echo "start {{name}} $MOVER_WORKER_NAME" >> {log}',
        stop_command=f"echo stop {{name}} >> {log}",
        state_dir=tmp_path / "state",
    )
    a, b = la.start(2)
    assert la.running() == [a, b]
    assert CommandLauncher(
        start_command="true", stop_command="true", state_dir=tmp_path / "state"
    ).running() == [a, b], "a restarted controller knows what was started"
    assert la.stop(1, prefer=[f"{a}@somehost"]) == [a]
    assert la.running() == [b]
    assert log.read_text().splitlines() == [f"start {a} {a}", f"start {b} {b}", f"stop {a}"]


def test_command_launcher_failed_start_and_list(tmp_path: Path) -> None:
    la = CommandLauncher(start_command="exit 3", stop_command="true", state_dir=tmp_path)
    assert la.start(1) == [] and la.running() == []
    listing = tmp_path / "exists.txt"
    lb = CommandLauncher(
        start_command="true",
        stop_command="true",
        list_command=f"cat {listing}",
        state_dir=tmp_path / "b",
    )
    _, b = lb.start(2)
    listing.write_text(f"{b}@vm-7\n")
    assert lb.running() == [b], "a worker the list no longer shows is forgotten"
    with pytest.raises(UsageError, match="start-command"):
        CommandLauncher(start_command="true")


def test_registry_holds_both_launchers() -> None:
    ensure_builtin()
    assert {"local", "command"} <= set(launchers.names())
    assert issubclass(launchers.get("local"), Launcher)  # type: ignore[arg-type]
    assert issubclass(launchers.get("command"), Launcher)  # type: ignore[arg-type]
