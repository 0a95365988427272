"""``mover flower`` on real parts: nothing secret in anything Flower shows.

A private Redis whose password is a planted secret, a private S3 server whose secret key is
another, two real ``mover worker`` processes holding both, and a real Flower (``mover flower``)
on a free port. Jobs run to S3 (one slow, from a throttled HTTP source, so that chunks are
active and reserved while Flower is asked), then every page an operator or a scraper sees is
fetched: ``/api/workers?refresh=1`` (with each worker's active, reserved, conf and stats),
``/api/tasks``, ``/api/task/info/<id>``, ``/api/queues/length``, the dashboard and worker pages,
``/metrics``. Neither planted secret may appear in any of them, nor in Flower's command line or
log. ``/api/*`` without (or with wrong) credentials answers 401.

Why a private Redis and S3 here (not the session servers): the planted secrets must be
distinctive (a default like ``testsecret`` could match by chance) and the Redis password
must not disturb the other tests' broker. Everything is stopped by PID at the end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fleet import (
    MOVER,
    ROOT,
    Fleet,
    random_file,
    slow_http,  # noqa: F401 - a fixture, used by name
    wait_final,
    wait_for,
)
from tests.servers import BinaryNotFound, RedisServer, SeaweedS3Server, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.redis,
    pytest.mark.celery,
    pytest.mark.s3,
]

MiB = 1 << 20
#: Planted secrets: alphanumeric, so that they read the same raw, URL-quoted or JSON-escaped.
S3_SECRET = f"S3planted{uuid.uuid4().hex}"
REDIS_SECRET = f"REDISplanted{uuid.uuid4().hex}"
FLOWER_USER = "operator"
FLOWER_PASSWORD = f"FLOWERpw{uuid.uuid4().hex[:12]}"


@dataclass
class FlowerRig:
    """The fleet, its S3 server and the Flower process of this module."""

    fleet: Fleet
    s3: SeaweedS3Server
    flower: subprocess.Popen[bytes]
    flower_log: Path
    url: str

    def get(self, path: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``path`` from Flower: status and body (error bodies too)."""
        request = urllib.request.Request(self.url + path)
        user, password = auth or (FLOWER_USER, FLOWER_PASSWORD)
        if auth != ("", ""):
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"{path}: {status} {body[:300]!r}"
        return json.loads(body)


