"""What "verified" means for sources, under injected faults, embedded executor.

Every read of an object store goes through the fault proxy (tests/faultproxy.py) in front of
the real SeaweedFS or Swift: a byte flipped in a GET body must be caught (the chunk or the
object is read again and the copy is byte-identical) or fail the job cleanly, never end done
with a wrong byte. Results are checked with readers mover did not write: sha256 of the file
against boto3's or swiftclient's own GET of the object. A source replaced (S3) or rewritten in
place (files) during the copy must fail the job with "source changed", leaving nothing.
Interleaving is deterministic: a stall rule holds one answer while the test changes the
source, or a progress callback changes it after the first bytes moved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import mover
from mover import resolve
from mover.jobs import DONE, FAILED
from mover.jobstores.sqlite import SqliteJobStore
from mover.provider import MiB
from tests.faultproxy import FaultProxy, Rule

pytestmark = [pytest.mark.integration]


# -- independent readers and writers ---------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


def sha256_s3(client: Any, bucket: str, key: str) -> str:
    """The object as boto3 reads it straight from the server (not through the proxy)."""
    h = hashlib.sha256()
    for block in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(8 * MiB):
        h.update(block)
    return h.hexdigest()


def plain_client(s3_server: Any) -> Any:
    """A boto3 client that sends no checksum of its own: objects it writes carry only their
    ETag (the md5 of a single part, the md5 of the parts' md5s)."""
    import boto3
    from botocore.config import Config

    kwargs = s3_server.client_kwargs()
    kwargs["config"] = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
    )
    return boto3.client("s3", **kwargs)


def put_multipart(
    client: Any, bucket: str, key: str, data: bytes, sizes: list[int], crc32c: bool = False
) -> None:
    """A multipart object with parts of ``sizes`` (with per-part crc32c when asked)."""
    extra = {"ChecksumAlgorithm": "CRC32C"} if crc32c else {}
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    parts, offset = [], 0
    for n, size in enumerate(sizes, 1):
        answer = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=n,
            Body=data[offset : offset + size],
            **extra,
        )
        part = {"PartNumber": n, "ETag": answer["ETag"]}
        if crc32c:
            part["ChecksumCRC32C"] = answer["ChecksumCRC32C"]
        parts.append(part)
        offset += size
    assert offset == len(data)
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".mover-" in p.name]


def uploads(client: Any, bucket: str) -> list[Any]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []


def copy(source: str, destination: str, **options: Any) -> Any:
    """mover.copy, returning the finished job whatever its state."""
    options.setdefault("streams", 2)
    return mover.copy(source, destination, raise_on_failure=False, jobs=SqliteJobStore(), **options)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def s3_proxy(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FaultProxy]:
    """mover's S3 client goes through a fault proxy (AWS_ENDPOINT_URL); boto3 clients made
    by the tests go straight to the server."""
    for name in ("AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    with FaultProxy("127.0.0.1", s3_server.port, seed=9) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        resolve.clear_cache()
        yield proxy
    resolve.clear_cache()


@pytest.fixture
def swift_proxy(
    swift_server: Any, swift_connection: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FaultProxy]:
    """A configured store ``swproxy`` whose storage URL is a fault proxy in front of Swift."""
    from urllib.parse import urlsplit

    for name in list(os.environ):
        if name.startswith(("ST_", "OS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", swift_server.user)
    monkeypatch.setenv("ST_KEY", swift_server.key)
    storage_url, _ = swift_connection.get_auth()
    with FaultProxy("127.0.0.1", swift_server.port, seed=5) as proxy:
        path = urlsplit(storage_url).path
        proxy.storage_url = f"{proxy.url}{path}"  # type: ignore[attr-defined]
        resolve.clear_cache()
        yield proxy
    resolve.clear_cache()


def swift_store(tmp_path: Path, proxy: FaultProxy, container: str) -> str:
    """Write the ``swproxy`` store for ``container`` into this test's configuration."""
    config = Path(os.environ["MOVER_CONFIG"])
    config.write_text(
        f'[stores.swproxy]\nurl = "swift://{container}/"\nstorage_url = "{proxy.storage_url}"\n'  # type: ignore[attr-defined]
    )
    return "store:swproxy/"


# -- S3: a flipped byte in a GET body ---------------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize(
    ("layout", "chunk"),
    [
        ("single", None),  # md5 ETag, one chunk: checked in the chunk, read again at once
        ("single-big", 4 * MiB),  # md5 ETag over 3 chunks: read in order, checked at commit
        ("single-crc", 4 * MiB),  # full-object crc32c: chunks in parallel, combined at commit
        ("multipart", 5 * MiB),  # md5 of the parts' md5s
        ("multipart-crc", 10 * MiB),  # composite crc32c, two parts a chunk
        ("multipart-uneven", 5 * MiB),  # parts' sizes from GetObjectAttributes
    ],
)
def test_flipped_byte_in_an_s3_get_is_caught(
    s3_proxy: FaultProxy, s3_server: Any, s3_bucket: str, tmp_path: Path, layout: str, chunk: Any
) -> None:
    client = plain_client(s3_server)
    data = os.urandom(13 * MiB + 11)
    if layout == "single":
        data = data[: 3 * MiB]
        client.put_object(Bucket=s3_bucket, Key="obj", Body=data)
    elif layout == "single-big":
        client.put_object(Bucket=s3_bucket, Key="obj", Body=data)
    elif layout == "single-crc":
        client.put_object(Bucket=s3_bucket, Key="obj", Body=data, ChecksumAlgorithm="CRC32C")
    elif layout == "multipart":
        put_multipart(client, s3_bucket, "obj", data, [5 * MiB, 5 * MiB, 3 * MiB + 11])
    elif layout == "multipart-crc":
        put_multipart(client, s3_bucket, "obj", data, [5 * MiB, 5 * MiB, 3 * MiB + 11], True)
    else:
        put_multipart(client, s3_bucket, "obj", data, [6 * MiB, 5 * MiB, 2 * MiB + 11])
    rule = s3_proxy.add(Rule("flip_response", method="GET", header="Range"))
    dst = tmp_path / "copy.bin"

    job = copy(f"s3://{s3_bucket}/obj", str(dst), chunk_size=chunk)

    assert job.state == DONE, job.error
    assert rule.fired == 1  # a byte was flipped on the way ...
    assert sha256_file(dst) == sha256_s3(client, s3_bucket, "obj")  # ... and is not in the copy
    assert sha256_file(dst) == hashlib.sha256(data).hexdigest()
    assert not leftovers(tmp_path)


@pytest.mark.s3
def test_recursive_copy_checks_objects_known_from_the_listing(
    s3_proxy: FaultProxy, s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """Objects known from a listing (an ETag, no checksum): a small one is checked by its
    ETag with no request, a large single-part one gets a HEAD that finds its full-object
    crc32c, a multipart one its parts' sizes; three flipped bytes, three right files."""
    client = plain_client(s3_server)
    objects = {
        "p/small.bin": os.urandom(3 * MiB),
        "p/large.bin": os.urandom(65 * MiB),
        "p/multi.bin": os.urandom(12 * MiB),
    }
    client.put_object(Bucket=s3_bucket, Key="p/small.bin", Body=objects["p/small.bin"])
    client.put_object(
        Bucket=s3_bucket, Key="p/large.bin", Body=objects["p/large.bin"], ChecksumAlgorithm="CRC32C"
    )
    put_multipart(
        client, s3_bucket, "p/multi.bin", objects["p/multi.bin"], [5 * MiB] * 2 + [2 * MiB]
    )
    rule = s3_proxy.add(Rule("flip_response", method="GET", header="Range", times=3))
    out = tmp_path / "out"

    job = copy(f"s3://{s3_bucket}/p/", f"{out}/", recursive=True, chunk_size=16 * MiB)

    assert job.state == DONE, job.error
    assert rule.fired == 3
    for key, data in objects.items():
        name = key.split("/")[-1]
        assert sha256_file(out / name) == sha256_s3(client, s3_bucket, key)
        assert sha256_file(out / name) == hashlib.sha256(data).hexdigest()
    whats = {i.destination.rsplit("/", 1)[-1]: i.plan["source"]["what"] for i in job.items}
    assert "md5 of the object" in whats["small.bin"]
    assert "crc32c" in whats["large.bin"]
    assert "parts' md5s" in whats["multi.bin"]


@pytest.mark.s3
def test_part_sizes_from_heads_when_attributes_are_refused(
    s3_proxy: FaultProxy, s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """A server without GetObjectAttributes: parts' sizes come from HEADs by part number
    (uniform parts inferred from the first and last; uneven ones asked one by one)."""
    client = plain_client(s3_server)
    s3_proxy.add(Rule("status", method="GET", path=r"attributes", status=501, times=None))
    layouts = {
        "even": [5 * MiB, 5 * MiB, 2 * MiB],  # inferred from the first and last part
        "uneven": [6 * MiB, 5 * MiB, MiB],  # the inference does not add up: every part's HEAD
        # Adds up as 6 MiB parts, but is not: the ETag disagrees at commit, the exact sizes
        # are asked and the object is read again in order.
        "tricky": [6 * MiB, 5 * MiB, 7 * MiB, 2 * MiB],
    }
    for key, sizes in layouts.items():
        data = os.urandom(sum(sizes))
        put_multipart(client, s3_bucket, key, data, sizes)
        rule = s3_proxy.add(Rule("flip_response", method="GET", header="Range"))
        dst = tmp_path / key
        job = copy(f"s3://{s3_bucket}/{key}", str(dst), chunk_size=5 * MiB)
        assert job.state == DONE, job.error
        assert rule.fired == 1
        assert sha256_file(dst) == sha256_s3(client, s3_bucket, key)
        heads = [f for f in s3_proxy.fired if f.action == "status"]
        assert heads, "GetObjectAttributes was not asked"


@pytest.mark.s3
@pytest.mark.parametrize("layout", ["single", "multipart"])
def test_every_get_corrupted_fails_clean(
    s3_proxy: FaultProxy, s3_server: Any, s3_bucket: str, tmp_path: Path, layout: str
) -> None:
    """Bytes that never arrive right fail the copy, saying what was compared with what; no
    file, no temporary file."""
    client = plain_client(s3_server)
    data = os.urandom(12 * MiB)
    if layout == "single":
        client.put_object(Bucket=s3_bucket, Key="obj", Body=data[: 2 * MiB])
    else:
        put_multipart(client, s3_bucket, "obj", data, [5 * MiB, 5 * MiB, 2 * MiB])
    s3_proxy.add(Rule("flip_response", method="GET", header="Range", times=None))
    dst = tmp_path / "copy.bin"

    job = copy(f"s3://{s3_bucket}/obj", str(dst), chunk_size=5 * MiB)

    assert job.state == FAILED
    assert "md5" in job.error and "ETag" in job.error, job.error
    assert not dst.exists() and not leftovers(tmp_path)


@pytest.mark.s3
def test_flipped_byte_s3_to_s3_leaves_a_right_object(
    s3_proxy: FaultProxy, s3_server: Any, s3_bucket: str, s3_client: Any
) -> None:
    """S3 to S3 across endpoints (the source through the proxy, so no server-side copy):
    the destination object equals the source; no upload is left."""
    from mover.location import parse

    client = plain_client(s3_server)
    data = os.urandom(12 * MiB)
    put_multipart(client, s3_bucket, "src", data, [5 * MiB, 5 * MiB, 2 * MiB])
    config = Path(os.environ["MOVER_CONFIG"])
    config.write_text(
        f'[stores.direct]\nurl = "s3://{s3_bucket}/"\nendpoint_url = "{s3_server.endpoint_url}"\n'
    )
    assert parse("store:direct/dst").name == "direct"
    rule = s3_proxy.add(Rule("flip_response", method="GET", header="Range", after=2))

    job = copy(f"s3://{s3_bucket}/src", "store:direct/dst", chunk_size=5 * MiB)

    assert job.state == DONE, job.error
    assert job.items[0].strategy == "streaming"
    assert rule.fired == 1
    assert sha256_s3(s3_client, s3_bucket, "dst") == hashlib.sha256(data).hexdigest()
    assert uploads(s3_client, s3_bucket) == []


# -- S3: the source replaced during the copy --------------------------------------------------


@dataclass
class ChangeSource(Rule):
    """Injects no fault: the ``at``-th request it matches (0-based) waits in the proxy until
    ``change`` has run (the source replaced, a file rewritten). Requests before it were
    answered from the old source: the copy is mid-way, whatever the machine's load."""

    change: Callable[[], None] | None = None
    at: int = 1
    done: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str, headers: Any) -> bool:
        if super().matches(method, path, headers) and not self.done.is_set():
            self.at -= 1
            if self.at < 0:
                assert self.change is not None
                self.change()  # under the proxy's lock: every other request waits
                self.done.set()
        return False


def change_before_get(proxy: FaultProxy, at: int, change: Callable[[], None]) -> ChangeSource:
    """``change`` runs before the ``at``-th ranged GET (0-based) reaches the server."""
    rule = ChangeSource("stall", method="GET", header="Range", at=at, change=change)
    proxy.add(rule)
    return rule


@pytest.mark.s3
@pytest.mark.parametrize("destination", ["file", "s3"])
def test_s3_source_replaced_mid_copy_fails_clean(
    s3_proxy: FaultProxy,
    s3_server: Any,
    s3_bucket: str,
    s3_client: Any,
    tmp_path: Path,
    destination: str,
) -> None:
    """The object is replaced before the third ranged GET reaches the server: the reads
    carry If-Match with the first ETag (412), so the copy fails as "source changed"."""
    client = plain_client(s3_server)
    data = os.urandom(20 * MiB)
    put_multipart(client, s3_bucket, "obj", data, [5 * MiB] * 4)
    newer = os.urandom(MiB)
    change = change_before_get(
        s3_proxy, 2, lambda: client.put_object(Bucket=s3_bucket, Key="obj", Body=newer)
    )
    if destination == "file":
        target = str(tmp_path / "copy.bin")
    else:
        Path(os.environ["MOVER_CONFIG"]).write_text(
            f'[stores.direct]\nurl = "s3://{s3_bucket}/"\n'
            f'endpoint_url = "{s3_server.endpoint_url}"\n'
        )
        target = "store:direct/copy.bin"

    job = copy(f"s3://{s3_bucket}/obj", target, chunk_size=5 * MiB, streams=1)

    assert change.done.is_set()
    assert job.state == FAILED
    assert "source changed during the copy" in job.error, job.error
    assert not (tmp_path / "copy.bin").exists() and not leftovers(tmp_path)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert keys == ["obj"] and uploads(s3_client, s3_bucket) == []


# -- files: rewritten in place during the copy ------------------------------------------------


def rewrite_once(path: Path, at: int) -> Any:
    """A progress callback that rewrites 1 MiB of ``path`` in place (as ``dd conv=notrunc``)
    the first time bytes move: the copy has read some chunks and not others."""
    done = threading.Lock()

    def on_progress(_: int) -> None:
        if done.acquire(blocking=False):
            with open(path, "r+b") as f:
                f.seek(at)
                f.write(os.urandom(MiB))

    return on_progress


def test_file_rewritten_in_place_mid_copy_fails_clean(tmp_path: Path) -> None:
    """File to file (kernel copy): the file's version (inode, mtime, size) is held and
    compared before commit; a rewrite in place fails the copy, nothing is left."""
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(24 * MiB))
    dst = tmp_path / "out" / "copy.bin"
    dst.parent.mkdir()

    job = copy(
        str(src), str(dst), chunk_size=4 * MiB, streams=1, on_progress=rewrite_once(src, 20 * MiB)
    )

    assert job.state == FAILED
    assert "source changed during the copy" in job.error, job.error
    assert not dst.exists() and not leftovers(dst.parent)
    again = copy(str(src), str(dst), chunk_size=4 * MiB)
    assert again.state == DONE and sha256_file(dst) == sha256_file(src)


def test_resume_holds_the_version_recorded_when_the_job_was_prepared(tmp_path: Path) -> None:
    """The file's version is in the job record: a job interrupted, then resumed after the file
    changed, fails as "source changed" instead of finishing with the new content."""
    from mover.errors import MoverError

    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(16 * MiB))
    dst = tmp_path / "out" / "copy.bin"
    dst.parent.mkdir()

    def interrupt(_: int) -> None:
        raise RuntimeError("interrupted")

    jobs = SqliteJobStore()
    first = mover.copy(
        str(src),
        str(dst),
        chunk_size=4 * MiB,
        jobs=jobs,
        on_progress=interrupt,
        raise_on_failure=False,
    )
    assert first.state == FAILED and first.items[0].version
    assert jobs.get(first.id).items[0].version == first.items[0].version
    with open(src, "r+b") as f:
        f.write(os.urandom(MiB))

    with pytest.raises(MoverError, match="source changed"):
        mover.resume(first.id, jobs=jobs)
    assert not dst.exists() and not leftovers(dst.parent)


