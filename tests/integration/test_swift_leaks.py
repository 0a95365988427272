"""Nothing leaks into Swift: staged segments expire until their upload is committed, a
committed object never does, and an abort that met a dead Swift is retried until the
segments are gone, before a resume uploads anything again.

Real Swift (``swift_server``); what is left is read with swiftclient directly, an
independent reader. "Swift down" is a fault proxy in front of the storage URL (a configured
store's ``storage_url``) that refuses the requests an abort makes, so the rest of the session's
Swift is untouched. Expiry: Swift's object expirer does not run here, but an object past its
``X-Delete-At`` answers 404 to GET at once, which is what these tests check after a 3 s bound.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import mover
from mover import resolve
from mover.digests import digest
from mover.errors import JobStateError
from mover.executors import embedded
from mover.jobstores.sqlite import SqliteJobStore
from tests.faultproxy import FaultProxy, Rule
from tests.integration import test_swift

if TYPE_CHECKING:
    from swiftclient.client import Connection

pytestmark = [pytest.mark.integration, pytest.mark.swift]

MiB = 1 << 20
MOVER = [sys.executable, "-m", "mover.cli.main"]
#: The staging bound these tests set (``MOVER_SEGMENT_EXPIRY_S``), seconds.
EXPIRY_S = 3
#: test_swift's fixtures: ST_* credentials, and a container whose segments are cleaned.
swift_env = test_swift.swift_env
container = test_swift.container


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def segments(conn: Connection, container: str, prefix: str = "") -> list[str]:
    try:
        _, listing = conn.get_container(f"{container}_segments", prefix=prefix, full_listing=True)
    except Exception:
        return []
    return [o["name"] for o in listing]


def read_whole(conn: Connection, container: str, name: str) -> bytes:
    _, body = conn.get_object(container, name)
    return body


def test_committed_slo_outlives_the_staging_expiry(
    container: str, swift_connection: Connection, tmp_path: Path, monkeypatch: Any
):
    """Segments are staged with a 3 s expiry; the commit removes it from every segment the
    manifest names, so the object still reads whole (sha256) after the bound has passed."""
    monkeypatch.setenv("MOVER_SEGMENT_EXPIRY_S", str(EXPIRY_S))
    data = os.urandom(3 * MiB + 5)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    job = mover.copy(str(src), f"swift://{container}/obj.bin", chunk_size=1 * MiB)
    assert job.state == "done"
    head = swift_connection.head_object(container, "obj.bin")
    assert head.get("x-static-large-object") == "True"
    names = segments(swift_connection, container, "obj.bin/")
    assert len(names) == 4
    for name in names:
        assert "x-delete-at" not in swift_connection.head_object(f"{container}_segments", name)
    time.sleep(EXPIRY_S + 1.5)  # past the staging bound
    assert sha256_bytes(read_whole(swift_connection, container, "obj.bin")) == sha256_bytes(data)


def test_plain_object_made_from_its_segment_does_not_inherit_the_expiry(
    container: str, swift_connection: Connection, tmp_path: Path, monkeypatch: Any
):
    """A stream of one part (standard input, 700 KiB) is staged as one expiring segment and
    committed as a plain object copied from it: the copy carries no expiry and reads whole
    after the bound has passed; the staging segment is gone."""
    data = os.urandom(700 * 1024)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    env = {**os.environ, "MOVER_SEGMENT_EXPIRY_S": str(EXPIRY_S)}
    with open(src, "rb") as stdin:
        out = subprocess.run(
            [*MOVER, "copy", "-q", "--chunk-size", "1MiB", "-", f"swift://{container}/p.bin"],
            stdin=stdin,
            capture_output=True,
            env=env,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr.decode()
    head = swift_connection.head_object(container, "p.bin")
    assert "x-static-large-object" not in head and "x-delete-at" not in head
    assert segments(swift_connection, container, "p.bin/") == []
    time.sleep(EXPIRY_S + 1.5)
    assert sha256_bytes(read_whole(swift_connection, container, "p.bin")) == sha256_bytes(data)


def test_staged_segments_expire_when_never_committed(
    container: str, swift_connection: Connection, monkeypatch: Any
):
    """A segment of an upload that is never committed (its abort never ran) carries
    X-Delete-At, and Swift serves it no more once the bound has passed."""
    monkeypatch.setenv("MOVER_SEGMENT_EXPIRY_S", str(EXPIRY_S))
    store, loc = resolve.open_location(f"swift://{container}/staged.bin")
    writer = store.open_writer(loc.full_key, 2 * MiB)
    data = os.urandom(1 * MiB)
    receipt = writer.write_part(0, 0, memoryview(data), digest("md5", data))
    name = receipt.extra["segment"]
    seg = f"{container}_segments"
    assert "x-delete-at" in swift_connection.head_object(seg, name)
    assert sha256_bytes(read_whole(swift_connection, seg, name)) == sha256_bytes(data)
    time.sleep(EXPIRY_S + 1.5)
    from swiftclient.exceptions import ClientException

    with pytest.raises(ClientException) as gone:
        swift_connection.get_object(seg, name)
    assert gone.value.http_status == 404


def flaky_store(
    swift_connection: Connection, container: str, tmp_path: Path, proxy: FaultProxy
) -> None:
    """Configure ``store:flaky`` as ``container`` reached through ``proxy``."""
    account = swift_connection.url.split("/v1/", 1)[1]
    config = Path(os.environ["MOVER_CONFIG"])
    config.write_text(
        f'[stores.flaky]\nurl = "swift://{container}/"\nstorage_url = "{proxy.url}/v1/{account}"\n'
    )
    resolve.clear_cache()


def test_abort_that_met_a_dead_swift_is_retried_before_resume(
    container: str,
    swift_connection: Connection,
    swift_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """A copy fails (a segment PUT refused) and its abort meets a Swift that refuses it:
    the segments stay and the abort is recorded. ``mover resume`` refuses while Swift still
    refuses (uploading nothing beside them); once Swift answers, resume first removes the old
    segments, then uploads; in the end the segments container holds only the segments of
    the committed object, which reads back whole. (The run itself retries the abort for a
    short window before it ends: here 1.2 s, so at least two attempts are recorded.)"""
    monkeypatch.setattr(embedded, "ABORT_RETRY_WINDOW_S", 1.2)
    host, port = swift_connection.url.split("//")[1].split("/")[0].split(":")
    data = os.urandom(4 * MiB + 7)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    jobs = SqliteJobStore()
    with FaultProxy(host, int(port)) as proxy:
        flaky_store(swift_connection, container, tmp_path, proxy)
        refuse = proxy.add(Rule("status", method="PUT", path=r"/00000003$", status=403, times=None))
        dead = proxy.add(Rule("reset_request", method="GET", path=r"_segments\?", times=None))
        job = mover.copy(
            str(src), "store:flaky/obj.bin", chunk_size=1 * MiB, jobs=jobs, raise_on_failure=False
        )
        assert job.state == "failed", job.error
        assert refuse.fired and dead.fired
        pending = jobs.pending_aborts(job.id)
        assert [p.item for p in pending] == [0] and pending[0].attempts >= 2
        orphans = segments(swift_connection, container, "obj.bin/")
        assert orphans, "the failed upload left no segment to clean"
        with pytest.raises(JobStateError, match="could not be removed yet"):
            mover.resume(job.id, jobs=jobs)
        assert segments(swift_connection, container, "obj.bin/") == orphans
        proxy.clear()  # Swift answers again
        done = mover.resume(job.id, jobs=jobs)
    assert done.state == "done", done.error
    assert not jobs.pending_aborts(job.id)
    assert sha256_bytes(read_whole(swift_connection, container, "obj.bin")) == sha256_bytes(data)
    left = segments(swift_connection, container, "obj.bin/")
    assert len(left) == 5 and not set(left) & set(orphans)


@pytest.mark.parametrize("parts", [1, 3], ids=["plain", "slo"])
def test_a_commit_repeated_by_a_takeover_finds_the_object_in_place(
    container: str, swift_connection: Connection, parts: int
):
    """A committer that died after its commit reached Swift, but before it was recorded, has
    its commit taken over and run again: the second commit succeeds (the plain object already
    made from a segment that is now gone; the same SLO manifest put again) and the object
    reads whole, without expiry."""
    store, loc = resolve.open_location(f"swift://{container}/again.bin")
    blocks = [os.urandom(1 * MiB) for _ in range(parts - 1)] + [os.urandom(600 * 1024)]
    size = sum(len(b) for b in blocks)
    writer = store.open_writer(loc.full_key, size)
    receipts, offset = [], 0
    for n, block in enumerate(blocks):
        receipts.append(writer.write_part(n, offset, memoryview(block), digest("md5", block)))
        offset += len(block)
    first = writer.commit(receipts, size)
    again = store.resume_writer(loc.full_key, writer.state()).commit(receipts, size)
    assert again.etag == first.etag and again.size == size
    body = read_whole(swift_connection, container, "again.bin")
    assert sha256_bytes(body) == sha256_bytes(b"".join(blocks))
    assert "x-delete-at" not in swift_connection.head_object(container, "again.bin")