def _server(factory: Any, **kwargs: Any) -> Any:
    try:
        return factory(**kwargs)
    except BinaryNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def _stop_pid(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL after a grace: by PID, never by name."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowerRig]:
    pytest.importorskip("flower")
    import redis

    folder = tmp_path_factory.mktemp("flower")
    redis_server = _server(RedisServer).start()
    s3 = None
    fleet = None
    flower = None
    try:
        # The broker's password is a planted secret: it is in every process's
        # MOVER_BROKER_URL, and Celery puts the broker in worker stats and conf.
        redis.Redis.from_url(redis_server.url).config_set("requirepass", REDIS_SECRET)
        broker = f"redis://:{REDIS_SECRET}@127.0.0.1:{redis_server.port}/0"
        s3 = _server(SeaweedS3Server, secret_key=S3_SECRET).start()
        env = dict(os.environ)
        env.update(
            MOVER_BROKER_URL=broker,
            MOVER_STATE_DIR=str(folder / "state"),
            MOVER_CONFIG=str(folder / "config.toml"),
            MOVER_VISIBILITY_TIMEOUT_S="10",
            MOVER_RESTORE_INTERVAL_S="2",
            PYTHONPATH=str(ROOT),
            **s3.env(),
        )
        env.pop("MOVER_FLOWER_AUTH", None)
        redis_server.url = broker  # Fleet.jobs() reads it
        fleet = Fleet(redis_server, env, folder, s3=s3)
        workers = [fleet.start_worker("fw1"), fleet.start_worker("fw2")]
        fleet.wait_ready(*workers)
        port = free_port()
        flower_log = folder / "flower.log"
        # Worst case on purpose: Flower gets the workers' environment (S3 secret included).
        flower_env = {**env, "MOVER_FLOWER_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}"}
        flower = subprocess.Popen(
            [*MOVER, "flower", "--port", str(port)],
            env=flower_env,
            stdout=open(flower_log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        rig = FlowerRig(fleet, s3, flower, flower_log, f"http://127.0.0.1:{port}")

        def up() -> bool:
            assert flower.poll() is None, f"flower died:\n{flower_log.read_text()[-3000:]}"
            with contextlib.suppress(OSError):
                return rig.get("/healthcheck")[0] == 200
            return False

        wait_for(up, 30, "Flower to answer /healthcheck", poll_s=0.2)
        # Flower learns workers from their heartbeat events (every 2 s).
        wait_for(
            lambda: (
                {f"fw1@{os.uname().nodename}", f"fw2@{os.uname().nodename}"}
                <= set(rig.json("/api/workers"))
            ),
            30,
            "Flower to see both workers",
            poll_s=0.5,
        )
        yield rig
    finally:
        if flower is not None:
            _stop_pid(flower)
        if fleet is not None:
            for w in fleet.workers:
                fleet.stop(w)
        if s3 is not None:
            s3.stop()
        redis_server.stop()


def _assert_clean(where: str, body: bytes) -> None:
    for name, secret in (("S3 secret key", S3_SECRET), ("Redis password", REDIS_SECRET)):
        assert secret.encode() not in body, f"the {name} is in {where}"


def test_flower_pages_hold_no_secret(rig: FlowerRig, tmp_path: Path) -> None:
    """Chunks to S3 running, reserved and done: no Flower page shows a planted secret."""
    import boto3

    s3 = boto3.client("s3", **rig.s3.client_kwargs())
    bucket = f"flower-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    # A quick job that finishes (tasks in /api/tasks with their final state) ...
    src = random_file(tmp_path / "quick.bin", 12 * MiB)
    out = rig.fleet.mover(
        "copy", str(src), f"s3://{bucket}/quick.bin", "--chunk-size", "5MiB", "--wait", "-q"
    )
    assert out.returncode == 0, out.stderr
    assert s3.head_object(Bucket=bucket, Key="quick.bin")["ContentLength"] == 12 * MiB
    pages: dict[str, bytes] = {}
    host = os.uname().nodename
    workers = [f"fw1@{host}", f"fw2@{host}"]
    for name in workers:
        pages[f"/api/workers?workername={name}&refresh=1 (idle)"] = rig.get(
            f"/api/workers?workername={name}&refresh=1"
        )[1]
    status, body = rig.get("/api/workers?refresh=1")
    assert status == 200
    listing = json.loads(body)
    assert set(workers) <= set(listing)
    # Each worker's conf is there: the broker URL really is shown, with its password masked.
    assert all("conf" in listing[w] and "stats" in listing[w] for w in workers), listing
    assert all(":********@" in listing[w]["conf"]["broker_url"] for w in workers)
    pages["/api/workers?refresh=1"] = body
    job_tasks = rig.json("/api/tasks")
    assert any(t.get("name") == "mover.chunk.copy" for t in job_tasks.values()), job_tasks
    pages["/api/tasks"] = json.dumps(job_tasks).encode()
    for task_id in list(job_tasks)[:10]:
        pages[f"/api/task/info/{task_id}"] = rig.get(f"/api/task/info/{task_id}")[1]
        pages[f"/task/{task_id}"] = rig.get(f"/task/{task_id}")[1]
    for path in ("/api/queues/length", "/", "/workers", "/tasks", "/broker", "/metrics"):
        status, body = rig.get(path)
        assert status == 200, f"{path}: {status}"
        pages[path] = body
    for name in workers:
        pages[f"/worker/{name}"] = rig.get(f"/worker/{name}")[1]
    assert b"flower_events_total" in pages["/metrics"]
    assert b"mover" in pages["/api/queues/length"]
    for where, body in pages.items():
        _assert_clean(where, body)


def test_flower_in_flight_tasks_hold_no_secret(
    rig: FlowerRig,
    slow_http: Any,  # noqa: F811 - the fixture imported from test_fleet
) -> None:
    """A slow job (chunks active and reserved on the workers while Flower asks them): the raw
    arguments Flower shows for in-flight tasks hold ids only."""
    import boto3

    s3 = boto3.client("s3", **rig.s3.client_kwargs())
    bucket = f"flower-slow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    out = rig.fleet.mover(
        "copy",
        f"{slow_http.url}/slow.bin",
        f"s3://{bucket}/slow.bin",
        "--chunk-size",
        "5MiB",
        "--executor",
        "celery",
        "--detach",
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    host = os.uname().nodename
    seen_active = 0
    pages: dict[str, bytes] = {}
    deadline = time.monotonic() + 60
    jobs = rig.fleet.jobs()
    while time.monotonic() < deadline and jobs.get(job_id).state == "running":
        for name in (f"fw1@{host}", f"fw2@{host}"):
            status, body = rig.get(f"/api/workers?workername={name}&refresh=1")
            assert status == 200
            info = json.loads(body).get(name, {})
            active = info.get("active") or []
            seen_active += sum(1 for t in active if job_id in json.dumps(t))
            pages[f"{name} at {time.monotonic():.1f}"] = body
        status, body = rig.get("/api/queues/length")
        pages[f"/api/queues/length at {time.monotonic():.1f}"] = body
        time.sleep(0.5)
    final = wait_final(jobs, job_id, 60)
    assert final.state == "done", final.error
    assert seen_active > 0, "no chunk of the job was seen active through Flower"
    for where, body in pages.items():
        _assert_clean(where, body)


def test_flower_api_needs_auth(rig: FlowerRig) -> None:
    """``/api/*`` without credentials, or with a wrong password, answers 401."""
    for path in ("/api/workers", "/api/tasks", "/api/queues/length"):
        assert rig.get(path, auth=("", ""))[0] == 401, path
        assert rig.get(path, auth=(FLOWER_USER, "wrong"))[0] == 401, path
        assert rig.get(path)[0] == 200, path


def test_flower_credentials_not_on_command_line_or_log(rig: FlowerRig) -> None:
    """The Flower password is in no process's argv (``ps``), and neither it nor the planted
    secrets are in Flower's log (which prints the broker URL, masked)."""
    cmdline = Path(f"/proc/{rig.flower.pid}/cmdline").read_bytes()
    assert b"flower" in cmdline and b"workers.app" in cmdline  # mover exec'd Flower
    assert FLOWER_PASSWORD.encode() not in cmdline
    assert REDIS_SECRET.encode() not in cmdline
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                assert FLOWER_PASSWORD.encode() not in argv, f"password in argv of PID {pid}"
    log = rig.flower_log.read_bytes()
    assert b"Broker" in log or b"Visit me" in log, log[-2000:]
    for secret in (FLOWER_PASSWORD, S3_SECRET, REDIS_SECRET):
        assert secret.encode() not in log, "a secret is in Flower's log"
    for w in rig.fleet.workers:
        text = w.text()
        assert S3_SECRET not in text and REDIS_SECRET not in text, f"secret in {w.name}'s log"


def test_flower_refuses_to_start_without_credentials(rig: FlowerRig) -> None:
    """No MOVER_FLOWER_AUTH and no --basic-auth: exit 2 with the fix; --no-auth warns; an
    authentication option among the pass-through arguments is refused."""
    env = {k: v for k, v in rig.fleet.env.items() if k not in ("MOVER_FLOWER_AUTH",)}
    out = subprocess.run(
        [*MOVER, "flower", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "MOVER_FLOWER_AUTH" in out.stderr, out.stderr
    out = subprocess.run(
        [*MOVER, "flower", "--basic-auth", "a:b", "--", "--basic_auth=x:y"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "not passed through" in out.stderr, out.stderr
    # --no-auth: starts, with a warning; stopped by PID once it answers.
    port = free_port()
    proc = subprocess.Popen(
        [*MOVER, "flower", "--port", str(port), "--no-auth"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        probe = FlowerRig(rig.fleet, rig.s3, proc, rig.flower_log, f"http://127.0.0.1:{port}")

        def up() -> bool:
            assert proc.poll() is None, "flower --no-auth died"
            with contextlib.suppress(OSError):
                return probe.get("/healthcheck")[0] == 200
            return False

        wait_for(up, 30, "Flower --no-auth", poll_s=0.2)
        # Flower itself keeps the API closed without auth (FLOWER_UNAUTHENTICATED_API unset).
        assert probe.get("/api/workers", auth=("", ""))[0] == 401
    finally:
        _stop_pid(proc)
        warning = proc.stderr.read().decode() if proc.stderr else ""
    assert "WARNING: no authentication" in warning


def test_compose_healthchecks_run_against_the_fleet(rig: FlowerRig) -> None:
    """The healthcheck commands of compose.yaml's worker, Flower and autoscaler services, run
    as written against this fleet (only the worker's name and Flower's port differ): each
    exits 0, so a container would turn healthy."""
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    port = rig.url.rsplit(":", 1)[1]
    env = {**rig.fleet.env, "HOSTNAME": os.uname().nodename}
    # The image has celery on its PATH; here it sits beside this Python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in ("worker", "flower", "autoscaler"):
        kind, *test = services[name]["healthcheck"]["test"]
        # Compose turns $$ into $ (its escape), and the worker is "worker@host" there.
        test = [
            part.replace("$$", "$").replace("worker@", "fw1@").replace(":5555/", f":{port}/")
            for part in test
        ]
        argv = ["sh", "-c", test[0]] if kind == "CMD-SHELL" else test
        if argv[0] == "python":
            argv[0] = sys.executable
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, f"{name} healthcheck: {out.stdout}{out.stderr}"
