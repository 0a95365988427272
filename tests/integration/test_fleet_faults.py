"""The fleet under broker faults, on real parts: a Redis of this module's own (restarted,
crashed, kept down), real ``mover worker`` processes, the throttled HTTP source and the S3
server behind a fault proxy.

Each test starts the workers it needs and stops them at its end, so that one test's
queues and crashes never leak into the next. Settings are short so each fault costs
seconds: heartbeats every second, a worker ends itself after 5 s without its event loop or
Redis, sweeps every second, commit leases of 3 s.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_fleet
from tests.integration.test_fleet import (
    MOVER,
    ROOT,
    Fleet,
    Worker,
    chunks_done,
    make_fleet,
    random_file,
    redis_contents,
    sha256,
    submit_slow,
    wait_final,
    wait_for,
)
from tests.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]

MiB = 1 << 20
#: MOVER_WORKER_STALL_S of this module's workers.
STALL_S = 5
#: MOVER_RESCUE_STALL_S of this module's workers: a job without progress is looked for on the
#: broker after this long.
RESCUE_STALL_S = 6
#: The throttled HTTP source of test_fleet (a module-scoped fixture, shared).
slow_http = test_fleet.slow_http


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis for this module alone: its restarts and outages touch no other test."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def faults_fleet(
    own_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Fleet:
    return make_fleet(
        own_redis,
        tmp_path_factory.mktemp("faults"),
        request,
        MOVER_WORKER_STALL_S=str(STALL_S),
        MOVER_HEARTBEAT_S="1",
        MOVER_SWEEP_S="1",
        MOVER_COMMIT_LEASE_S="3",
        MOVER_RESCUE_STALL_S=str(RESCUE_STALL_S),
    )


@pytest.fixture
def faults(faults_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """The module's fleet with no worker running; workers a test starts are stopped after
    it. This process talks to the same Redis (in-process API calls)."""
    monkeypatch.setenv("MOVER_BROKER_URL", faults_fleet.redis.url)
    before = len(faults_fleet.workers)
    try:
        yield faults_fleet
    finally:
        for w in faults_fleet.workers[before:]:
            faults_fleet.stop(w)
        del faults_fleet.workers[before:]


def ping(fleet: Fleet, worker: Worker, timeout_s: float = 20) -> bool:
    """Whether ``worker`` answers a Celery ping within ``timeout_s`` (a fresh app each try:
    the first broadcast after a broker restart may meet a dead pooled connection)."""
    from mover.workers.app import make_app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            return False
        app = make_app()
        try:
            replies = app.control.ping(destination=[f"{worker.name}@{os.uname().nodename}"])
            if replies:
                return True
        except Exception:  # a broker still coming back
            pass
        finally:
            app.close()
        time.sleep(0.5)
    return False


def copy_on_fleet(fleet: Fleet, src: str, dst: str, *args: str) -> str:
    out = fleet.mover("copy", src, dst, "--executor", "celery", "--detach", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# -- a broker restart: every worker reconnects or exits ---------------------------------------


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
def test_redis_restart_workers_reconnect_or_exit(
    faults: Fleet, slow_http: Any, tmp_path: Path, hard: bool
):
    """Redis restarted (SIGTERM or SIGKILL) under a running job: the job ends done and
    verified (or failed, then resumed to done), committed once; every worker either exited
    with a non-zero code (its supervisor restarts it; here the test plays supervisor) or
    reconnected: it answers a ping and runs chunks of a new job."""
    workers = [faults.start_worker("r1"), faults.start_worker("r2")]
    faults.wait_ready(*workers)
    dst = tmp_path / "restart.bin"
    job_id = submit_slow(faults, slow_http, dst)
    jobs = faults.jobs()
    wait_for(lambda: chunks_done(jobs, job_id) >= 2, 30, "two chunks")
    faults.redis.restart(hard=hard)

    exited: dict[str, int] = {}

    def final_or_supervise() -> Any:
        for w in workers:
            if w.proc.poll() is not None and w.name not in exited:
                exited[w.name] = w.proc.returncode  # the supervisor starts a fresh one
                faults.wait_ready(faults.start_worker(f"{w.name}-again"))
        job = jobs.get(job_id)
        return job if job.state in ("done", "failed", "cancelled") else None

    job = wait_for(final_or_supervise, 90, f"job {job_id}", poll_s=0.5)
    if job.state != "done":  # failed and resumable
        out = faults.mover("resume", job_id)
        assert out.returncode == 0, out.stderr
        job = jobs.get(job_id)
    assert job.state == "done", job.error
    assert sha256(dst) == sha256(Path(slow_http.root) / "slow.bin")
    assert jobs.commits(job_id, 0) == 1
    for name, code in exited.items():
        assert code != 0, f"{name} exited 0 after a broker restart"

    alive = [w for w in workers if w.name not in exited]
    for w in alive:
        assert ping(faults, w), f"{w.name} is alive but does not answer:\n{w.text()[-3000:]}"
    root = Path(slow_http.root)
    random_file(root / "after.bin", 12 * MiB)
    after = copy_on_fleet(
        faults, f"{slow_http.url}/after.bin", str(tmp_path / "after.bin"), "--chunk-size", "1MiB"
    )
    assert wait_final(jobs, after, 60).state == "done"
    assert sha256(tmp_path / "after.bin") == sha256(root / "after.bin")
    for w in alive:
        assert f"job {after} object 0 chunk" in w.text(), f"{w.name} took no new work"
    print(f"\nredis restart ({'SIGKILL' if hard else 'SIGTERM'}): exited {exited or 'none'}")


def test_worker_exits_when_redis_stays_away(faults: Fleet):
    """Redis down longer than MOVER_WORKER_STALL_S: the worker does not linger as a
    zombie; it exits with code 75 and one line that says why, for its supervisor."""
    from mover.presence import Presence

    worker = faults.start_worker("lonely")
    faults.wait_ready(worker)
    r = faults.jobs().r
    wait_for(lambda: Presence(r, "mover").live(), 10, "the worker's heartbeat")
    faults.redis.restart(down_s=STALL_S + 4)
    wait_for(lambda: worker.proc.poll() is not None, 20, "the worker to exit")
    assert worker.proc.returncode == 75, worker.text()[-3000:]
    assert re.search(r"CRITICAL.*exits \(code 75\).*supervisor must restart it", worker.text())
    assert not Presence(r, "mover").live(window_s=2)


# -- following a job that no worker serves --------------------------------------------------


def test_wait_says_when_no_worker_consumes_the_queue(faults: Fleet, slow_http: Any, tmp_path: Path):
    """``mover copy`` (which waits by default) to a store whose queue no worker consumes says
    so in one line
    naming the queue (within 10 s), ``mover status`` shows the same, and the follower keeps
    waiting: a worker started on that queue finishes the job (a 4 s one, so the follower
    sees the worker arrive and says so)."""
    (faults.folder / "config.toml").write_text(
        f'[stores.lonely]\nurl = "file://{tmp_path}/lonely/"\n'
    )
    (tmp_path / "lonely").mkdir()
    src = random_file(Path(slow_http.root) / "long-wait.bin", 16 * MiB)  # 2 MiB/s per chunk
    general = faults.start_worker("general", "-Q", "mover,mover.file")
    faults.wait_ready(general)
    proc = subprocess.Popen(
        [
            *MOVER,
            "copy",
            f"{slow_http.url}/long-wait.bin",
            "store:lonely/x.bin",
            "--chunk-size",
            "2MiB",
            "--executor",
            "celery",
        ],
        env=faults.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        started = time.monotonic()
        ready, _, _ = select.select([proc.stderr], [], [], 10)  # the requirement: 10 s
        assert ready, "the follower said nothing within 10 s"
        line = proc.stderr.readline()  # the first line the follower prints
        elapsed = time.monotonic() - started
        assert line.startswith("waiting: no worker consumes mover.store.lonely;"), line
        assert "mover worker -Q mover.store.lonely" in line
        job_id = faults.jobs().list(1)[0].id
        status = faults.mover("status", job_id)
        assert "waiting: no worker consumes mover.store.lonely" in status.stdout
        serving = faults.start_worker("serving", "-Q", "mover.store.lonely")
        faults.wait_ready(serving)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "a worker consumes mover.store.lonely now" in err
    assert sha256(tmp_path / "lonely" / "x.bin") == sha256(src)
    print(f"\nno-worker notice after {elapsed:.2f} s")


# -- a publish the broker refuses -----------------------------------------------------------


def test_publish_error_is_one_line_and_the_job_resumable(faults: Fleet, tmp_path: Path):
    """The broker refuses the publish (a Redis user without LPUSH, as a broker that fails
    mid-batch): ``mover copy`` says so in one line with no traceback, naming the job and
    ``mover resume JOB``; --debug shows the traceback; the job is kept, and resuming it
    through a working connection completes it, verified."""
    import redis

    r = redis.Redis.from_url(faults.redis.url)
    r.execute_command("ACL", "SETUSER", "nopush", "on", ">pw", "~*", "&*", "+@all", "-lpush")
    refused = faults.redis.url.replace("redis://", "redis://nopush:pw@")
    worker = faults.start_worker("pub")
    faults.wait_ready(worker)
    src = random_file(tmp_path / "src.bin", 3 * MiB)
    env = {**faults.env, "MOVER_BROKER_URL": refused}
    args = [str(src), str(tmp_path / "dst.bin"), "--chunk-size", "1MiB", "--executor", "celery"]
    out = subprocess.run([*MOVER, "copy", *args], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    job_id = re.search(r"mover resume (\w+)", lines[0]).group(1)
    assert "resumable" in lines[0]
    debug = subprocess.run([*MOVER, "--debug", "copy", *args], env=env, capture_output=True)
    assert b"Traceback" in debug.stderr
    job = faults.jobs().get(job_id)
    assert job.state == "running" and f"mover resume {job_id}" in (job.error or "")
    resumed = faults.mover("resume", job_id)
    assert resumed.returncode == 0, resumed.stderr
    assert sha256(tmp_path / "dst.bin") == sha256(src)
    assert faults.jobs().commits(job_id, 0) == 1


# -- messages the broker lost ----------------------------------------------------------------


def test_a_job_whose_messages_the_broker_lost_is_published_again(faults: Fleet, tmp_path: Path):
    """Every chunk message of a detached job vanishes from the broker before any worker takes
    it (what a Redis killed between kombu's BRPOP and its ``unacked`` bookkeeping does to one
    message): a worker started afterwards finds the job stalled with no message anywhere,
    publishes its unfinished chunks again (once, though two workers sweep), and the job ends
    done with the source's bytes (sha256 of both files), committed once. A job that only
    waits its turn in the queue is left alone (the second job, queued behind the first on a
    queue no worker consumes yet, is never published again)."""
    (faults.folder / "config.toml").write_text(
        f'[stores.lonely]\nurl = "file://{tmp_path}/lonely/"\n'
    )
    (tmp_path / "lonely").mkdir()
    src = random_file(tmp_path / "src.bin", 6 * MiB)
    dst = tmp_path / "dst.bin"
    jobs = faults.jobs()
    job_id = copy_on_fleet(faults, str(src), str(dst), "--chunk-size", "1MiB")
    faults.purge("mover.file")  # the loss
    waiting = copy_on_fleet(faults, str(src), "store:lonely/dst.bin", "--chunk-size", "2MiB")
    try:
        a = faults.start_worker("lost-a", "-Q", "mover,mover.file")
        b = faults.start_worker("lost-b", "-Q", "mover,mover.file")
        faults.wait_ready(a, b)
        job = wait_final(jobs, job_id, RESCUE_STALL_S + 40, poll_s=0.5)
        assert job.state == "done", job.error
        assert sha256(dst) == sha256(src)
        assert jobs.commits(job_id, 0) == 1
        said = [w.text().count(f"job {job_id}: no progress for") for w in (a, b)]
        assert sorted(said) == [0, 1], said
        assert "published its 6 unfinished task(s) again" in a.text() + b.text()
        time.sleep(RESCUE_STALL_S + 3)  # the waiting job has been stalled long enough by now
        assert f"job {waiting}" not in a.text() + b.text()
        assert faults.jobs().get(waiting).state == "running"
        import redis

        assert redis.Redis.from_url(faults.redis.url).llen("mover.store.lonely") == 3
    finally:
        faults.purge("mover.store.lonely")
        jobs.update_job(waiting, state="cancelled", finished=time.time())
        (faults.folder / "config.toml").unlink()


# -- a worker killed during a commit ---------------------------------------------------------


@pytest.mark.s3
def test_commit_of_a_killed_worker_is_taken_over_once(faults: Fleet, tmp_path: Path):
    """The worker committing an S3 multipart upload is killed with SIGKILL while
    CompleteMultipartUpload is in flight (a fault proxy holds the answer): the object does
    not stay "committing"; after the 3 s lease, one live worker's sweep takes the commit over,
    exactly once, and the job ends done with the source's bytes (read back with boto3)."""
    if faults.s3 is None:
        pytest.skip("no S3 server")
    import boto3

    from mover.jobstores import leases
    from tests.faultproxy import FaultProxy, Rule

    s3 = boto3.client("s3", **faults.s3.client_kwargs())
    bucket = f"takeover-{os.getpid()}-{int(time.time())}"
    s3.create_bucket(Bucket=bucket)
    host, port = faults.s3.endpoint_url.split("//")[1].split(":")
    with FaultProxy(host, int(port)) as proxy:
        proxy.add(Rule("stall", method="POST", path=r"uploadId=", stall_s=12))
        victim = faults.start_worker(
            "victim", "-Q", "mover.s3", env={"AWS_ENDPOINT_URL": proxy.url}
        )
        rescuer = faults.start_worker("rescuer", "-Q", "mover")
        faults.wait_ready(victim, rescuer)
        src = random_file(tmp_path / "src.bin", 12 * MiB)
        job_id = copy_on_fleet(faults, str(src), f"s3://{bucket}/obj.bin", "--chunk-size", "5MiB")
        jobs = faults.jobs()
        wait_for(lambda: jobs.item_state(job_id, 0) == "committing", 60, "the commit")
        wait_for(lambda: proxy.fired, 15, "CompleteMultipartUpload in flight")
        victim.kill()
        victim.proc.wait(10)
        job = wait_final(jobs, job_id, 60, poll_s=0.2)
    assert job.state == "done", job.error
    back = tmp_path / "back.bin"
    s3.download_file(bucket, "obj.bin", str(back))
    assert sha256(back) == sha256(src)
    assert jobs.commits(job_id, 0) == 1
    assert leases.takeovers(jobs, job_id, 0) == 1
    assert rescuer.text().count(f"job {job_id} object 0: its commit lease expired") == 1
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def _small_objects_on_s3(
    faults: Fleet, tmp_path: Path, tag: str, count: int
) -> tuple[Any, str, Path]:
    """A boto3 client, a fresh bucket and a folder of ``count`` small random files (the
    sizes differ, so that a swapped object shows)."""
    if faults.s3 is None:
        pytest.skip("no S3 server")
    import boto3

    s3 = boto3.client("s3", **faults.s3.client_kwargs())
    bucket = f"{tag}-{os.getpid()}-{int(time.time())}"
    s3.create_bucket(Bucket=bucket)
    src = tmp_path / "small"
    src.mkdir()
    for n in range(count):
        (src / f"f{n:03d}.bin").write_bytes(os.urandom(1500 + 7 * n))
    return s3, bucket, src


