"""The fleet on RabbitMQ: the same tasks and the same guarantees as on Redis.

The broker is the machine's RabbitMQ (127.0.0.1:5672, guest/guest) with a vhost of this
session's own (``rabbitmq_url``); job records, heartbeats and statistics live in the private
Redis (``MOVER_JOBS_URL``), and so does the result backend (Celery 5 has no amqp one); the
catalogue is in PostgreSQL (``MOVER_CATALOGUE_URL``), the only state the workers share. Real
``mover worker`` processes (prefork, -c 2) run the scenarios of ``test_fleet.py`` that prove
the fleet's guarantees (copy, kill -9 of a worker, cancel, resume of lost chunks, the commit
exactly once) and the autoscale controller grows pools from RabbitMQ's queue depth. Only this
subset runs twice (here and on Redis), to keep CI's time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_fleet as fleet_tests
from tests.integration.test_fleet import (  # noqa: F401  (slow_http is a fixture)
    MOVER,
    ROOT,
    Fleet,
    make_fleet,
    random_file,
    scrape,
    sha256,
    slow_http,
    temp_files,
    wait_final,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]

MiB = 1 << 20


@pytest.fixture(scope="module")
def rabbit_fleet(
    redis_server: Any,
    rabbitmq_url: str,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Fleet]:
    """Two workers (prefork, -c 2) on RabbitMQ, job records in the private Redis, and a
    catalogue in PostgreSQL that the workers share with the caller and nothing else: each has
    a state directory (so a SQLite catalogue) of its own. The store ``shared`` is added
    before they start, so that their default queues include ``mover.store.shared``."""
    import psycopg

    from mover.catalogue.backends import TABLES, open_backend

    with open_backend(postgres_url).transaction():
        pass
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    folder = tmp_path_factory.mktemp("rabbit")
    fleet = make_fleet(
        redis_server,
        folder,
        request,
        MOVER_BROKER_URL=rabbitmq_url,
        MOVER_JOBS_URL=redis_server.url,
        MOVER_CATALOGUE_URL=postgres_url,
    )
    (folder / "shared").mkdir()
    added = fleet.mover("stores", "add", "shared", f"file://{folder / 'shared'}/")
    assert added.returncode == 0, added.stderr
    try:
        a, b = (
            fleet.start_worker(name, env={"MOVER_STATE_DIR": str(folder / f"state-{name}")})
            for name in ("r1", "r2")
        )
        fleet.wait_ready(a, b)
        yield fleet
    finally:
        for w in fleet.workers:
            fleet.stop(w)


def test_copy_on_rabbitmq_into_a_store_of_the_shared_catalogue(
    rabbit_fleet: Fleet,
    slow_http: Any,  # noqa: F811
) -> None:
    """``mover copy --wait`` through RabbitMQ into ``store:shared``: both workers resolve the
    store from PostgreSQL (neither has a catalogue of its own) and run chunks; sha256
    identical, one commit, no temporary file; the workers warned about RabbitMQ's consumer
    timeout against the chunk limit."""
    source = random_file(Path(slow_http.root) / "rabbit.bin", 12 * MiB + 5)
    out = rabbit_fleet.mover(
        "copy", f"{slow_http.url}/rabbit.bin", "store:shared/copy.bin",
        "--chunk-size", "1MiB", "--executor", "celery", "--wait",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    shared = rabbit_fleet.folder / "shared"
    assert sha256(shared / "copy.bin") == sha256(source)
    job_id = re.search(r"job (\w+)", out.stderr).group(1)
    jobs = rabbit_fleet.jobs()
    job = jobs.get(job_id)
    assert job.state == "done" and len(job.items[0].chunks) == 13
    assert jobs.commits(job_id, 0) == 1
    assert not temp_files(shared)
    for worker in rabbit_fleet.workers:
        assert re.search(rf"job {job_id} object 0 chunk \d+ done", worker.text()), worker.name
        assert "consumer_timeout" in worker.text()
        assert not (rabbit_fleet.folder / f"state-{worker.name}" / "catalogue.sqlite3").exists()
    status = rabbit_fleet.mover("status", job_id)
    assert f"job {job_id}: done" in status.stdout
    # The fleet's queues are durable quorum queues (MOVER_QUEUE_TYPE's default).
    vhost = rabbit_fleet.env["MOVER_BROKER_URL"].rsplit("/", 1)[1]
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type", "durable"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    kinds = {line.split()[0]: line.split()[1:] for line in listed.splitlines() if line.strip()}
    for queue in ("mover", "mover.store.shared"):
        assert kinds.get(queue) == ["quorum", "true"], listed


@pytest.mark.slow
def test_kill_9_worker_on_rabbitmq(rabbit_fleet: Fleet, slow_http: Any, tmp_path: Path):  # noqa: F811
    """A whole worker killed with SIGKILL mid-job: RabbitMQ requeues its unacknowledged
    chunks when its connection drops; the job completes, verified, committed once."""
    fleet_tests.test_kill_9_worker_mid_job(rabbit_fleet, slow_http, tmp_path)


@pytest.mark.slow
def test_cancel_on_rabbitmq(rabbit_fleet: Fleet, slow_http: Any, tmp_path: Path):  # noqa: F811
    fleet_tests.test_cancel_mid_job(rabbit_fleet, slow_http, tmp_path)


@pytest.mark.slow
def test_resume_on_rabbitmq(rabbit_fleet: Fleet, slow_http: Any, tmp_path: Path):  # noqa: F811
    """The queue purged under a running job: ``mover resume`` re-enqueues only the chunks
    not done; none done before runs again."""
    fleet_tests.test_resume_reenqueues_only_missing_chunks(rabbit_fleet, slow_http, tmp_path)


def _app(fleet: Fleet) -> Any:
    """A Celery app on the fleet's broker, built in this process."""
    from mover.workers.app import make_app

    saved = {k: os.environ.get(k) for k in ("MOVER_BROKER_URL", "MOVER_JOBS_URL")}
    os.environ.update(
        MOVER_BROKER_URL=fleet.env["MOVER_BROKER_URL"], MOVER_JOBS_URL=fleet.env["MOVER_JOBS_URL"]
    )
    try:
        return make_app()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
