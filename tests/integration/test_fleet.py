"""The fleet on real parts: a private Redis, real ``mover worker`` processes (prefork, -c 2),
real files, the S3 server when it is installed, and a throttled HTTP source that makes chunks
slow enough to kill, cancel or restart things in the middle of a job.

Workers are subprocesses in their own sessions, stopped by PID (their process group) at the
end, also on failure. Their visibility timeout is 10 s and their restore sweep 2 s, so a
killed worker's chunks come back within about 15 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]

MiB = 1 << 20
MOVER = [sys.executable, "-m", "mover.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


# -- helpers --------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


def temp_files(folder: Path) -> list[str]:
    """Temporary files a file writer leaves beside the destination."""
    return [p.name for p in folder.iterdir() if ".mover-" in p.name]


class _Throttled(BaseHTTPRequestHandler):
    """Serves files of ``server.root`` with ranges, at ``server.rate`` bytes/s a request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _target(self) -> Path | None:
        path = Path(self.server.root) / self.path.lstrip("/")  # type: ignore[attr-defined]
        return path if path.is_file() else None

    def do_HEAD(self) -> None:
        path = self._target()
        if path is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self) -> None:
        path = self._target()
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        if path.name.startswith("flaky"):
            # The first GET of each range fails with 503: a retryable server error.
            seen = self.server.seen  # type: ignore[attr-defined]
            key = (self.path, self.headers.get("Range"))
            if key not in seen:
                seen.add(key)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        start, end = 0, size - 1
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(size - 1, int(match.group(2) or size - 1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        piece = 256 * 1024
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                data = f.read(min(piece, left))
                try:
                    self.wfile.write(data)
                except OSError:
                    return
                left -= len(data)
                rate = self.server.rate  # type: ignore[attr-defined]
                if path.name.startswith("long"):
                    rate = 2 * MiB
                if rate:
                    time.sleep(len(data) / rate)


@pytest.fixture(scope="module")
def slow_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ranged HTTP server over a folder of random files, 3 MiB/s per request."""
    root = tmp_path_factory.mktemp("http")
    random_file(root / "slow.bin", 48 * MiB)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttled)
    server.daemon_threads = True
    server.root = root  # type: ignore[attr-defined]
    server.rate = 3 * MiB  # type: ignore[attr-defined]
    server.seen = set()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """PIDs of the pool processes (the celery main process is a child of the python
        that ``mover worker`` exec'd, i.e. the same PID)."""
        try:
            raw = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in raw.split()]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


@dataclass
class Fleet:
    redis: Any
    env: dict[str, str]
    folder: Path
    workers: list[Worker] = field(default_factory=list)
    s3: Any = None
    swift: Any = None

    #: Pool size of the workers this fleet starts.
    concurrency = 2

    def start_worker(self, name: str, *args: str, env: dict[str, str] | None = None) -> Worker:
        """Start ``mover worker`` named ``name``; ``args`` go to it (``-Q q1,q2``), ``env``
        adds to or overrides the fleet's environment for this worker only."""
        log = self.folder / f"{name}.log"
        proc = subprocess.Popen(
            [
                *MOVER,
                "worker",
                "-c",
                str(self.concurrency),
                "--pool",
                "prefork",
                "-n",
                f"{name}@%h",
                *args,
            ],
            env={**self.env, **(env or {})},
            stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.folder,  # not the checkout: `mover worker` must work from anywhere
        )
        worker = Worker(name, proc, log)
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: Worker, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        for w in workers:
            while " ready." not in w.text():
                assert w.proc.poll() is None, f"worker {w.name} died:\n{w.text()[-3000:]}"
                assert time.monotonic() < deadline, f"worker {w.name} not ready:\n{w.text()}"
                time.sleep(0.1)

    def stop(self, worker: Worker, sig: int = signal.SIGTERM) -> None:
        worker.kill(sig)
        try:
            worker.proc.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill(signal.SIGKILL)
            worker.proc.wait(5)

    def mover(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*MOVER, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def jobs(self) -> Any:
        from mover.jobstores.redis import RedisJobStore

        return RedisJobStore(self.redis.url)

    def purge(self, queue: str) -> None:
        """Drop the messages waiting in ``queue`` on the fleet's broker (Redis or RabbitMQ)."""
        broker = self.env["MOVER_BROKER_URL"]
        if broker.startswith("amqp"):
            from kombu import Connection

            with Connection(broker) as conn:
                conn.default_channel.queue_purge(queue)
            return
        import redis

        redis.Redis.from_url(broker).delete(queue)


def make_fleet(
    redis_server: Any, folder: Path, request: pytest.FixtureRequest | None, **env: str
) -> Fleet:
    """A Fleet (no worker started yet) on ``redis_server``: state and configuration in
    ``folder``, short visibility timeout and restore sweep, S3 and Swift credentials in the
    workers' environment when those servers are available (none without ``request``); ``env``
    adds or overrides."""
    environ = dict(os.environ)
    environ.update(
        MOVER_BROKER_URL=redis_server.url,
        MOVER_STATE_DIR=str(folder / "state"),
        MOVER_CONFIG=str(folder / "config.toml"),
        MOVER_VISIBILITY_TIMEOUT_S="10",
        MOVER_RESTORE_INTERVAL_S="2",
        MOVER_CHUNK_RETRIES="3",
        PYTHONPATH=str(ROOT),
    )
    s3 = swift = None
    if request is None:
        environ.update(env)
        return Fleet(redis_server, environ, folder)
    try:
        s3 = request.getfixturevalue("s3_server")
        environ.update(
            AWS_ACCESS_KEY_ID=s3.access_key,
            AWS_SECRET_ACCESS_KEY=s3.secret_key,
            AWS_ENDPOINT_URL=s3.endpoint_url,
            AWS_DEFAULT_REGION=s3.region,
        )
    except pytest.skip.Exception:
        s3 = None
    swift = None
    try:
        swift = request.getfixturevalue("swift_server")
        environ.update(ST_AUTH=swift.auth_url, ST_USER=swift.user, ST_KEY=swift.key)
    except pytest.skip.Exception:
        swift = None
    environ.update(env)
    return Fleet(redis_server, environ, folder, s3=s3, swift=swift)


@pytest.fixture(scope="module")
def fleet(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    """Two workers (prefork, -c 2) on the private Redis; S3 credentials in their
    environment when the S3 server is available."""
    fleet = make_fleet(redis_server, tmp_path_factory.mktemp("fleet"), request)
    try:
        a, b = fleet.start_worker("w1"), fleet.start_worker("w2")
        fleet.wait_ready(a, b)
        yield fleet
    finally:
        for w in fleet.workers:
            fleet.stop(w)


@pytest.fixture
def fleet_env(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """This test process talks to the fleet's Redis too (in-process API calls)."""
    for key in (
        "MOVER_BROKER_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "ST_AUTH",
        "ST_USER",
        "ST_KEY",
    ):
        if key in fleet.env:
            monkeypatch.setenv(key, fleet.env[key])
    return fleet


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_file(tmp_path_factory.mktemp("big") / "big.bin", 200 * MiB)


def wait_for(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll_s)


def redis_contents(url: str) -> list[bytes]:
    """Every key of the Redis at ``url`` and every value in it (strings, hash fields and
    values, list, set and sorted-set members): what a scan for a leaked secret reads."""
    import redis

    client = redis.Redis.from_url(url)
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"hash":
            out += [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(client.smembers(key))
        elif kind == b"zset":
            out += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
    return out


def scrape(fleet: Fleet, command: str, path: str) -> bytes:
    """Start ``mover metrics``, ``mover dashboard`` or ``mover flower`` (no auth) on a free
    port, GET ``path`` once it answers, stop it."""
    from tests.servers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [*MOVER, command, "--port", str(port), *(["--no-auth"] if command != "metrics" else [])],
        env=fleet.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:

        def get() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.read()
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                return None

        return wait_for(get, 30, f"mover {command} to answer", poll_s=0.3)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_final(jobs: Any, job_id: str, timeout_s: float = 90, poll_s: float = 0.5) -> Any:
    """The job's record once it is done, failed or cancelled."""
    from mover.jobs import FINAL

    return wait_for(
        lambda: (j := jobs.get(job_id)).state in FINAL and j, timeout_s, f"job {job_id}", poll_s
    )


def chunks_done(jobs: Any, job_id: str) -> int:
    return sum(1 for c in jobs.get(job_id).items[0].chunks if c.state == "done")


def submit_slow(fleet: Fleet, slow_http: Any, dst: Path) -> str:
    """Publish the slow HTTP object (48 MiB, 2 MiB chunks at 3 MiB/s each) to ``dst``."""
    out = fleet.mover(
        "copy",
        f"{slow_http.url}/slow.bin",
        str(dst),
        "--chunk-size",
        "2MiB",
        "--executor",
        "celery",
        "--detach",
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_copy_200_mib_file_to_file(fleet: Fleet, big_file: Path, tmp_path: Path):
    """``mover copy --executor celery --wait``: 50 chunks over 2 workers; sha256 identical,
    one commit, both workers ran chunks and their logs name the job."""
    dst = tmp_path / "copy.bin"
    started = time.monotonic()
    out = fleet.mover(
        "copy", str(big_file), str(dst), "--chunk-size", "4MiB", "--executor", "celery", "--wait"
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert "done: 1 object(s)" in out.stderr and "verified:" in out.stderr
    assert sha256(dst) == sha256(big_file)
    job_id = re.search(r"job (\w+)", out.stderr).group(1)
    jobs = fleet.jobs()
    job = jobs.get(job_id)
    assert job.state == "done" and job.executor == "celery"
    assert len(job.items[0].chunks) == 50
    assert jobs.commits(job_id, 0) == 1
    for w in fleet.workers[:2]:
        assert f"job {job_id} object 0 chunk" in w.text(), f"{w.name} ran no chunk"
    assert not temp_files(tmp_path)
    print(f"\nfleet file->file 200 MiB: {elapsed:.2f} s (CLI wall time)")


@pytest.mark.slow
@pytest.mark.s3
def test_two_workers_copy_200_mib_file_to_s3(fleet_env: Fleet, big_file: Path, tmp_path: Path):
    """The Python API (mover.fleet.submit) to S3: workers hold the credentials; the part
    count and the sha256 of the object read back match."""
    if fleet_env.s3 is None:
        pytest.skip("no S3 server")
    import boto3

    from mover import fleet as fleet_api

    s3 = boto3.client("s3", **fleet_env.s3.client_kwargs())
    bucket = f"fleet-{os.getpid()}-{int(time.time())}"
    s3.create_bucket(Bucket=bucket)
    started = time.monotonic()
    handle = fleet_api.submit(str(big_file), f"s3://{bucket}/big.bin", chunk_size=8 * MiB)
    job = handle.wait(timeout_s=120)
    elapsed = time.monotonic() - started
    assert job.state == "done", job.error
    back = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(back))
    assert sha256(back) == sha256(big_file)
    assert handle.jobs.commits(job.id, 0) == 1
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    print(f"\nfleet file->s3 200 MiB: {elapsed:.2f} s")


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.swift
def test_two_workers_copy_200_mib_s3_to_swift(fleet_env: Fleet, big_file: Path, tmp_path: Path):
    """S3 to Swift on the fleet (ranged GETs into SLO segments); the object read back from
    Swift has the source's sha256."""
    if fleet_env.s3 is None or fleet_env.swift is None:
        pytest.skip("needs the S3 and Swift servers")
    import boto3
    from swiftclient.client import Connection

    from mover import fleet as fleet_api

    s3 = boto3.client("s3", **fleet_env.s3.client_kwargs())
    bucket = f"fleet-sw-{os.getpid()}-{int(time.time())}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(big_file), bucket, "big.bin")
    swift = Connection(**fleet_env.swift.connection_kwargs())
    container = f"fleet-{os.getpid()}-{int(time.time())}"
    swift.put_container(container)
    started = time.monotonic()
    handle = fleet_api.submit(
        f"s3://{bucket}/big.bin", f"swift://{container}/big.bin", chunk_size=8 * MiB
    )
    job = handle.wait(timeout_s=120)
    elapsed = time.monotonic() - started
    assert job.state == "done", job.error
    h = hashlib.sha256()
    _, body = swift.get_object(container, "big.bin", resp_chunk_size=8 * MiB)
    for block in body:
        h.update(block)
    assert h.hexdigest() == sha256(big_file)
    assert handle.jobs.commits(job.id, 0) == 1
    print(f"\nfleet s3->swift 200 MiB: {elapsed:.2f} s")


def test_raw_celery_client_submits_by_name(fleet: Fleet, tmp_path: Path):
    """A client that does not import mover sends ``mover.submit`` by name and gets a job id;
    a bad request fails with a clear error, recorded on a job too."""
    src = random_file(tmp_path / "small.bin", 5 * MiB + 123)
    dst = tmp_path / "out" / "small.bin"
    dst.parent.mkdir()
    script = f"""
import sys
from celery import Celery
app = Celery(broker={fleet.redis.url!r}, backend={fleet.redis.url!r})
ok = app.send_task("mover.submit", args=[{{"source": {str(src)!r},
    "destination": {str(dst)!r}, "options": {{"chunk_size": "1MiB"}}}}], queue="mover")
print(ok.get(timeout=60))
bad = app.send_task("mover.submit", args=[{{"source": "/no/such/file",
    "destination": {str(dst)!r}}}])  # default queue celery: workers consume it too
try:
    bad.get(timeout=60)
except Exception as exc:
    print("ERROR", exc)
assert not any(m == "mover" or m.startswith("mover.") for m in sys.modules), "mover imported"
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    job_id = lines[0]
    jobs = fleet.jobs()
    job = wait_final(jobs, job_id, 60, poll_s=0.1)
    assert job.state == "done", job.error
    assert sha256(dst) == sha256(src)
    assert lines[1].startswith("ERROR") and "no such file" in lines[1]
    bad_id = re.search(r"\(job (\w+)\)", lines[1]).group(1)
    bad = jobs.get(bad_id)
    assert bad.state == "failed" and "no such file" in (bad.error or "")


def test_plain_client_by_keywords_and_a_redelivered_submit_make_one_job(
    fleet: Fleet, tmp_path: Path
):
    """A plain Celery client submits by keyword arguments (options beside source and
    destination); the same task delivered twice (the same task id, as when a worker dies
    before its ack) answers the same job id, and the object is committed once."""
    src = random_file(tmp_path / "kw.bin", 3 * MiB + 5)
    dst = tmp_path / "out" / "kw.bin"
    dst.parent.mkdir()
    task_id = f"submit-{uuid.uuid4()}"
    script = f"""
from celery import Celery
app = Celery(broker={fleet.redis.url!r}, backend={fleet.redis.url!r})
kw = {{"source": {str(src)!r}, "destination": {str(dst)!r}, "chunk_size": "1MiB", "streams": 2}}
first = app.send_task("mover.submit", kwargs=kw, queue="mover", task_id={task_id!r})
print(first.get(timeout=60))
again = app.send_task("mover.submit", kwargs=kw, queue="mover", task_id={task_id!r})
print(again.get(timeout=60))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=150, cwd="/"
    )
    assert out.returncode == 0, out.stderr
    first, again = out.stdout.split()
    assert first == again
    jobs = fleet.jobs()
    job = wait_final(jobs, first, 60, poll_s=0.1)
    assert job.state == "done", job.error
    assert len(job.items[0].chunks) == 4 and job.options["streams"] == 2
    assert sha256(dst) == sha256(src)
    assert jobs.commits(first, 0) == 1
    made = [j for j in jobs.list(200) if j.destination.endswith(str(dst))]
    assert [j.id for j in made] == [first]


@pytest.mark.slow
def test_kill_9_worker_mid_job(fleet: Fleet, slow_http: Any, tmp_path: Path):
    """A whole worker (main process and pool) killed with SIGKILL mid-job: its chunks come
    back after the visibility timeout, the job completes, verified, committed once."""
    victim = fleet.start_worker("victim")
    fleet.wait_ready(victim)
    dst = tmp_path / "killed.bin"
    job_id = submit_slow(fleet, slow_http, dst)
    jobs = fleet.jobs()
    wait_for(lambda: f"job {job_id} object 0 chunk" in victim.text(), 30, "a victim chunk")
    victim.kill(signal.SIGKILL)
    victim.proc.wait(10)
    job = wait_final(jobs, job_id)
    assert job.state == "done", job.error
    assert sha256(dst) == sha256(Path(slow_http.root) / "slow.bin")
    assert jobs.commits(job_id, 0) == 1
    assert not temp_files(tmp_path)
    # The chunks the victim held came back to the others through the restore sweep.
    survivors = "".join(w.text() for w in fleet.workers if w is not victim)
    assert re.search(rf"job {job_id} object 0 chunk \d+ done.*\(redelivered\)", survivors)


@pytest.mark.slow
def test_chunk_longer_than_visibility_timeout_runs_once(
    fleet: Fleet, slow_http: Any, tmp_path: Path
):
    """One chunk of 26 MiB at 2 MiB/s (13 s) against a 10 s visibility timeout: the
    worker renews the chunk's lease while it runs, so it is not delivered a second time."""
    root = Path(slow_http.root)
    random_file(root / "long.bin", 26 * MiB)
    dst = tmp_path / "long.bin"
    offsets = {w.name: len(w.text()) for w in fleet.workers}
    out = fleet.mover(
        "copy",
        f"{slow_http.url}/long.bin",
        str(dst),
        "--chunk-size",
        "26MiB",
        "--executor",
        "celery",
        "--wait",
    )
    assert out.returncode == 0, out.stderr
    assert sha256(dst) == sha256(root / "long.bin")
    job_id = re.search(r"job (\w+)", out.stderr).group(1)
    logs = "".join(w.text() for w in fleet.workers)
    runs = re.findall(rf"job {job_id} object 0 chunk 0 done: \d+ bytes in ([\d.]+) s", logs)
    assert len(runs) == 1 and float(runs[0]) > 10, runs
    time.sleep(2)  # a second delivery would have come by now (timeout 10 s + sweep 2 s)
    fresh = "".join(w.text()[offsets.get(w.name, 0) :] for w in fleet.workers)
    received = re.findall(r"mover\.chunk\.copy\[([0-9a-f-]+)\] received", fresh)
    assert len(received) == 1, f"the chunk was delivered {len(received)} times"


@pytest.mark.slow
def test_kill_9_pool_child_mid_job(fleet_env: Fleet, slow_http: Any, tmp_path: Path):
    """The pool child running a chunk is killed with SIGKILL: WorkerLostError, the chunk is
    requeued at once (reject on worker lost) and runs again; the job completes, verified,
    committed once."""
    from mover.executors.celery import get_app

    fleet = fleet_env
    dst = tmp_path / "child.bin"
    job_id = submit_slow(fleet, slow_http, dst)
    jobs = fleet.jobs()
    inspect = get_app().control.inspect(timeout=1.0)

    def running_child() -> tuple[Worker, int] | None:
        for tasks in (inspect.active() or {}).values():
            for task in tasks:
                if task.get("name") == "mover.chunk.copy" and job_id in str(task.get("args")):
                    pid = int(task["worker_pid"])
                    for w in fleet.workers:
                        if pid in w.children():
                            return w, pid
        return None

    victim, pid = wait_for(running_child, 30, "a chunk running in a pool child")
    os.kill(pid, signal.SIGKILL)
    job = wait_final(jobs, job_id)
    assert job.state == "done", job.error
    assert sha256(dst) == sha256(Path(slow_http.root) / "slow.bin")
    assert jobs.commits(job_id, 0) == 1
    wait_for(lambda: "WorkerLostError" in victim.text(), 30, "WorkerLostError in the log")
    logs = "".join(w.text() for w in fleet.workers)
    assert re.search(rf"job {job_id} object 0 chunk \d+ done.*\(redelivered\)", logs)


@pytest.mark.slow
def test_cancel_mid_job(fleet: Fleet, slow_http: Any, tmp_path: Path):
    """``mover cancel`` mid-job: running chunks stop, queued ones are dropped, the temporary
    file is removed and the job ends cancelled."""
    dst = tmp_path / "cancelled.bin"
    job_id = submit_slow(fleet, slow_http, dst)
    jobs = fleet.jobs()
    wait_for(lambda: chunks_done(jobs, job_id) >= 2, 30, "two chunks")
    started = time.monotonic()
    out = fleet.mover("cancel", job_id)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"job {job_id}: cancelled"
    assert time.monotonic() - started < 20
    job = jobs.get(job_id)
    assert job.state == "cancelled" and job.items[0].state == "cancelled"
    assert chunks_done(jobs, job_id) < len(job.items[0].chunks)
    assert not dst.exists()
    time.sleep(1.5)  # a chunk still finishing elsewhere must not bring the file back
    assert not temp_files(tmp_path)
    assert jobs.commits(job_id, 0) == 0


@pytest.mark.slow
def test_redis_restart_mid_job(fleet: Fleet, slow_http: Any, tmp_path: Path):
    """Redis restarted mid-job (append-only file kept): workers reconnect and the job
    completes; if a message was lost, ``mover resume`` re-enqueues what is not done."""
    dst = tmp_path / "restart.bin"
    job_id = submit_slow(fleet, slow_http, dst)
    jobs = fleet.jobs()
    wait_for(lambda: chunks_done(jobs, job_id) >= 2, 30, "two chunks")
    fleet.redis.restart()

    def finished() -> Any:
        with contextlib.suppress(Exception):
            job = jobs.get(job_id)
            return job if job.state in ("done", "failed", "cancelled") else None
        return None

    deadline = time.monotonic() + 45
    job = None
    while job is None and time.monotonic() < deadline:
        job = finished()
        time.sleep(0.5)
    resumed = False
    if job is None:  # not finished: resume re-enqueues the chunks not done
        resumed = True
        out = fleet.mover("resume", job_id, "--no-wait")
        assert out.returncode == 0, out.stderr
        job = wait_for(finished, 60, "the resumed job", poll_s=0.5)
    assert job.state == "done", job.error
    assert sha256(dst) == sha256(Path(slow_http.root) / "slow.bin")
    assert jobs.commits(job_id, 0) == 1
    print(f"\nredis restart: {'resumed' if resumed else 'completed by itself'}")


def test_retryable_errors_retry_with_celery(fleet: Fleet, slow_http: Any, tmp_path: Path):
    """Every chunk first meets an HTTP 503 (retryable): Celery retries it after a jittered
    back-off and the job completes, verified."""
    root = Path(slow_http.root)
    random_file(root / "flaky.bin", 6 * MiB)
    dst = tmp_path / "flaky.bin"
    out = fleet.mover(
        "copy",
        f"{slow_http.url}/flaky.bin",
        str(dst),
        "--chunk-size",
        "1MiB",
        "--executor",
        "celery",
        "--wait",
    )
    assert out.returncode == 0, out.stderr
    assert sha256(dst) == sha256(root / "flaky.bin")
    job_id = re.search(r"job (\w+)", out.stderr).group(1)
    logs = "".join(w.text() for w in fleet.workers)
    assert len(re.findall(rf"job {job_id} object 0 chunk \d+: retry 1 in", logs)) == 6


def test_permanent_error_fails_job_and_cleans(fleet: Fleet, slow_http: Any, tmp_path: Path):
    """A non-retryable error (the source vanishes: 404) fails the object at once; its
    temporary file is removed and the job ends failed with the error."""
    root = Path(slow_http.root)
    (root / "vanishing.bin").write_bytes((root / "slow.bin").read_bytes())
    dst = tmp_path / "vanished.bin"
    out = fleet.mover(
        "copy",
        f"{slow_http.url}/vanishing.bin",
        str(dst),
        "--chunk-size",
        "2MiB",
        "--executor",
        "celery",
        "--detach",
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    jobs = fleet.jobs()
    wait_for(lambda: chunks_done(jobs, job_id) >= 1, 30, "a chunk")
    (root / "vanishing.bin").unlink()
    job = wait_final(jobs, job_id, 30, poll_s=0.2)
    assert job.state == "failed"
    assert "404" in (job.error or "") or "not found" in (job.error or "").lower(), job.error
    assert not dst.exists() and not temp_files(tmp_path)
    status = fleet.mover("status", job_id)
    assert "failed" in status.stdout


@pytest.mark.s3
def test_no_secret_in_redis_or_logs(fleet: Fleet):
    """After the S3 copies, the workers' secret key is in no Redis key or value and in no
    worker log line: tasks carry ids, workers resolve credentials themselves."""
    if fleet.s3 is None:
        pytest.skip("no S3 server")
    secret = fleet.s3.secret_key.encode()
    everything = redis_contents(fleet.redis.url)
    assert everything
    for blob in everything:
        assert secret not in blob, "secret in Redis"
    for w in fleet.workers:
        assert fleet.s3.secret_key not in w.text(), f"secret in {w.name}'s log"
        if fleet.swift is not None:
            assert fleet.swift.key not in w.text(), f"Swift key in {w.name}'s log"


@pytest.mark.slow
def test_resume_reenqueues_only_missing_chunks(fleet: Fleet, slow_http: Any, tmp_path: Path):
    """Queued chunks lost (the queue deleted under a running job): the job stalls; ``mover
    resume`` enqueues only the chunks not done, and no chunk done before runs again."""
    dst = tmp_path / "resumed.bin"
    job_id = submit_slow(fleet, slow_http, dst)
    jobs = fleet.jobs()
    wait_for(lambda: chunks_done(jobs, job_id) >= 3, 30, "three chunks")
    fleet.purge("mover.file")  # the queued chunks are lost
    time.sleep(2)  # let the running chunks finish
    job = jobs.get(job_id)
    assert job.state == "running"
    before = {c.index for c in job.items[0].chunks if c.state == "done"}
    assert 0 < len(before) < len(job.items[0].chunks)
    out = fleet.mover("resume", job_id)
    assert out.returncode == 0, out.stderr
    assert "done: 1 object(s)" in out.stderr
    assert sha256(dst) == sha256(Path(slow_http.root) / "slow.bin")
    assert jobs.commits(job_id, 0) == 1
    logs = "".join(w.text() for w in fleet.workers)
    for index in before:
        assert len(re.findall(rf"job {job_id} object 0 chunk {index} done", logs)) == 1


def test_status_and_jobs_read_redis(fleet: Fleet, tmp_path: Path):
    """``mover jobs`` and ``mover status`` read the fleet's records when a broker is set, and
    ``mover jobs`` lists this host's embedded jobs beside them; ``mover copy --detach`` prints
    the job id and returns; a copy waits by default, on the fleet as embedded."""
    src = random_file(tmp_path / "s.bin", 3 * MiB)
    out = fleet.mover("copy", str(src), str(tmp_path / "d.bin"), "--chunk-size", "1MiB", "--detach")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    jobs = fleet.jobs()
    wait_for(lambda: jobs.get(job_id).state == "done", 30, "the job")
    waited = fleet.mover("copy", str(src), str(tmp_path / "w.bin"), "--json")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["state"] == "done"  # followed to its end
    assert sha256(tmp_path / "w.bin") == sha256(src)
    here = fleet.mover("copy", str(src), str(tmp_path / "e.bin"), "--executor", "embedded")
    embedded_id = re.search(r"job (\w+)", here.stderr).group(1)
    listed = fleet.mover("jobs")
    assert job_id in listed.stdout and embedded_id in listed.stdout
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()}
    assert rows[job_id] == "celery" and rows[embedded_id] == "embedded"
    status = fleet.mover("status", job_id)
    assert f"job {job_id}: done" in status.stdout and "3/3 chunks" in status.stdout


def test_small_objects_go_in_batch_tasks(fleet: Fleet, tmp_path: Path):
    """A folder of many small files on the fleet: the small one-chunk objects travel in
    ``mover.batch.copy`` tasks (a task per batch, not per object), every file arrives with
    its bytes, each object committed once."""
    src = tmp_path / "small"
    src.mkdir()
    for n in range(150):
        (src / f"f{n:03d}.bin").write_bytes(os.urandom(1000 + n))
    dst = tmp_path / "copy"
    out = fleet.mover("copy", "-r", f"{src}/", f"{dst}/", "--executor", "celery", "--detach")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    jobs = fleet.jobs()
    try:
        job = wait_final(jobs, job_id, timeout_s=60)
    except AssertionError:
        print("".join(w.text() for w in fleet.workers)[-8000:])  # what the workers said
        raise
    for n in range(150):
        name = f"f{n:03d}.bin"
        assert sha256(dst / name) == sha256(src / name), name
    assert job.state == "done" and len(job.items) == 150
    assert all(jobs.commits(job_id, i.index) == 1 for i in job.items)
    logs = "".join(w.text() for w in fleet.workers)
    assert "mover.batch.copy" in logs
    assert not temp_files(dst)


def test_sync_and_filtered_copy_on_the_fleet(fleet: Fleet, tmp_path: Path):
    """``mover sync --executor celery``: the differing objects go as one fleet job; a second
    sync publishes nothing; ``copy -r --exclude`` on the fleet leaves the excluded out."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(300_000))
    (src / "sub" / "b.bin").write_bytes(os.urandom(1000))
    (src / "c.log").write_bytes(b"log")
    dst = tmp_path / "dst"
    out = fleet.mover(
        "sync", "--json", "--executor", "celery", "--exclude", "*.log", f"{src}/", str(dst)
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["copied"] == 2 and summary["state"] == "done"
    job = fleet.jobs().get(summary["job"])
    assert job.executor == "celery" and len(job.items) == 2
    for rel in ("a.bin", "sub/b.bin"):
        assert sha256(dst / rel) == sha256(src / rel)
    assert not (dst / "c.log").exists()
    again = fleet.mover(
        "sync", "--json", "--executor", "celery", "--exclude", "*.log", f"{src}/", str(dst)
    )
    assert json.loads(again.stdout)["job"] is None

    copied = tmp_path / "copied"
    out = fleet.mover(
        "copy",
        "-r",
        "-q",
        "--executor",
        "celery",
        "--wait",
        "--exclude",
        "*.bin",
        f"{src}/",
        str(copied),
    )
    assert out.returncode == 0, out.stderr
    assert [p.name for p in copied.rglob("*") if p.is_file()] == ["c.log"]