def _read_back_equal(s3: Any, bucket: str, src: Path, count: int) -> None:
    """Every object read back with boto3 (not through mover) equals its source file."""
    for n in range(count):
        body = s3.get_object(Bucket=bucket, Key=f"t/f{n:03d}.bin")["Body"].read()
        assert body == (src / f"f{n:03d}.bin").read_bytes(), n


def test_a_worker_killed_mid_batch_leaves_every_small_object_once(faults: Fleet, tmp_path: Path):
    """A worker killed with SIGKILL in the middle of its ``mover.batch.copy`` tasks (some of
    its small objects uploaded and maybe recorded and committed in groups, one PUT held by a
    fault proxy): the batches come back to another worker after the visibility timeout; every
    object ends in S3 with its source's bytes (read back with boto3, not through mover), each
    committed once, the job done."""
    from tests.faultproxy import FaultProxy, Rule

    # 100 objects: two batches (64 objects at most in one).
    s3, bucket, src = _small_objects_on_s3(faults, tmp_path, "midbatch", 100)
    host, port = faults.s3.endpoint_url.split("//")[1].split(":")
    with FaultProxy(host, int(port)) as proxy:
        proxy.add(Rule("stall", method="PUT", path=r"/f05\d\.bin", stall_s=30, after=2))
        victim = faults.start_worker(
            "victim", "-Q", "mover.s3", env={"AWS_ENDPOINT_URL": proxy.url}
        )
        faults.wait_ready(victim)
        job_id = copy_on_fleet(faults, f"{src}/", f"s3://{bucket}/t/", "-r")
        wait_for(lambda: proxy.fired, 30, "a PUT held mid-batch")
        victim.kill()
        victim.proc.wait(10)
        jobs = faults.jobs()
        assert jobs.progress(job_id)[0] == "running"
        rescuer = faults.start_worker("rescuer", "-Q", "mover,mover.s3")
        faults.wait_ready(rescuer)
        job = wait_final(jobs, job_id, 90, poll_s=0.5)
    assert job.state == "done", job.error
    assert len(job.items) == 100
    _read_back_equal(s3, bucket, src, 100)
    assert all(jobs.commits(job_id, i.index) == 1 for i in job.items)
    assert "mover.batch.copy" in rescuer.text()  # the batches came back to the rescuer


