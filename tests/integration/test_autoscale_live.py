"""The autoscale controller on real parts: a private Redis, real prefork workers started with
``-c 1`` (never ``--autoscale``), a throttled HTTP source that makes chunks take about a second
and counts the GETs it serves at once, and ``mover autoscale`` run as a subprocess.

- a flood of 200 chunks: the controller grows both pools to ``--max-per-worker`` (seen in
  ``inspect().stats()``), then, every pool being full, the local launcher starts a third worker
  that runs chunks; when the backlog is gone the pools shrink back and the launched worker is
  stopped (its PID gone);
- ``--dry-run`` changes no pool and launches nothing while chunks wait;
- a store with ``max_streams = 2`` is never read by more than 2 chunks at once, even with 6
  slots in the fleet (counted by the HTTP server and by the semaphore's high-water mark);
- a pool whose every child is busy retires children as their chunks finish
  (``mover_pool_shrink_to``), with no chunk lost;
- the controller's lines for a grow, a hold, a cap and a shrink state the pool that
  ``inspect().stats()`` showed (docs/AUTOSCALE.md quotes them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_fleet as fleet_tests
from tests.integration.test_fleet import (
    MOVER,
    ROOT,
    _Throttled,
    random_file,
    wait_final,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.redis,
    pytest.mark.celery,
    pytest.mark.slow,
]

KiB = 1024
CHUNK = 256 * KiB
#: Bytes per second of each GET: one chunk takes about a second.
RATE = 256 * KiB


class _Counting(_Throttled):
    """A ranged server at ``server.rate`` bytes/s a request, counting the GETs it serves at
    once. Each piece is paced *before* it is sent, so a request counts as active exactly while
    its client still waits for bytes (the fleet tests' server sleeps after the last piece)."""

    def do_GET(self) -> None:
        server: Any = self.server
        path = self._target()
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        with server.lock:
            server.active += 1
            server.peak = max(server.peak, server.active)
            server.ranges.append((path.name, self.headers.get("Range", "")))
        counted = True
        try:
            if match:
                start, end = int(match.group(1)), min(size - 1, int(match.group(2) or size - 1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    data = f.read(min(32 * KiB, left))
                    time.sleep(len(data) / server.rate)
                    if left == len(data):  # the client is done once it has the last byte
                        with server.lock:
                            server.active -= 1
                        counted = False
                    self.wfile.write(data)
                    left -= len(data)
        except OSError:
            pass
        finally:
            if counted:
                with server.lock:
                    server.active -= 1


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("autoscale-http")
    random_file(root / "flood.bin", 200 * CHUNK)
    random_file(root / "dry.bin", 30 * CHUNK)
    random_file(root / "capped.bin", 16 * CHUNK)
    random_file(root / "retire.bin", 24 * CHUNK)
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    server.daemon_threads = True
    server.root, server.rate, server.seen = root, RATE, set()
    server.lock, server.active, server.peak = threading.Lock(), 0, 0
    server.ranges = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


class Fleet(fleet_tests.Fleet):
    """test_fleet's fleet of real workers, with pools of one (the controller grows them)."""

    concurrency = 1

    def controller(self, *args: str, log_name: str = "controller") -> tuple[subprocess.Popen, Path]:
        log = self.folder / f"{log_name}.log"
        proc = subprocess.Popen(
            [*MOVER, "autoscale", *args],
            env=self.env,
            stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        return proc, log

    def copy(self, source: str, dst: Path) -> str:
        out = subprocess.run(
            [
                *MOVER,
                "copy",
                source,
                str(dst),
                "--chunk-size",
                str(CHUNK),
                "--executor",
                "celery",
                "--detach",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def jobs(self) -> Any:
        from mover.jobstores.redis import RedisJobStore

        return RedisJobStore(self.redis.url)

    def app(self) -> Any:
        from mover.workers.app import make_app

        old = os.environ.get("MOVER_BROKER_URL")
        os.environ["MOVER_BROKER_URL"] = self.redis.url
        try:
            return make_app()
        finally:
            if old is None:
                del os.environ["MOVER_BROKER_URL"]
            else:
                os.environ["MOVER_BROKER_URL"] = old

    def pools(self, app: Any) -> dict[str, int]:
        """Real pool size of every worker: ``inspect().stats()['pool']['processes']``."""
        import redis

        for attempt in range(3):
            try:
                stats = app.control.inspect(timeout=1.0).stats() or {}
                break
            except redis.exceptions.ConnectionError:
                # A pooled connection the session's Redis closed (seen once in CI right at a
                # module's start, after another module's restart test): ask again.
                if attempt == 2:
                    raise
                time.sleep(0.5)
        return {n.partition("@")[0]: len(s["pool"]["processes"]) for n, s in stats.items()}


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 40) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def fleet(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory, source: Any
) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("autoscale")
    (folder / "config.toml").write_text(
        f'[stores.capped]\nurl = "{source.url}/"\nmax_streams = 2\n'
    )
    env = dict(os.environ)
    env.update(
        MOVER_BROKER_URL=redis_server.url,
        MOVER_STATE_DIR=str(folder / "state"),
        MOVER_CONFIG=str(folder / "config.toml"),
        MOVER_VISIBILITY_TIMEOUT_S="30",
        MOVER_RESTORE_INTERVAL_S="5",
        PYTHONPATH=str(ROOT),
    )
    fleet = Fleet(redis_server, env, folder)
    try:
        a, b = fleet.start_worker("w1"), fleet.start_worker("w2")
        fleet.wait_ready(a, b)
        yield fleet
    finally:
        for w in fleet.workers:
            stop(w.proc, timeout_s=10)


@pytest.fixture(autouse=True)
def pools_of_one(fleet: Fleet) -> None:
    """Each test starts from two pools of one with nothing queued, whatever the test before
    it left: a failed test (pools still grown, chunks still queued) must not fail the ones
    after it. Children busy on a chunk refuse to shrink, so the shrink is asked again until
    they are done."""
    app = fleet.app()
    app.control.purge()

    def of_one() -> bool:
        pools = fleet.pools(app)
        for name in ("w1", "w2"):
            if pools.get(name, 1) > 1:
                app.control.pool_shrink(
                    pools[name] - 1, destination=[f"{name}@{socket.gethostname()}"], reply=True
                )
        return pools.get("w1") == 1 and pools.get("w2") == 1

    wait_for(of_one, 90, "pools of one before the test", 1.0)


def launched(state_dir: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((state_dir / "launcher-local.json").read_text())
    except FileNotFoundError:
        return []


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_flood_grows_pools_launches_a_worker_then_shrinks_and_stops_it(
    fleet: Fleet, source: Any, tmp_path: Path
) -> None:
    """200 chunks of about 1 s on two ``-c 1`` workers: the pools grow to 3 each, a third
    worker is launched and runs chunks; after the backlog the pools go back to 1 and the
    launched worker is stopped."""
    app = fleet.app()
    assert fleet.pools(app) == {"w1": 1, "w2": 1}
    state_dir = fleet.folder / "launcher"
    controller, log = fleet.controller(
        "--strategy", "target-tracking", "--interval", "1",
        "-p", "target_backlog_per_slot=10", "-p", "scale_down_window_s=3",
        "--max", "12", "--max-per-worker", "3",
        "--launcher", "local", "--max-workers", "1", "--idle", "3", "--grace", "15",
        "--state-dir", str(state_dir),
    )  # fmt: skip
    try:
        started = time.monotonic()
        job_id = fleet.copy(f"{source.url}/flood.bin", tmp_path / "flood.bin")
        jobs = fleet.jobs()
        grown = wait_for(
            lambda: (p := fleet.pools(app)).get("w1") == 3 and p.get("w2") == 3 and p, 30, "pools"
        )
        t_grown = time.monotonic() - started
        entry = wait_for(lambda: launched(state_dir), 30, "a launched worker")[0]
        name, pid = entry["name"], entry["pid"]
        wlog = Path(entry["log"])
        wait_for(
            lambda: re.search(rf"job {job_id} object 0 chunk \d+ done", wlog.read_text()),
            40,
            f"the launched worker {name} to run a chunk",
        )
        t_launched = time.monotonic() - started
        job = wait_final(jobs, job_id)
        assert job.state == "done", job.error
        t_done = time.monotonic() - started
        wait_for(lambda: fleet.pools(app) == {"w1": 1, "w2": 1}, 30, "pools to shrink", 0.5)
        t_shrunk = time.monotonic() - started
        wait_for(lambda: not pid_alive(pid), 40, f"the launched worker {name} to stop", 0.5)
        t_stopped = time.monotonic() - started
        assert launched(state_dir) == []
        text = log.read_text()
        assert "scale up at once" in text and "launch " in text and "stop " in text, text[-3000:]
        assert re.search(r"grow [^|]*w1@\S+ \+\d", text), text[-3000:]
        # The chunk tasks' counters reach the observer: throughput is in the decisions.
        rates = re.findall(
            r"mover\.file: pool \d+ \(\d+ busy[^)]*\), backlog \d+ [^,]*, ([\d.]+) MiB/s", text
        )
        assert rates and max(map(float, rates)) > 0, text[-3000:]
        print(
            f"\nautoscale live: pools {grown} after {t_grown:.1f} s, launched {name} running "
            f"chunks at {t_launched:.1f} s, job done {t_done:.1f} s, pools back to 1 at "
            f"{t_shrunk:.1f} s, launched worker stopped at {t_stopped:.1f} s"
        )
    finally:
        stop(controller)
    assert controller.returncode == 0, log.read_text()[-3000:]
    assert pid_alive(pid) is False


def test_dry_run_changes_nothing(fleet: Fleet, source: Any, tmp_path: Path) -> None:
    """30 chunks waiting and ``--dry-run``: decisions logged, no pool grows, no worker starts."""
    app = fleet.app()
    state_dir = fleet.folder / "launcher-dry"
    controller, log = fleet.controller(
        "--strategy", "target-tracking", "--interval", "1", "--dry-run",
        "-p", "target_backlog_per_slot=5", "--max-per-worker", "1",
        "--launcher", "local", "--state-dir", str(state_dir), log_name="dry",
    )  # fmt: skip
    try:
        job_id = fleet.copy(f"{source.url}/dry.bin", tmp_path / "dry.bin")
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert fleet.pools(app) == {"w1": 1, "w2": 1}
            time.sleep(0.5)
        text = log.read_text()
        assert "dry run: nothing sent" in text and "would start" in text, text[-2000:]
        assert launched(state_dir) == []
    finally:
        stop(controller)
    assert controller.returncode == 0, log.read_text()[-3000:]
    out = subprocess.run([*MOVER, "cancel", job_id], env=fleet.env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_store_max_streams_holds_across_workers(fleet: Fleet, source: Any, tmp_path: Path) -> None:
    """``max_streams = 2`` on the source store, 6 slots in the fleet: never more than 2 GETs
    at once on the server, the semaphore's high-water mark is 2, the job completes."""
    import redis

    from mover.fleetstate import limits

    app = fleet.app()
    app.control.pool_grow(2, destination=[f"w1@{socket.gethostname()}"])
    app.control.pool_grow(2, destination=[f"w2@{socket.gethostname()}"])
    wait_for(lambda: fleet.pools(app) == {"w1": 3, "w2": 3}, 20, "pools of 3")
    r = redis.Redis.from_url(fleet.redis.url)
    limits.reset(r, "store:capped")
    with source.lock:
        source.peak = 0
    job_id = fleet.copy("store:capped/capped.bin", tmp_path / "capped.bin")
    jobs = fleet.jobs()
    job = wait_final(jobs, job_id)
    assert job.state == "done", job.error
    assert source.peak == 2, f"{source.peak} GETs at once on a store capped at 2"
    assert limits.high_water_mark(r, "store:capped") == 2
    assert limits.held(r, "store:capped") == 0
    for name in ("w1", "w2"):
        # One call: a second shrink sent before the first child exited would count it again.
        app.control.pool_shrink(2, destination=[f"{name}@{socket.gethostname()}"], reply=True)
    wait_for(lambda: fleet.pools(app) == {"w1": 1, "w2": 1}, 20, "pools back to 1")


def _control(app: Any, command: str, name: str, **arguments: int) -> dict[str, Any]:
    replies = app.control.broadcast(
        command,
        arguments=arguments,
        destination=[f"{name}@{socket.gethostname()}"],
        reply=True,
        timeout=2.0,
    )
    assert replies, f"no reply to {command}"
    return next(iter(replies[0].values()))


def _busy(app: Any, name: str) -> int:
    active = app.control.inspect(timeout=1.0).active() or {}
    return len(active.get(f"{name}@{socket.gethostname()}", []))


def test_busy_pool_retires_children_as_their_chunks_finish(
    fleet: Fleet, source: Any, tmp_path: Path
) -> None:
    """``mover_pool_shrink_to`` on a pool whose every child is on a chunk: nothing is
    interrupted, the pool keeps its size while they work, then comes down to the size asked
    for while the job still has chunks to run (``pool_shrink`` would refuse: all busy); a grow
    sent while retirements are pending takes them back first. The job ends done and its bytes
    are the source's (compared with the source file, not with mover's digest)."""
    from mover.workers.pool_control import GROW, SHRINK_TO

    app = fleet.app()
    assert _control(app, GROW, "w1", n=2)["processes"] == 3
    wait_for(lambda: fleet.pools(app) == {"w1": 3, "w2": 1}, 20, "w1 at 3")
    dst = tmp_path / "retire.bin"
    # Straight from the server, not through store:capped (its max_streams of 2 would keep
    # w1's three children from being busy at once).
    job_id = fleet.copy(f"{source.url}/retire.bin", dst)  # 24 chunks of about 1 s, 4 slots
    jobs = fleet.jobs()
    try:
        wait_for(lambda: _busy(app, "w1") == 3, 20, "every child of w1 on a chunk", 0.2)
        answer = _control(app, SHRINK_TO, "w1", size=1)
        # A child between two chunks at that instant is taken at once; the busy ones wait.
        assert answer["retiring"] in (1, 2), answer
        # A grow of 1 while retirements wait takes one back: the pool ends at 2, not 3 or 4.
        _control(app, GROW, "w1", n=1)
        wait_for(lambda: fleet.pools(app)["w1"] == 2, 20, "w1 down to 2 as its chunks end", 0.2)
        assert jobs.get(job_id).state == "running", "the pool should shrink during the job"
        # 1 while its last child is on a chunk, 0 when it was between two (taken at once);
        # a repeat never asks for more than the first.
        first = _control(app, SHRINK_TO, "w1", size=1)["retiring"]
        again = _control(app, SHRINK_TO, "w1", size=1)["retiring"]
        assert first in (0, 1) and again <= first, (first, again)
        wait_for(lambda: fleet.pools(app)["w1"] == 1, 20, "w1 down to 1", 0.2)
    finally:
        job = wait_final(jobs, job_id)  # the next tests need an idle fleet of pools of 1
        _control(app, SHRINK_TO, "w1", size=1)
        wait_for(lambda: fleet.pools(app)["w1"] == 1, 20, "w1 back to 1", 0.2)
    assert job.state == "done", job.error
    assert dst.read_bytes() == (source.root / "retire.bin").read_bytes()
    served = [r for name, r in source.ranges if name == "retire.bin" and r]
    assert len(served) == len(set(served)) == 24, f"a chunk was cut and read again: {served}"
    time.sleep(1.0)  # no late retirement: the pool stays where it was asked to be
    assert fleet.pools(app) == {"w1": 1, "w2": 1}
    # Idle children go one after another, each taken only once it has left billiard's list
    # (a second shrink meanwhile would take the dying one again and lower the pool's hidden
    # target twice: the grow below would then fall short).
    assert _control(app, GROW, "w1", n=3)["processes"] == 4
    _control(app, SHRINK_TO, "w1", size=1)
    wait_for(lambda: fleet.pools(app)["w1"] == 1, 20, "idle w1 from 4 to 1", 0.2)
    assert _control(app, GROW, "w1", n=2)["processes"] == 3
    time.sleep(1.0)
    assert fleet.pools(app)["w1"] == 3
    _control(app, SHRINK_TO, "w1", size=1)
    wait_for(lambda: fleet.pools(app)["w1"] == 1, 20, "w1 back to 1", 0.2)


def _pool_total(fleet: Fleet, app: Any) -> int:
    return sum(fleet.pools(app).values())


def _band_keys(queue: str) -> list[str]:
    from mover.fleetstate.observer import band_keys

    return band_keys(queue)


def test_decision_lines_state_the_real_pool_through_grow_hold_cap_shrink(
    fleet: Fleet, source: Any, tmp_path: Path
) -> None:
    """The controller, in this process, on the real fleet (two ``-c 1`` workers, chunks of
    about 4 s): a grow, a hold, a cap and a shrink, each line stating the pool that
    ``inspect().stats()`` showed around that tick (not the last number asked for)."""
    import redis

    from mover.workers.controller import Controller, ControllerConfig

    app = fleet.app()
    assert fleet.pools(app) == {"w1": 1, "w2": 1}
    broker = redis.Redis.from_url(fleet.redis.url)
    config = ControllerConfig(
        strategy="target-tracking",
        params={"target_backlog_per_slot": 7, "scale_down_window_s": 0},
        interval_s=5,
        max_per_worker=2,
        queues=["mover.file"],
        name=f"lines-{os.getpid()}",
    )
    controller = Controller(config, app, broker)
    old_rate = source.rate
    source.rate = RATE // 4  # a 256 KiB chunk takes about 4 s
    lines: dict[str, tuple[str, int, int]] = {}
    jobs: list[str] = []

    def tick(kind: str) -> str:
        before = _pool_total(fleet, app)
        t = controller.tick()
        assert t is not None
        after = _pool_total(fleet, app)
        lines[kind] = (t.line, before, after)
        return t.line

    def pool_in(line: str) -> int:
        found = re.search(r"mover\.file: pool (\d+) \(", line)
        assert found, line
        return int(found.group(1))

    old_env = os.environ.get("MOVER_BROKER_URL")
    os.environ["MOVER_BROKER_URL"] = fleet.redis.url
    from mover.executors import celery as fleet_exec

    store = fleet.jobs()

    def submit(name: str, chunks: int) -> None:
        # In this process (a CLI process costs seconds to start on a loaded machine).
        random_file(source.root / name, chunks * CHUNK)
        job = fleet_exec.submit(
            f"{source.url}/{name}", str(tmp_path / name), chunk_size=CHUNK, jobs=store, app=app
        )
        jobs.append(job.id)

    try:
        submit("lines-burst.bin", 20)
        depth = lambda: controller.observer.depths(["mover.file"])["mover.file"]  # noqa: E731
        # Both slots busy and one chunk finished (its rate known): a third slot pays.
        wait_for(lambda: depth() <= 17, 20, "a first chunk done")
        assert "-> grow to 3:" in tick("grow"), lines["grow"]
        wait_for(lambda: _pool_total(fleet, app) == 3, 20, "the grow to land")
        assert "-> hold 3:" in tick("hold"), lines["hold"]
        submit("lines-flood.bin", 40)
        assert "-> cap at 4:" in tick("cap"), lines["cap"]
        wait_for(lambda: _pool_total(fleet, app) == 4, 20, "the capped grow to land")
        broker.delete(*_band_keys("mover.file"))  # the rest of the work is withdrawn
        inspect = app.control.inspect(timeout=1.0)
        wait_for(lambda: not any((inspect.active() or {}).values()), 20, "in-flight chunks", 0.3)
        assert "-> shrink to 2:" in tick("shrink"), lines["shrink"]
        wait_for(lambda: fleet.pools(app) == {"w1": 1, "w2": 1}, 20, "pools back to 1", 0.3)
    finally:
        source.rate = old_rate
        controller.shutdown()
        for job in jobs:
            fleet_exec.cancel(job, store, wait_s=None)
        if old_env is None:
            os.environ.pop("MOVER_BROKER_URL", None)
        else:
            os.environ["MOVER_BROKER_URL"] = old_env
    print()
    for kind, (line, before, after) in lines.items():
        print(line)
        # The pool a line states is the one inspect().stats() showed just before or after it
        # (a grow sent by this tick lands later); never the number asked for.
        assert pool_in(line) in (before, after), (kind, line, before, after)
    assert [pool_in(lines[k][0]) for k in ("grow", "hold", "cap", "shrink")] == [2, 3, 3, 4]
