"""The source's version and checksum recorded on an item survive in both job stores (a Celery
worker and ``mover resume`` read them back); a SQLite store made before those columns opens,
keeps its jobs, and records them from then on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mover.jobs import Item, Job
from mover.jobstores.sqlite import SqliteJobStore

_OLD_ITEMS = """
CREATE TABLE items (
    job_id TEXT, idx INTEGER, source TEXT, destination TEXT, size INTEGER, state TEXT,
    strategy TEXT, plan TEXT, digest TEXT, error TEXT, bytes_through INTEGER,
    PRIMARY KEY (job_id, idx)
);
"""


def test_old_store_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_ITEMS)
    store = SqliteJobStore(path, write_behind=False)
    job = Job(id="j1", source="file:///a", destination="file:///b")
    job.items = [Item(0, "file:///a", "file:///b", 3, version="v1", checksum="md5:ab")]
    store.create(job)
    again = SqliteJobStore(path, write_behind=False).get("j1")
    assert (again.items[0].version, again.items[0].checksum) == ("v1", "md5:ab")


def test_redis_store_keeps_them() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    from mover.jobstores.redis import RedisJobStore

    store = RedisJobStore(client=fakeredis.FakeRedis(), ttl_s=3600)
    job = Job(id="j2", source="s3://b/k", destination="file:///b")
    job.items = [Item(0, "s3://b/k", "file:///b", 3, version="e-2", checksum="crc32c:00ff")]
    store.create(job)
    item = store.get("j2").items[0]
    assert (item.version, item.checksum) == ("e-2", "crc32c:00ff")