def test_a_slow_object_does_not_hold_back_the_rest_of_its_batch(faults: Fleet, tmp_path: Path):
    """One PUT of a ``mover.batch.copy`` held 20 s by a fault proxy: the batch's other objects
    are recorded done (and counted in the job's progress) while it is held, so a follower sees
    them and a worker dying now would not redo them; then the job ends done, every object read
    back with boto3 equal to its source."""
    from tests.faultproxy import FaultProxy, Rule

    s3, bucket, src = _small_objects_on_s3(faults, tmp_path, "slowone", 60)  # one batch
    host, port = faults.s3.endpoint_url.split("//")[1].split(":")
    with FaultProxy(host, int(port)) as proxy:
        proxy.add(Rule("stall", method="PUT", path=r"/f030\.bin", stall_s=20))
        worker = faults.start_worker(
            "slowone", "-Q", "mover,mover.s3", env={"AWS_ENDPOINT_URL": proxy.url}
        )
        faults.wait_ready(worker)
        job_id = copy_on_fleet(faults, f"{src}/", f"s3://{bucket}/t/", "-r")
        wait_for(lambda: proxy.fired, 30, "the PUT of f030 held")
        jobs = faults.jobs()
        held_at = time.monotonic()

        def others_done() -> bool:
            return sum(jobs.item_state(job_id, i) == "done" for i in range(60)) == 59

        wait_for(others_done, 15, "the other 59 objects recorded while one is held")
        assert time.monotonic() - held_at < 20  # before the held PUT was let go
        assert jobs.item_state(job_id, 30) == "running"
        assert jobs.progress(job_id)[1] >= sum(1500 + 7 * n for n in range(60) if n != 30)
        job = wait_final(jobs, job_id, 90, poll_s=0.5)
    assert job.state == "done", job.error
    _read_back_equal(s3, bucket, src, 60)
    assert all(jobs.commits(job_id, i.index) == 1 for i in job.items)