def test_autoscale_grows_pools_from_rabbitmq_depth(
    rabbit_fleet: Fleet,
    slow_http: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A backlog of 64 one-second chunks in RabbitMQ: ``mover autoscale`` reads the queue's
    depth by passive declare and grows the -c 2 pools to 4; the job then completes. (64: a
    slot is added only with two intervals of work ahead once it has started, which 32 chunks
    on 4 slots barely had.)"""
    from mover.broker_queues import AmqpQueues

    app = _app(rabbit_fleet)
    random_file(Path(slow_http.root) / "flood.bin", 64 * 3 * MiB)
    log = rabbit_fleet.folder / "controller.log"
    controller = subprocess.Popen(
        [*MOVER, "autoscale", "--strategy", "target-tracking", "--interval", "1",
         "-p", "target_backlog_per_slot=4", "--max", "8", "--max-per-worker", "4",
         "--queue", "mover.file"],
        env=rabbit_fleet.env,
        stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )  # fmt: skip
    try:
        out = rabbit_fleet.mover(
            "copy",
            f"{slow_http.url}/flood.bin",
            str(tmp_path / "flood.bin"),
            "--chunk-size",
            "3MiB",
            "--executor",
            "celery",
            "--detach",
        )
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip()
        queues = AmqpQueues(rabbit_fleet.env["MOVER_BROKER_URL"])
        try:
            depth = queues.depths(["mover.file"])["mover.file"]
        finally:
            queues.close()
        assert depth > 4, depth  # the backlog is visible in RabbitMQ
        # ... and to `mover metrics`, which reads RabbitMQ's queues the same way.
        exposed = scrape(rabbit_fleet, "metrics", "/metrics").decode()
        assert "mover_up 1.0" in exposed
        found = re.search(r'mover_queue_messages\{queue="mover\.file"\} (\d+)', exposed)
        assert found and int(found.group(1)) > 0, exposed[:3000]

        def grown() -> Any:
            stats = app.control.inspect(timeout=1.0).stats() or {}
            sizes = {n.partition("@")[0]: len(s["pool"]["processes"]) for n, s in stats.items()}
            return sizes if sizes.get("r1", 0) > 2 and sizes.get("r2", 0) > 2 else None

        wait_for(grown, 40, f"pools to grow\n{log.read_text()[-2000:]}", poll_s=0.5)
        job = wait_final(rabbit_fleet.jobs(), job_id, 120)
        assert job.state == "done", job.error
        assert rabbit_fleet.jobs().commits(job_id, 0) == 1
        assert re.search(r"grow [^|]*r1@\S+ \+\d", log.read_text()), log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(controller.pid, signal.SIGTERM)
        try:
            controller.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(controller.pid, signal.SIGKILL)
            controller.wait(5)
        (Path(slow_http.root) / "flood.bin").unlink(missing_ok=True)


def test_a_broker_that_cannot_work_is_one_line_and_records_no_job(
    rabbit_fleet: Fleet, rabbitmq_url: str, tmp_path: Path
) -> None:
    """A vhost that does not exist, a wrong password: ``mover copy`` says so in one line that
    names the broker without its password, and records no job."""
    src = random_file(tmp_path / "s.bin", MiB)
    jobs = rabbit_fleet.jobs()
    before = len(jobs.list(limit=1000))
    base = rabbitmq_url.rsplit("/", 1)[0]
    for url, words in (
        (f"{base}/no-such-vhost", "vhost"),
        (rabbitmq_url.replace("guest:guest@", "guest:wrongRabbitPw@"), "ACCESS_REFUSED"),
    ):
        out = subprocess.run(
            [*MOVER, "copy", str(src), str(tmp_path / "d.bin")],
            env={**rabbit_fleet.env, "MOVER_BROKER_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = out.stderr.strip().splitlines()
        assert out.returncode != 0 and len(lines) == 1, out.stderr
        assert words in lines[0] and "wrongRabbitPw" not in lines[0], lines[0]
    assert len(jobs.list(limit=1000)) == before


def test_retryable_errors_retry_on_rabbitmq(rabbit_fleet: Fleet, slow_http: Any, tmp_path: Path):  # noqa: F811
    """Every chunk first meets an HTTP 503: Celery's retry with a countdown (on quorum
    queues: native delayed delivery) brings each back once; the job completes, verified."""
    fleet_tests.test_retryable_errors_retry_with_celery(rabbit_fleet, slow_http, tmp_path)