@pytest.mark.s3
def test_file_rewritten_in_place_mid_copy_to_s3_fails_clean(
    s3_proxy: FaultProxy, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(24 * MiB))

    job = copy(
        str(src),
        f"s3://{s3_bucket}/copy.bin",
        chunk_size=6 * MiB,
        streams=1,
        on_progress=rewrite_once(src, 20 * MiB),
    )

    assert job.state == FAILED
    assert "source changed during the copy" in job.error, job.error
    assert not s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents")
    assert uploads(s3_client, s3_bucket) == []


def test_small_file_rewritten_before_an_atomic_put_fails(
    tmp_path: Path, s3_server: Any, s3_proxy: FaultProxy, s3_bucket: str, s3_client: Any
) -> None:
    """An object of one chunk is written by one atomic PutObject: the file's version is
    compared after the read and before the put, so a rewrite never reaches the store."""
    src = tmp_path / "small.bin"
    src.write_bytes(os.urandom(3 * MiB))

    job = copy(str(src), f"s3://{s3_bucket}/small.bin", on_progress=rewrite_once(src, 0))

    assert job.state == FAILED and "source changed" in job.error, job.error
    assert not s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents")


# -- Swift: a flipped byte in a GET body -----------------------------------------------------


def put_slo(connection: Any, container: str, key: str, data: bytes, segment: int) -> None:
    """A Static Large Object made with swiftclient (segments in ``<container>_segments``)."""
    segments_container = f"{container}_segments"
    connection.put_container(segments_container)
    manifest = []
    for n, offset in enumerate(range(0, len(data), segment)):
        name = f"{key}/seg/{n:04d}"
        piece = data[offset : offset + segment]
        etag = connection.put_object(segments_container, name, piece)
        manifest.append(
            {"path": f"/{segments_container}/{name}", "etag": etag, "size_bytes": len(piece)}
        )
    connection.put_object(
        container, key, json.dumps(manifest), query_string="multipart-manifest=put"
    )