# -- a signed URL never reaches the fleet ---------------------------------------------------


def test_signed_url_is_refused_by_the_fleet_and_never_in_redis(faults: Fleet, tmp_path: Path):
    """``mover copy SIGNED_URL --executor celery`` is refused in one line that says what to
    do instead, with nothing enqueued; a raw client sending ``mover.submit`` by name with it
    is refused too, and its failed job is recorded redacted. Afterwards no Redis key or value
    and no worker log line holds the credential."""
    signature, credential = "s1gnatureSECRETabcdef", "AKIAFLEETSECRET"
    url = (
        "https://bucket.example.invalid/disk.img?X-Amz-Credential="
        f"{credential}%2F20260101&X-Amz-Signature={signature}"
    )
    worker = faults.start_worker("signed")
    faults.wait_ready(worker)
    out = faults.mover("copy", url, str(tmp_path / "x.img"), "--executor", "celery", "--wait")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "--executor embedded" in out.stderr and "configure a store" in out.stderr
    script = f"""
from celery import Celery
app = Celery(broker={faults.redis.url!r}, backend={faults.redis.url!r})
r = app.send_task("mover.submit", args=[{{"source": {url!r}, "destination": "/tmp/x"}}],
                  queue="mover")
try:
    r.get(timeout=60)
except Exception as exc:
    print("ERROR", exc)
"""
    raw = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert raw.stdout.startswith("ERROR") and "signed URL" in raw.stdout, raw.stdout + raw.stderr
    bad_id = re.search(r"\(job (\w+)\)", raw.stdout).group(1)
    assert "X-Amz-Signature=REDACTED" in faults.jobs().get(bad_id).source
    for text in (out.stderr, raw.stdout, worker.text()):
        assert signature not in text and credential not in text
    for blob in redis_contents(faults.redis.url):
        assert signature.encode() not in blob and credential.encode() not in blob


