"""Commit leases, worker heartbeats and pending aborts in the job stores' own logic (fakeredis
and SQLite); the fleet's real takeovers and sweeps run in tests/integration/test_fleet_faults."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

fakeredis = pytest.importorskip("fakeredis")

from mover.cleanup import PendingAbort, backoff_s  # noqa: E402
from mover.jobs import ChunkRecord, Item, Job  # noqa: E402
from mover.jobstores import leases  # noqa: E402
from mover.jobstores.redis import RedisJobStore  # noqa: E402
from mover.jobstores.sqlite import SqliteJobStore  # noqa: E402
from mover.presence import Presence  # noqa: E402


@pytest.fixture
def store() -> RedisJobStore:
    jobs = RedisJobStore(client=fakeredis.FakeRedis(), ttl_s=3600)
    item = Item(0, "file:///s", "file:///d", 10, "running", "streaming", {"chunks": []})
    item.chunks = [ChunkRecord(0, 0, 10)]
    jobs.create(Job("j1", "file:///s", "file:///d", "running", executor="celery", items=[item]))
    return jobs


def test_a_lease_is_held_renewed_and_only_its_owner_records(store: RedisJobStore) -> None:
    assert store.claim_commit("j1", 0, owner="a", lease_s=60)
    assert not store.claim_commit("j1", 0, owner="b", lease_s=60)
    assert leases.renew(store, "j1", 0, "a", 60)
    assert not leases.renew(store, "j1", 0, "b", 60)
    assert leases.expired(store) == []
    assert not leases.take_over(store, "j1", 0, "b")  # not expired: nobody takes it
    assert not leases.finish(store, "j1", 0, "b", state="done")
    assert leases.finish(store, "j1", 0, "a", state="done", digest="d")
    item = store.get_item("j1", 0)
    assert item.state == "done" and item.digest == "d"
    assert store.commits("j1", 0) == 1 and leases.takeovers(store, "j1", 0) == 0


def test_an_expired_lease_is_taken_over_once(store: RedisJobStore) -> None:
    assert store.claim_commit("j1", 0, owner="dead", lease_s=0.01)
    time.sleep(0.05)
    assert leases.expired(store) == [("j1", 0)]
    assert leases.take_over(store, "j1", 0, "rescuer", 60)
    assert not leases.take_over(store, "j1", 0, "second", 60)  # fresh again: once
    assert not leases.finish(store, "j1", 0, "dead", state="failed")  # the old owner lost it
    assert leases.finish(store, "j1", 0, "rescuer", state="done")
    assert leases.takeovers(store, "j1", 0) == 1 and leases.expired(store) == []


def test_resume_releases_only_an_expired_claim(store: RedisJobStore) -> None:
    assert store.claim_commit("j1", 0, owner="a", lease_s=60)
    assert not leases.release_expired(store, "j1", 0)
    assert leases.renew(store, "j1", 0, "a", 0.01)
    time.sleep(0.05)
    assert leases.release_expired(store, "j1", 0)
    assert store.item_state("j1", 0) == "running" and leases.expired(store) == []


def test_presence_counts_only_live_workers() -> None:
    presence = Presence(fakeredis.FakeRedis(), "mover")
    presence.beat("w1@h", ["mover", "mover.s3"])
    presence.beat("w2@h", ["mover.store.x"])
    assert presence.unserved(["mover.s3", "mover.store.x", "mover.store.y"]) == ["mover.store.y"]
    presence.leave("w2@h")
    assert set(presence.live()) == {"w1@h"}
    assert presence.live(window_s=-1) == {}  # nothing younger than the future


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_pending_aborts_are_kept_held_and_dropped(kind: str, tmp_path: Path) -> None:
    if kind == "redis":
        jobs = RedisJobStore(client=fakeredis.FakeRedis())
    else:
        jobs = SqliteJobStore(tmp_path / "jobs.sqlite3")
    now = jobs.clock()
    due = PendingAbort("j1", 0, "file:///s", "swift://c/o", "streaming", {"writer": {}})
    due.next_at, due.first_at, due.attempts = now - 1, now, 1
    later = PendingAbort("j1", 1, "file:///s", "swift://c/p", "streaming", {"writer": {}})
    later.next_at, later.first_at = now + 3600, now
    jobs.save_pending_abort(due)
    jobs.save_pending_abort(later)
    assert [(r.item, r.destination) for r in jobs.pending_aborts("j1")] == [
        (0, "swift://c/o"),
        (1, "swift://c/p"),
    ]
    assert [r.item for r in jobs.due_aborts(10, hold_s=60)] == [0]
    assert jobs.due_aborts(10, hold_s=60) == []  # held while one sweeper runs it
    jobs.drop_pending_abort("j1", 0)
    assert [r.item for r in jobs.pending_aborts()] == [1]
    assert backoff_s(1) < backoff_s(2) < backoff_s(3) and backoff_s(40) == 3600
