"""The scripts that keep a ``mover.batch.copy``'s records (:mod:`mover.jobstores.batchrecords`),
on a real Redis (Lua): the same records and the same exactly-once claims as the one-object
path of :mod:`mover.jobstores.leases`, read back through the store's ordinary calls."""

from __future__ import annotations

import pytest
import redis

from mover.jobs import CANCELLED, COMMITTING, DONE, FAILED, RUNNING, ChunkRecord, Item, Job
from mover.jobstores import batchrecords, leases
from mover.jobstores.redis import CANCELLING, RedisJobStore

pytestmark = pytest.mark.integration

STOP = (CANCELLING, CANCELLED, FAILED)


def _job(jobs: RedisJobStore, n_items: int, chunks_each: int = 1) -> Job:
    job = Job(id="jobB", source="file:///s/", destination="s3://b/p/", state=RUNNING)
    for i in range(n_items):
        item = Item(i, f"file:///s/{i}", f"s3://b/p/{i}", size=100 * chunks_each, state=RUNNING)
        item.chunks = [ChunkRecord(c, c * 100, 100) for c in range(chunks_each)]
        job.items.append(item)
    jobs.create(job)
    return job


def _receipt(chunk: int) -> dict:
    return {"part": chunk + 1, "size": 100, "digest": f"xxh3_128:{chunk:032x}"}


def test_chunks_are_recorded_once_and_each_commit_is_claimed_once(redis_client: redis.Redis):
    jobs = RedisJobStore(client=redis_client, prefix="t")
    _job(jobs, 3)
    done = [batchrecords.Done(i, 0, _receipt(0)) for i in range(3)]
    first = batchrecords.record_done_and_claim(jobs, "jobB", done, "owner-a", STOP)
    assert first == [(0, True)] * 3
    # The same batch delivered again (its worker died before the ack): nothing new is
    # counted, and no second claim is made.
    again = batchrecords.record_done_and_claim(jobs, "jobB", done, "owner-b", STOP)
    assert again == [(0, False)] * 3
    assert jobs.progress("jobB") == (RUNNING, 300)
    for i in range(3):
        assert jobs.commits("jobB", i) == 1
        record = jobs.get_item("jobB", i)
        assert record.state == COMMITTING and record.chunks[0].state == DONE
        assert record.chunks[0].receipt == _receipt(0)
        assert jobs.chunks_left("jobB", i) == 0 and jobs.settle("jobB", i, 0) == 0
    # The lease is a real one: on Redis's clock, in the index the sweeps read.
    expires = jobs.r.zscore("t:committing", "jobB:1")
    assert expires is not None and expires > jobs.clock()
    assert not leases.expired(jobs)


def test_an_object_with_chunks_left_is_not_claimed(redis_client: redis.Redis):
    jobs = RedisJobStore(client=redis_client, prefix="t")
    _job(jobs, 1, chunks_each=2)
    out = batchrecords.record_done_and_claim(
        jobs, "jobB", [batchrecords.Done(0, 1, _receipt(1))], "owner-a", STOP
    )
    assert out == [(1, False)]
    assert jobs.item_state("jobB", 0) == RUNNING and jobs.commits("jobB", 0) == 0


def test_a_job_being_cancelled_gets_no_claim(redis_client: redis.Redis):
    jobs = RedisJobStore(client=redis_client, prefix="t")
    _job(jobs, 1)
    jobs.update_job("jobB", state=CANCELLING)
    out = batchrecords.record_done_and_claim(
        jobs, "jobB", [batchrecords.Done(0, 0, _receipt(0))], "owner-a", STOP
    )
    assert out == [(0, False)]  # recorded done; the one-object path commits it as cancelled
    assert jobs.item_state("jobB", 0) == RUNNING and jobs.is_chunk_done("jobB", 0, 0)


def test_outcomes_are_recorded_by_the_lease_holder_only_and_the_last_one_closes(
    redis_client: redis.Redis,
):
    jobs = RedisJobStore(client=redis_client, prefix="t")
    _job(jobs, 3)
    done = [batchrecords.Done(i, 0, _receipt(0)) for i in range(3)]
    batchrecords.record_done_and_claim(jobs, "jobB", done, "owner-a", STOP)
    ok = {"state": DONE, "digest": "xxh3_128:ab", "error": None, "size": 100}
    recorded, final = batchrecords.finish_commits(
        jobs,
        "jobB",
        [batchrecords.Outcome(0, "owner-a", ok), batchrecords.Outcome(1, "intruder", ok)],
    )
    assert recorded == [True, False] and not final
    assert jobs.item_state("jobB", 1) == COMMITTING  # not the intruder's to record
    failed = {"state": FAILED, "error": "checksum mismatch"}
    recorded, final = batchrecords.finish_commits(
        jobs,
        "jobB",
        [batchrecords.Outcome(1, "owner-a", ok), batchrecords.Outcome(2, "owner-a", failed)],
    )
    assert recorded == [True, True] and final  # this call made the last object final
    # Recorded twice (a retried script): nothing changes, and the job is not closed twice.
    recorded, final = batchrecords.finish_commits(
        jobs, "jobB", [batchrecords.Outcome(2, "owner-a", failed)]
    )
    assert recorded == [False] and not final
    job = jobs.get("jobB")
    assert [i.state for i in job.items] == [DONE, DONE, FAILED]
    assert job.items[0].digest == "xxh3_128:ab" and job.items[2].error == "checksum mismatch"
    assert jobs.r.zcard("t:committing") == 0  # every lease released
    head = jobs.outcomes("jobB")
    assert [(i.state, i.error) for i in head.items] == [
        (DONE, None),
        (DONE, None),
        (FAILED, "checksum mismatch"),
    ]


def test_read_gives_each_entry_its_record(redis_client: redis.Redis):
    jobs = RedisJobStore(client=redis_client, prefix="t")
    _job(jobs, 2)
    jobs.chunk_done("jobB", 1, 0, _receipt(0))
    state, entries = batchrecords.read(jobs, "jobB", [(0, 0), (1, 0), (7, 0)])
    assert state == RUNNING
    assert [(e.item, e.chunk_done) for e in entries] == [(0, False), (1, True), (7, False)]
    assert entries[0].record is not None and entries[0].record.destination == "s3://b/p/0"
    assert entries[2].record is None  # no such object
    assert batchrecords.read(jobs, "nojob", [(0, 0)])[0] is None