def sha256_swift(connection: Any, container: str, key: str) -> str:
    """The object as swiftclient reads it straight from Swift."""
    h = hashlib.sha256()
    _, body = connection.get_object(container, key, resp_chunk_size=8 * MiB)
    for block in body:
        h.update(block)
    return h.hexdigest()


@pytest.fixture
def swift_segments_cleanup(swift_connection: Any, swift_container: str) -> Iterator[str]:
    yield swift_container
    segments = f"{swift_container}_segments"
    with contextlib.suppress(Exception):
        _, objects = swift_connection.get_container(segments, full_listing=True)
        for obj in objects:
            swift_connection.delete_object(segments, obj["name"])
        swift_connection.delete_container(segments)


@pytest.mark.swift
@pytest.mark.parametrize("layout", ["slo", "plain"])
def test_flipped_byte_in_a_swift_get_is_caught(
    swift_proxy: FaultProxy,
    swift_connection: Any,
    swift_segments_cleanup: str,
    tmp_path: Path,
    layout: str,
) -> None:
    """An SLO's segments are checked against their md5 in the manifest as each chunk is
    read; a plain object against its ETag. The copy equals swiftclient's own GET."""
    container = swift_segments_cleanup
    data = os.urandom(10 * MiB + 5)
    if layout == "slo":
        put_slo(swift_connection, container, "obj", data, 2 * MiB)
    else:
        swift_connection.put_object(container, "obj", data)
    base = swift_store(tmp_path, swift_proxy, container)
    rule = swift_proxy.add(Rule("flip_response", method="GET", header="Range", after=1))
    dst = tmp_path / "copy.bin"

    job = copy(f"{base}obj", str(dst), chunk_size=4 * MiB)

    assert job.state == DONE, job.error
    assert rule.fired == 1
    assert sha256_file(dst) == sha256_swift(swift_connection, container, "obj")
    assert sha256_file(dst) == hashlib.sha256(data).hexdigest()
    if layout == "slo":
        assert any("Swift SLO manifest" in n for n in job.items[0].plan["notes"])


