"""The Redis job store's own logic on fakeredis: records round-trip, counting is idempotent
under redelivery, the commit is claimed once, finished jobs expire. (fakeredis cannot serve as
a Celery broker; the fleet itself is tested on a real Redis in tests/integration.)"""

from __future__ import annotations

import threading

import pytest

fakeredis = pytest.importorskip("fakeredis")

from mover.errors import JobNotFound  # noqa: E402
from mover.jobs import ChunkRecord, Item, Job  # noqa: E402
from mover.jobstores.redis import CANCELLING, RedisJobStore  # noqa: E402


@pytest.fixture
def store() -> RedisJobStore:
    return RedisJobStore(client=fakeredis.FakeRedis(), ttl_s=3600)


def make_job(job_id: str = "abc123", n_chunks: int = 4, state: str = "running") -> Job:
    chunks = [ChunkRecord(i, i * 10, 10) for i in range(n_chunks)]
    item = Item(
        0,
        "file:///src",
        "file:///dst",
        size=10 * n_chunks,
        state=state,
        strategy="streaming",
        plan={"strategy": "streaming", "chunks": [], "writer": {"temp": "/t"}},
        chunks=chunks,
    )
    return Job(
        job_id, "file:///src", "file:///dst", state="running", executor="celery", items=[item]
    )


def test_round_trip(store: RedisJobStore) -> None:
    store.create(make_job())
    job = store.get("abc123")
    assert job.executor == "celery" and job.state == "running"
    item = job.items[0]
    assert item.size == 40 and item.plan["writer"] == {"temp": "/t"}
    assert [(c.index, c.offset, c.length, c.state) for c in item.chunks] == [
        (0, 0, 10, "pending"),
        (1, 10, 10, "pending"),
        (2, 20, 10, "pending"),
        (3, 30, 10, "pending"),
    ]


def test_prefix_resolution(store: RedisJobStore) -> None:
    store.create(make_job("aaa111"))
    store.create(make_job("aaa222"))
    assert store.get("aaa1").id == "aaa111"
    with pytest.raises(JobNotFound, match="several"):
        store.get("aaa")
    with pytest.raises(JobNotFound, match="unknown"):
        store.get("zzz")


def test_chunk_done_counts_and_is_idempotent(store: RedisJobStore) -> None:
    store.create(make_job())
    assert store.chunk_done("abc123", 0, 0, {"part": 0, "size": 10, "digest": "d0"}) == 3
    # The same chunk delivered again: nothing more is counted.
    assert store.chunk_done("abc123", 0, 0, {"part": 0, "size": 10, "digest": "d0"}) == 3
    store.chunk_failed("abc123", 0, 1, "boom")
    assert store.get("abc123").items[0].chunks[1].state == "failed"
    for n in (1, 2):
        store.chunk_done("abc123", 0, n, {"part": n, "size": 10, "digest": f"d{n}"})
    assert store.chunk_done("abc123", 0, 3, {"part": 3, "size": 10, "digest": "d3"}) == 0
    assert store.progress("abc123") == ("running", 40)  # the second delivery not counted
    item = store.get("abc123").items[0]
    assert all(c.state == "done" for c in item.chunks)
    assert item.chunks[1].error is None and item.chunks[2].digest == "d2"
    assert item.bytes_done == 40


def test_claim_commit_once_across_threads(store: RedisJobStore) -> None:
    store.create(make_job())
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        wins.append(store.claim_commit("abc123", 0))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert store.commits("abc123", 0) == 1
    assert store.get("abc123").items[0].state == "committing"
    assert not store.claim_commit("abc123", 0)


def test_transition_and_settle(store: RedisJobStore) -> None:
    store.create(make_job())
    key = store.job_key("abc123")
    assert store.transition(key, ("pending", "running"), CANCELLING)
    assert not store.transition(key, ("pending", "running"), CANCELLING)
    assert store.job_state("abc123") == CANCELLING
    store.chunk_done("abc123", 0, 0, {"part": 0, "size": 10, "digest": "d"})
    assert store.settle("abc123", 0, 1) == 2  # chunk 0 done, 1 settled: 2 left
    assert store.settle("abc123", 0, 1) == 2  # idempotent
    store.settle("abc123", 0, 2)
    assert store.settle("abc123", 0, 3) == 0
    store.unsettle("abc123", 0, [2, 3])
    assert store.settle("abc123", 0, 3) == 1


def test_item_final_finishes_once(store: RedisJobStore) -> None:
    job = make_job()
    job.items.append(Item(1, "file:///a", "file:///b", 0, state="running"))
    store.create(job)
    assert not store.item_final("abc123", 0)
    assert store.item_final("abc123", 1)
    assert not store.item_final("abc123", 1)  # a second report of the same item


