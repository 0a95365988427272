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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mover.errors import UsageError
from mover.launcher import Launcher, launchers
from mover.workers.launchers import local as local_mod
from mover.workers.launchers.command import CommandLauncher
from mover.workers.launchers.local import LocalLauncher, process_start_time

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
    assert {"local", "command"} <= set(launchers.names())
    assert issubclass(launchers.get("local"), Launcher)  # type: ignore[arg-type]
    assert issubclass(launchers.get("command"), Launcher)  # type: ignore[arg-type]


# -- the controller's use of pools and launchers (workers/controller.py), without a broker ----
#
# The live test (tests/integration/test_autoscale_live.py) runs all of this on real workers;
# these pin the rules that a live run cannot show deterministically: a change in flight is
# never sent twice, a shrink waits for the last one to land, one launch at a time, the state
# survives a restart, a dry run sends nothing.


class FakeControl:
    """Records control commands; answers as Celery does (a list of {worker: reply})."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.refuse_shrink = False

    def pool_grow(self, n: int, destination: list[str], **_: object) -> list[dict[str, object]]:
        self.calls.append(("grow", n, destination[0]))
        return [{destination[0]: {"ok": "pool will grow"}}]

    def broadcast(
        self, command: str, arguments: dict[str, int], destination: list[str], **_: object
    ) -> list[dict[str, object]]:
        """``mover_pool_grow``: as a worker of an older mover, which does not know it."""
        return [{destination[0]: {"error": f"KeyError('{command}')"}}]

    def pool_shrink(self, n: int, destination: list[str], **_: object) -> list[dict[str, object]]:
        self.calls.append(("shrink", n, destination[0]))
        if self.refuse_shrink:
            return [{destination[0]: {"error": "Can't shrink pool. All processes busy!"}}]
        return [{destination[0]: {"ok": "pool will shrink"}}]


class FakeApp:
    def __init__(self) -> None:
        self.control = FakeControl()


class FakeObserver:
    """Serves the snapshot the test sets (the observer's own I/O is tested live)."""

    def __init__(self) -> None:
        self.pools: dict[str, int] = {}
        self.busy: dict[str, int] = {}
        self.depth = 0
        self.queue = "mover.file"

    def observe(self, now: float | None = None) -> object:
        from mover.autoscale import Observations, QueueObservation
        from mover.fleetstate.observer import Snapshot, WorkerInfo

        now = time.time() if now is None else now
        workers = {
            n: WorkerInfo(n, p, True, (self.queue,), busy=self.busy.get(n, 0))
            for n, p in self.pools.items()
        }
        obs = QueueObservation(
            self.queue, self.depth, consumers=len(workers), pool_sizes=dict(self.pools), time_s=now
        )
        return Snapshot(Observations.of(now, obs), workers)

    def depths(self, queues: list[str]) -> dict[str, int]:
        self.looks = getattr(self, "looks", 0) + 1
        return {q: self.depth if q == self.queue else 0 for q in queues}

    def close(self) -> None:
        pass


class FakeLauncher(Launcher):
    name = "fake"

    def __init__(self) -> None:
        self.names: list[str] = []
        self.started: list[str] = []
        self.stopped: list[str] = []

    def start(self, n: int = 1) -> list[str]:
        new = [f"auto-{len(self.started) + i}@h" for i in range(n)]
        self.started += new
        self.names += new
        return new

    def stop(self, n: int = 1, prefer: Sequence[str] = ()) -> list[str]:
        victims = [p for p in prefer if p in self.names][:n] or self.names[-n:]
        self.names = [x for x in self.names if x not in victims]
        self.stopped += victims
        return victims

    def running(self) -> list[str]:
        return list(self.names)


def seed_linear_store(redis_client: Any, name: str) -> None:
    """A controller that has measured its queues scaling linearly to 32 slots (saved state):
    these tests pin the controller's mechanics, not the rules that explore unmeasured levels
    (tests/unit/test_autoscale_learning.py)."""
    from mover.workers.controller import STATE_PREFIX, ControllerState

    key = f"{STATE_PREFIX}{name}:state"
    if not redis_client.exists(key):
        levels = {str(n): [n * 50e6, n * 1.0, time.time()] for n in range(1, 33)}
        learned = {q: {"levels": levels} for q in ("mover.file", "mover.store.capped")}
        redis_client.set(key, ControllerState(learned=learned).to_json())


def controller(redis_client: object, observer: FakeObserver, **config: object) -> object:
    from mover.workers.controller import Controller, ControllerConfig

    params = config.pop("params", {"target_backlog_per_slot": 10, "scale_down_window_s": 0})
    launcher = config.pop("launcher", None)
    cfg = ControllerConfig(strategy="target-tracking", params=params, **config)  # type: ignore[arg-type]
    seed_linear_store(redis_client, cfg.name)
    return Controller(
        cfg,
        FakeApp(),
        redis_client,  # type: ignore[arg-type]
        launcher=launcher,  # type: ignore[arg-type]
        observer=observer,  # type: ignore[arg-type]
    )


@pytest.fixture
def fake_redis() -> object:
    import fakeredis

    return fakeredis.FakeRedis()


def test_controller_grows_once_per_change_and_splits_across_workers(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1, "w2@h": 1}, 100
    c: Any = controller(fake_redis, obs, max_per_worker=8)
    tick = c.tick(now=1000.0)
    assert tick.targets == {"w1@h": 5, "w2@h": 5}
    assert sorted(c.app.control.calls) == [("grow", 4, "w1@h"), ("grow", 4, "w2@h")]
    c.tick(now=1001.0)  # the grows have not landed yet: nothing is sent again
    assert len(c.app.control.calls) == 2
    obs.pools = {"w1@h": 5, "w2@h": 5}
    c.tick(now=1003.0)
    assert len(c.app.control.calls) == 2 and c.state.changes == {}


def test_controller_shrinks_idle_children_once_until_it_lands(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.busy, obs.depth = {"w1@h": 4}, {"w1@h": 1}, 0
    c: Any = controller(fake_redis, obs)
    c.state.concurrency = {"mover.file": 4}
    c._loaded = True
    c.tick(now=1000.0)
    assert c.app.control.calls == [("shrink", 3, "w1@h")]
    c.tick(now=1001.0)  # the dying children are still listed: never shrink them twice
    assert c.app.control.calls == [("shrink", 3, "w1@h")]
    obs.pools = {"w1@h": 1}
    c.tick(now=1002.0)
    assert c.app.control.calls == [("shrink", 3, "w1@h")]


def test_controller_does_not_shrink_busy_pools_and_retries(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.busy, obs.depth = {"w1@h": 3}, {"w1@h": 3}, 0
    c: Any = controller(fake_redis, obs)
    tick = c.tick(now=1000.0)
    assert tick.refused == ["w1@h"] and c.app.control.calls == []
    assert "shrink refused (all busy, retry next tick)" in tick.line
    obs.busy = {"w1@h": 1}
    c.tick(now=1001.0)
    assert c.app.control.calls == [("shrink", 2, "w1@h")]


def test_controller_launches_when_pools_are_full_then_stops_when_idle(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 2}, 60
    launcher = FakeLauncher()
    c: Any = controller(fake_redis, obs, max_per_worker=2, launcher=launcher, idle_s=5.0)
    tick = c.tick(now=1000.0)  # wants 6, w1 holds 2 and is full: 4 short -> 2 workers
    assert launcher.started == ["auto-0@h", "auto-1@h"] and "launch" in tick.line
    c.tick(now=1001.0)  # they have not joined yet: no more launches
    assert len(launcher.started) == 2
    obs.pools = {"w1@h": 2, "auto-0@h": 1, "auto-1@h": 1}
    c.tick(now=1002.0)
    obs.depth = 0
    c.tick(now=1003.0)  # surplus starts
    assert launcher.stopped == []
    c.tick(now=1009.0)
    assert len(launcher.stopped) == 1 and launcher.stopped[0].startswith("auto-")
    c.shutdown()
    assert launcher.running() == [], "the controller's exit stops what it launched"


def test_controller_never_launches_beyond_max_workers(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1}, 1000
    launcher = FakeLauncher()
    c: Any = controller(fake_redis, obs, max_per_worker=1, max_workers=1, launcher=launcher)
    c.tick(now=1000.0)
    assert launcher.started == ["auto-0@h"]
    obs.pools = {"w1@h": 1, "auto-0@h": 1}
    c.tick(now=1001.0)
    assert launcher.started == ["auto-0@h"]


def test_controller_state_survives_a_restart(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1}, 50
    first: Any = controller(fake_redis, obs)
    first.tick(now=1000.0)
    assert first.app.control.calls == [("grow", 4, "w1@h")]
    first._release_lock()  # the first controller died; its lock expired
    second: Any = controller(fake_redis, obs)
    second.tick(now=1001.0)
    assert second.app.control.calls == [], "the grow in flight is known after the restart"
    assert second.state.concurrency == {"mover.file": 5}
    assert second.state.history, "the strategy's history came back"


def test_second_controller_waits_for_the_lock(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1}, 50
    first: Any = controller(fake_redis, obs)
    second: Any = controller(fake_redis, obs)
    assert first.tick(now=1000.0) is not None
    assert second.tick(now=1000.5) is None and second.app.control.calls == []


def test_controller_dry_run_sends_nothing(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1}, 500
    launcher = FakeLauncher()
    c: Any = controller(fake_redis, obs, dry_run=True, max_per_worker=2, launcher=launcher)
    r: Any = fake_redis
    seeded = r.get("mover:autoscale:default:state")
    tick = c.tick(now=1000.0)
    assert c.app.control.calls == [] and launcher.started == []
    assert "dry run: nothing sent" in tick.line and "would start" in tick.line
    assert r.keys("mover:autoscale:*") == [b"mover:autoscale:default:state"]
    assert r.get("mover:autoscale:default:state") == seeded, "a dry run writes no state"
    c.shutdown()


def test_controller_respects_store_max_streams(
    fake_redis: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mover.fleetstate import limits

    config = tmp_path / "config.toml"
    config.write_text(f'[stores.capped]\nurl = "file://{tmp_path}/c/"\nmax_streams = 2\n')
    monkeypatch.setenv("MOVER_CONFIG", str(config))
    limits._limits_cache.clear()
    obs = FakeObserver()
    obs.queue, obs.pools, obs.depth = "mover.store.capped", {"w1@h": 1, "w2@h": 1}, 500
    c: Any = controller(fake_redis, obs)
    tick = c.tick(now=1000.0)
    assert tick.decision.desired == {"mover.store.capped": 2}
    assert sum(tick.targets.values()) == 2


def test_controller_decides_at_once_when_work_arrives_between_ticks(fake_redis: object) -> None:
    """A 20 s interval, queue lengths polled every 20 ms: a burst published after the first
    tick is decided on at the next poll, not 20 s later."""
    import threading

    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1}, 0
    c: Any = controller(fake_redis, obs, interval_s=20.0, poll_s=0.02)
    runner = threading.Thread(target=c.run, kwargs={"ticks": 2}, daemon=True)
    runner.start()
    while not c._depths:  # the first tick has looked
        time.sleep(0.01)
    assert c.app.control.calls == []
    polled = obs.looks if hasattr(obs, "looks") else 0
    obs.depth = 100
    runner.join(5)
    assert not runner.is_alive(), "the second tick did not come"
    assert obs.looks > polled
    assert c.app.control.calls == [("grow", 7, "w1@h")]  # ceil(100 / 10) = 10, 8 a worker


def test_controller_without_polling_waits_for_the_interval(fake_redis: object) -> None:
    obs = FakeObserver()
    obs.pools, obs.depth = {"w1@h": 1}, 0
    c: Any = controller(fake_redis, obs, interval_s=60.0, poll_s=0)
    c.tick(now=1000.0)
    obs.depth = 40
    started = time.monotonic()
    c._stop.set()  # the wait returns at once when stopped: no poll ran meanwhile
    c._wait_for_next_tick(started)
    assert not hasattr(obs, "looks")