# -- an abort that met a dead Swift, finished by a worker's sweep ----------------------------


@pytest.mark.swift
def test_abort_that_met_a_dead_swift_is_retried_by_the_sweep(faults: Fleet, tmp_path: Path):
    """A fleet copy to Swift fails (a segment PUT refused) and its abort meets a Swift that
    refuses it (a fault proxy in front of the store's storage URL): the abort is recorded in
    Redis and the segments stay. Once Swift answers again, a worker's sweep retries the abort
    by itself: the record goes and no segment of the upload is left (listed with swiftclient)."""
    if faults.swift is None:
        pytest.skip("no Swift server")
    from swiftclient.client import Connection

    from tests.faultproxy import FaultProxy, Rule

    conn = Connection(**faults.swift.connection_kwargs())
    container = f"sweep-{os.getpid()}-{int(time.time())}"
    conn.put_container(container)
    host, port = conn.url.split("//")[1].split("/")[0].split(":")
    account = conn.url.split("/v1/", 1)[1]

    def uploaded() -> list[str]:
        try:
            _, found = conn.get_container(f"{container}_segments", prefix="obj.bin/")
        except Exception:
            return []
        return [o["name"] for o in found]

    with FaultProxy(host, int(port)) as proxy:
        (faults.folder / "config.toml").write_text(
            f'[stores.flaky]\nurl = "swift://{container}/"\n'
            f'storage_url = "{proxy.url}/v1/{account}"\n'
        )
        proxy.add(Rule("status", method="PUT", path=r"/00000003$", status=403, times=None))
        dead = proxy.add(Rule("reset_request", method="GET", path=r"_segments\?", times=None))
        worker = faults.start_worker(
            "sweeper", "-Q", "mover,mover.store.flaky", env={"MOVER_ABORT_RETRY_S": "1"}
        )
        faults.wait_ready(worker)
        src = random_file(tmp_path / "src.bin", 5 * MiB)
        job_id = copy_on_fleet(faults, str(src), "store:flaky/obj.bin", "--chunk-size", "1MiB")
        jobs = faults.jobs()
        assert wait_final(jobs, job_id, 60, poll_s=0.2).state == "failed"
        assert [p.item for p in jobs.pending_aborts(job_id)] == [0]
        assert uploaded() and dead.fired
        proxy.clear()  # Swift answers again
        wait_for(lambda: not jobs.pending_aborts(job_id), 30, "the sweep to retry the abort")
    assert not uploaded()
    assert f"job {job_id} object 0: partial data removed" in worker.text()
