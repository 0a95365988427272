"""The lost-message search of :mod:`mover.workers.rescue` on fakeredis: where a message of a
job may sit on a Redis broker, and what is published again for a job whose messages are gone."""

from __future__ import annotations

import json

import fakeredis

from mover.jobs import ChunkRecord, Item, Job
from mover.workers import rescue


def _message(job_id: str, item: int, chunk: int) -> bytes:
    headers = {"task": "mover.chunk.copy", "argsrepr": repr((job_id, item, chunk))}
    return json.dumps({"body": "e30=", "headers": headers}).encode()


def test_a_waiting_message_is_found_in_any_priority_band_and_past_the_first_page(monkeypatch):
    broker = fakeredis.FakeRedis()
    monkeypatch.setattr(rescue, "PAGE", 4)
    for n in range(10):
        broker.lpush("mover.s3", _message("other", 0, n))
    assert not rescue.has_messages(broker, "job1", {"mover.s3", "mover"})
    broker.rpush("mover.s3", _message("job1", 0, 3))  # the oldest: past two pages
    assert rescue.has_messages(broker, "job1", {"mover.s3"})
    broker.delete("mover.s3")
    broker.lpush("mover.s3\x06\x169", _message("job1", 0, 3))
    assert rescue.has_messages(broker, "job1", {"mover.s3"})
    assert not rescue.has_messages(broker, "job1", {"mover.file"})


def test_a_message_in_flight_is_found_in_unacked():
    broker = fakeredis.FakeRedis()
    raw = json.dumps([_message("job1", 2, 0).decode(), "", "mover.s3"]).encode()
    broker.hset("unacked", "tag-1", raw)
    assert rescue.has_messages(broker, "job1", set())
    assert not rescue.has_messages(broker, "job2", set())


def test_lost_work_is_the_chunks_not_done_of_running_objects_only():
    def item(index: int, state: str, chunk_states: list[str]) -> Item:
        chunks = [
            ChunkRecord(index=i, offset=i, length=1, state=s) for i, s in enumerate(chunk_states)
        ]
        return Item(index=index, source="a", destination="b", state=state, chunks=chunks)

    job = Job(id="j", source="a", destination="b", state="running")
    job.items = [
        item(0, "running", ["done", "pending", "running"]),
        item(1, "running", ["done"]),  # every chunk done: its commit
        item(2, "committing", ["done"]),  # the lease sweep's business
        item(3, "done", ["done"]),
    ]
    work = [(i.index, chunks) for i, chunks in rescue.lost_work(job)]
    assert work == [(0, [1, 2]), (1, [])]