def test_finished_jobs_expire_and_resume_persists(store: RedisJobStore) -> None:
    store.create(make_job())
    store.update_job("abc123", state="done", finished=1.0)
    ttl = store.r.ttl(store.job_key("abc123"))
    assert 0 < ttl <= 3600
    assert 0 < store.r.ttl(store.item_key("abc123", 0)) <= 3600
    store.update_job("abc123", state="running")
    assert store.r.ttl(store.job_key("abc123")) == -1


def test_list_newest_first_and_drops_expired(store: RedisJobStore) -> None:
    for n, jid in enumerate(("j1", "j2", "j3")):
        job = make_job(jid)
        job.created = 100.0 + n
        store.create(job)
    assert [j.id for j in store.list(2)] == ["j3", "j2"]
    store.r.delete(store.job_key("j3"))  # as if its TTL had passed
    assert [j.id for j in store.list()] == ["j2", "j1"]
    assert store.r.zscore("mover:jobs", "j3") is None


def test_save_item_replans(store: RedisJobStore) -> None:
    store.create(make_job())
    store.chunk_done("abc123", 0, 0, {"part": 0, "size": 10, "digest": "d"})
    item = store.get("abc123").items[0]
    item.chunks = [ChunkRecord(0, 0, 40)]
    item.state = "running"
    store.save_item("abc123", item)
    again = store.get("abc123").items[0]
    assert [(c.index, c.length, c.state) for c in again.chunks] == [(0, 40, "pending")]
    assert store.chunk_done("abc123", 0, 0, {"part": 0, "size": 40, "digest": "e"}) == 0


def test_update_fields_checked(store: RedisJobStore) -> None:
    store.create(make_job())
    with pytest.raises(ValueError):
        store.update_item("abc123", 0, password="x")
    with pytest.raises(ValueError):
        store.update_job("abc123", options={})
    store.update_item("abc123", 0, state="done", digest="zz", size=40)
    item = store.get("abc123").items[0]
    assert (item.state, item.digest) == ("done", "zz")


def test_queue_routing_by_destination() -> None:
    """Chunks go to the queue of their destination store (the executor's routing rule)."""
    from mover.executors.celery import queue_for

    assert queue_for("s3://bucket/key") == "mover.s3"
    assert queue_for("store:backup-east/templates/x.qcow2") == "mover.store.backup-east"
    assert queue_for("/tmp/x") == "mover.file"
    assert queue_for("::not a url::") in ("mover", "mover.file")


def test_executor_module_does_not_import_celery() -> None:
    """The embedded path stays fast: importing the executor and job store loads no Celery."""
    import subprocess
    import sys

    code = (
        "import sys, mover.executors.celery, mover.jobstores.redis, mover.fleet, mover.cli.main;"
        "assert 'celery' not in sys.modules, 'celery imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_finished_job_reads_as_get_without_done_objects_receipts(store: RedisJobStore) -> None:
    """``finished`` (what a follower reports) gives what ``get`` gives, except that a done
    object's chunks are marked done without their receipts being read; an object not done
    keeps its chunks' real states and errors."""
    job = make_job(n_chunks=2)
    second = Item(1, "file:///src2", "file:///dst2", size=20, state="running", strategy="s")
    second.plan = {"strategy": "s", "source": {"what": "etag"}}
    second.chunks = [ChunkRecord(0, 0, 10), ChunkRecord(1, 10, 10)]
    job.items.append(second)
    store.create(job)
    for item in (0, 1):
        store.chunk_done(job.id, item, 0, {"part": 1, "size": 10, "digest": "x:1"})
    store.chunk_done(job.id, 0, 1, {"part": 2, "size": 10, "digest": "x:2"})
    store.chunk_failed(job.id, 1, 1, "boom")
    store.update_item(job.id, 0, state="done", digest="x:whole")
    store.update_item(job.id, 1, state="failed", error="boom")
    full, light = store.get(job.id), store.finished(job.id)
    assert [(i.index, i.state, i.digest, i.error, i.plan) for i in light.items] == [
        (i.index, i.state, i.digest, i.error, i.plan) for i in full.items
    ]
    assert [c.state for c in light.items[0].chunks] == ["done", "done"]
    assert light.items[0].chunks[0].receipt is None  # not read for a done object
    assert full.items[0].chunks[0].receipt == {"part": 1, "size": 10, "digest": "x:1"}
    assert (
        [(c.state, c.error) for c in light.items[1].chunks]
        == [(c.state, c.error) for c in full.items[1].chunks]
        == [("done", None), ("failed", "boom")]
    )
    # "seconds" runs on with the clock for a job not finished: the rest must be equal.
    assert {**light.summary(), "seconds": 0} == {**full.summary(), "seconds": 0}
    with pytest.raises(JobNotFound):
        store.finished("nope")