@pytest.mark.swift
def test_swift_object_replaced_mid_copy_fails_clean(
    swift_proxy: FaultProxy, swift_connection: Any, swift_segments_cleanup: str, tmp_path: Path
) -> None:
    container = swift_segments_cleanup
    swift_connection.put_object(container, "obj", os.urandom(12 * MiB))
    base = swift_store(tmp_path, swift_proxy, container)
    newer = os.urandom(MiB)
    change = change_before_get(
        swift_proxy, 1, lambda: swift_connection.put_object(container, "obj", newer)
    )
    dst = tmp_path / "copy.bin"

    job = copy(f"{base}obj", str(dst), chunk_size=4 * MiB, streams=1)

    assert change.done.is_set()
    assert job.state == FAILED
    assert "source changed during the copy" in job.error, job.error
    assert not dst.exists() and not leftovers(tmp_path)


# -- HTTP: the digest a server sends ----------------------------------------------------------


@pytest.mark.parametrize(("digest", "ranges"), [("content-md5", True), ("repr-digest", False)])
def test_flipped_byte_in_an_http_get_is_caught(tmp_path: Path, digest: str, ranges: bool) -> None:
    """A server's Content-MD5 or Repr-Digest of the whole object: ranged reads are checked
    against it at commit (the object read again on a mismatch); a server without ranges is
    read as one stream, checked at its end and read again."""
    from tests.httpserver import HttpServer

    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(10 * MiB + 3)
    (root / "f.bin").write_bytes(data)
    dst = tmp_path / "copy.bin"
    server = HttpServer(root, ranges=ranges, digest=digest)
    with server, FaultProxy("127.0.0.1", server.port, seed=3) as proxy:
        rule = proxy.add(Rule("flip_response", method="GET"))
        job = copy(f"{proxy.url}/f.bin", str(dst), chunk_size=4 * MiB)

    assert job.state == DONE, job.error
    assert job.items[0].strategy == ("streaming" if ranges else "single-stream")
    assert rule.fired == 1
    assert sha256_file(dst) == hashlib.sha256(data).hexdigest()
    assert any("server sent" in n for n in job.items[0].plan["notes"])


# -- block devices: read as they are, noted live -----------------------------------------------


def test_block_device_source_is_noted_live(tmp_path: Path) -> None:
    """A block device's writes change nothing stat shows: the copy cannot hold it to a
    version, so the job record says the source was live (snapshot the volume first)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup")
    image = tmp_path / "vol.img"
    image.write_bytes(os.urandom(4 * MiB))
    made = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no loop device: {made.stderr.strip()}")
    device = made.stdout.strip()
    try:
        job = copy(device, str(tmp_path / "copy.img"))
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    notes = " ".join(job.items[0].plan["notes"]) if job.items[0].plan else ""
    assert "the source is live" in notes and "snapshot the volume first" in notes, job
