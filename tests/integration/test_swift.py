"""The Swift provider against a real Swift (``swift_server``): SLO writes, ranged reads, errors.

Every copy runs end to end through :func:`mover.copy` (embedded executor), with credentials in
``ST_AUTH``/``ST_USER``/``ST_KEY`` as an operator would set them. What mover wrote is read back
by the ``swift`` command line, an independent reader, and compared by sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import mover
from mover import resolve
from mover.digests import digest
from mover.errors import (
    AccessDenied,
    ChunkFailed,
    ConfigError,
    MoverError,
    NotWritable,
    ObjectNotFound,
    VerificationFailed,
)
from mover.location import parse
from mover.providers.swift import SwiftProvider, resolve_credentials
from tests.servers import free_port

if TYPE_CHECKING:
    from swiftclient.client import Connection

    from tests.servers import SwiftServer

pytestmark = [pytest.mark.integration, pytest.mark.swift]

MiB = 1024 * 1024


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def swift_env(
    swift_server: SwiftServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SwiftServer]:
    """ST_* credentials for the test server, a private job store, and no cached stores."""
    for name in list(os.environ):
        if name.startswith(("ST_", "OS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", swift_server.user)
    monkeypatch.setenv("ST_KEY", swift_server.key)
    monkeypatch.setenv("MOVER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MOVER_CONFIG", str(tmp_path / "no-config.toml"))
    resolve.clear_cache()
    yield swift_server
    resolve.clear_cache()


@pytest.fixture
def container(
    swift_env: SwiftServer, swift_container: str, swift_connection: Connection
) -> Iterator[str]:
    """``swift_container``, whose ``_segments`` container is emptied and deleted afterwards."""
    yield swift_container
    segments = swift_container + "_segments"
    with contextlib.suppress(Exception):
        _, objects = swift_connection.get_container(segments, full_listing=True)
        for obj in objects:
            swift_connection.delete_object(segments, obj["name"])
        swift_connection.delete_container(segments)


def _segments(connection: Connection, container: str) -> list[str]:
    """Names in ``<container>_segments``; none if that container does not exist."""
    from swiftclient.client import ClientException

    try:
        _, objects = connection.get_container(container + "_segments", full_listing=True)
    except ClientException as exc:
        if exc.http_status == 404:
            return []
        raise
    return [o["name"] for o in objects]


def _write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` in pieces; return their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(min(left, 8 * MiB))
            h.update(piece)
            f.write(piece)
            left -= len(piece)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(8 * MiB):
            h.update(piece)
    return h.hexdigest()


def _swift_cli(server: SwiftServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run python-swiftclient's ``swift`` command with the credentials on its command line."""
    exe = Path(sys.executable).parent / "swift"
    binary = str(exe) if exe.exists() else shutil.which("swift")
    if binary is None:
        pytest.skip("the swift command line (python-swiftclient) is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "OS_"))}
    return subprocess.run(
        [binary, "-A", server.auth_url, "-U", server.user, "-K", server.key, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def _provider(container: str, options: dict[str, Any] | None = None) -> SwiftProvider:
    store = SwiftProvider.open(parse(f"swift://{container}/"), options)
    assert isinstance(store, SwiftProvider)
    return store


def _upload(tmp_path: Path, container: str, key: str, size: int, chunk_size: int) -> str:
    """Copy ``size`` random bytes to ``swift://container/key`` with mover; return the sha256."""
    src = tmp_path / f"upload-{size}.bin"
    want = _write_random(src, size)
    mover.copy(str(src), f"swift://{container}/{key}", chunk_size=chunk_size, streams=4)
    src.unlink()
    return want


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        (0, 1 * MiB),
        (1, 1 * MiB),
        (5 * MiB + 1, 1 * MiB),
        pytest.param(100 * MiB, 16 * MiB, marks=pytest.mark.slow),
    ],
    ids=["0B", "1B", "5MiB+1", "100MiB"],
)
def test_file_to_swift_and_back(
    swift_env: SwiftServer,
    container: str,
    swift_connection: Connection,
    tmp_path: Path,
    size: int,
    chunk_size: int,
) -> None:
    src = tmp_path / "src.bin"
    want = _write_random(src, size)
    url = f"swift://{container}/dir/object.bin"

    job = mover.copy(str(src), url, chunk_size=chunk_size, streams=4)
    assert job.state == "done"

    headers = swift_connection.head_object(container, "dir/object.bin")
    assert int(headers["content-length"]) == size
    parts = -(-size // chunk_size)
    segments = _segments(swift_connection, container)
    if parts <= 1:
        # One part or none: a plain object whose ETag is its md5, no segment left behind.
        assert "x-static-large-object" not in headers
        assert segments == []
        assert headers["etag"].strip('"') == hashlib.md5(src.read_bytes()).hexdigest()
    else:
        assert headers["x-static-large-object"] == "True"
        assert len(segments) == parts
        assert all(s.startswith("dir/object.bin/mover-") for s in segments)

    # An independent reader: the swift command line.
    by_cli = tmp_path / "by-cli.bin"
    result = _swift_cli(swift_env, "download", container, "dir/object.bin", "-o", str(by_cli))
    assert result.returncode == 0, result.stderr
    assert _sha256(by_cli) == want

    # Back with mover, in ranged reads of chunk_size.
    back = tmp_path / "back.bin"
    job = mover.copy(url, str(back), chunk_size=chunk_size, streams=4)
    assert job.state == "done"
    assert back.stat().st_size == size
    assert _sha256(back) == want


def test_stream_of_unknown_size_from_stdin_to_swift_and_out_again(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    """``mover copy - swift://...``: parts written in order, sizes told at commit."""
    src = tmp_path / "src.bin"
    want = _write_random(src, 3 * MiB + 17)
    mover_cli = [sys.executable, "-m", "mover.cli.main"]
    env = {**os.environ}
    with open(src, "rb") as stdin:
        result = subprocess.run(
            [*mover_cli, "copy", "-q", "--chunk-size", "1MiB", "-", f"swift://{container}/s.bin"],
            stdin=stdin,
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    headers = swift_connection.head_object(container, "s.bin")
    assert int(headers["content-length"]) == 3 * MiB + 17
    assert len(_segments(swift_connection, container)) == 4

    store = _provider(container)
    try:
        with store.open_read("s.bin") as stream:
            h = hashlib.sha256()
            while piece := stream.read(1_000_003):
                h.update(piece)
        assert h.hexdigest() == want
    finally:
        store.close()


def test_recursive_copy_of_a_folder_through_swift(
    swift_env: SwiftServer, container: str, tmp_path: Path
) -> None:
    tree = {"a.bin": 10, "sub/b.bin": 2 * MiB + 1, "sub/deeper/c.bin": 0}
    src = tmp_path / "tree"
    want = {}
    for rel, size in tree.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        want[rel] = _write_random(src / rel, size)

    mover.copy(f"{src}/", f"swift://{container}/backup/", recursive=True, chunk_size=MiB)
    out = tmp_path / "out"
    out.mkdir()
    mover.copy(f"swift://{container}/backup/", f"{out}/", recursive=True, chunk_size=MiB)

    got = {str(p.relative_to(out)): _sha256(p) for p in out.rglob("*") if p.is_file()}
    assert got == want


def test_object_written_by_swift_cli_is_read_by_mover(
    swift_env: SwiftServer, container: str, tmp_path: Path
) -> None:
    """An SLO written by ``swift upload --use-slo`` (another writer's layout) reads back."""
    src = tmp_path / "cli-src.bin"
    want = _write_random(src, 3 * MiB + 7)
    result = _swift_cli(
        swift_env,
        "upload",
        container,
        str(src),
        "--object-name",
        "by-cli.bin",
        "--use-slo",
        "-S",
        str(1 * MiB),
    )
    assert result.returncode == 0, result.stderr

    back = tmp_path / "back.bin"
    mover.copy(f"swift://{container}/by-cli.bin", str(back), chunk_size=1 * MiB, streams=3)
    assert _sha256(back) == want


def test_parts_written_and_read_from_many_threads_at_once(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    """One store, one token, a Connection per thread: parts in parallel, in any order."""
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(12 * MiB + 3)
    view = memoryview(data)
    offsets = list(range(0, len(data), MiB))
    store = _provider(container)
    try:
        writer = store.open_writer("par.bin", len(data))
        state = writer.state()

        def put(i: int) -> Any:
            part = view[offsets[i] : offsets[i] + MiB]
            # Each thread re-opens the writer from its state, as another worker would.
            w = store.resume_writer("par.bin", state)
            return w.write_part(i, offsets[i], part, digest("md5", part))

        with ThreadPoolExecutor(6) as pool:
            receipts = list(pool.map(put, reversed(range(len(offsets)))))
        info = writer.commit(receipts, len(data))
        assert info.size == len(data)

        out = bytearray(len(data))

        def get(i: int) -> int:
            return store.read_into("par.bin", offsets[i], memoryview(out)[offsets[i] :][:MiB])

        with ThreadPoolExecutor(6) as pool:
            assert sum(pool.map(get, range(len(offsets)))) == len(data)
        assert bytes(out) == data
        assert len(store._connections) > 1
    finally:
        store.close()


def test_ranged_reads_across_segment_boundaries(
    swift_env: SwiftServer, container: str, tmp_path: Path
) -> None:
    src = tmp_path / "src.bin"
    data = os.urandom(3 * MiB + 11)
    src.write_bytes(data)
    mover.copy(str(src), f"swift://{container}/r.bin", chunk_size=1 * MiB)
    store = _provider(container)
    try:
        buf = bytearray(100)
        assert store.read_into("r.bin", MiB - 50, memoryview(buf)) == 100
        assert bytes(buf) == data[MiB - 50 : MiB + 50]
        tail = bytearray(100)
        assert store.read_into("r.bin", len(data) - 10, memoryview(tail)) == 10
        assert bytes(tail[:10]) == data[-10:]
        assert store.read_into("r.bin", len(data), memoryview(bytearray(10))) == 0
    finally:
        store.close()


def test_keys_with_spaces_unicode_and_percent(
    swift_env: SwiftServer, container: str, other_container: str, swift_connection: Connection
) -> None:
    """Keys are quoted once on the wire, in segment names, manifests and X-Copy-From alike."""
    key = "dir/ü ber 100%#x.bin"
    data = os.urandom(2 * MiB + 1)
    store = _provider(container)
    dst = _provider(other_container, {"max_copy_bytes": MiB, "copy_segment_bytes": MiB})
    try:
        writer = store.open_writer(key, len(data))
        view = memoryview(data)
        receipts = [
            writer.write_part(i, off, view[off : off + MiB], digest("md5", view[off : off + MiB]))
            for i, off in enumerate(range(0, len(data), MiB))
        ]
        assert writer.commit(receipts, len(data)).size == len(data)
        assert [i.key for i in store.list("dir/")] == [key]
        buf = bytearray(len(data))
        assert store.read_into(key, 0, memoryview(buf)) == len(data) and bytes(buf) == data
        dst.copy_server_side(store, key, key, len(data))  # ranged copies into segments
        _, body = swift_connection.get_object(other_container, key)
        assert body == data
        store.delete(key)
        assert _segments(swift_connection, container) == []
    finally:
        store.close()
        dst.close()


def test_one_part_objects_are_plain_up_to_plain_max_bytes(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    data = os.urandom(2 * MiB)
    md5 = digest("md5", data)
    for limit, slo in ((2 * MiB, False), (MiB, True)):
        store = _provider(container, {"plain_max_bytes": limit})
        try:
            writer = store.open_writer("one.bin", len(data))
            receipt = writer.write_part(0, 0, memoryview(data), md5)
            info = writer.commit([receipt], len(data))
        finally:
            store.close()
        headers = swift_connection.head_object(container, "one.bin")
        assert (headers.get("x-static-large-object") == "True") is slo
        assert (info.checksum == str(md5)) is not slo  # a plain object's ETag is its md5
        assert len(_segments(swift_connection, container)) == (1 if slo else 0)
        assert swift_connection.get_object(container, "one.bin")[1] == data


def test_small_object_over_an_slo_removes_the_slo_segments(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    _upload(tmp_path, container, "shrink.bin", 3 * MiB, 1 * MiB)
    assert len(_segments(swift_connection, container)) == 3
    want = _upload(tmp_path, container, "shrink.bin", 1000, 1 * MiB)
    assert _segments(swift_connection, container) == []
    _, body = swift_connection.get_object(container, "shrink.bin")
    assert hashlib.sha256(body).hexdigest() == want


def test_put_writes_a_small_object_in_one_request(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    """The proposed single-PUT path: whole or nothing, an SLO's old segments removed."""
    _upload(tmp_path, container, "p.bin", 2 * MiB + 1, 1 * MiB)
    store = _provider(container)
    try:
        data = os.urandom(1000)
        info = store.put("p.bin", memoryview(data), digest("sha256", data))
        assert info.checksum == str(digest("md5", data))
        assert _segments(swift_connection, container) == []
        with pytest.raises(VerificationFailed):
            store.put("p.bin", memoryview(b"other"), digest("md5", b"not these bytes"))
        assert swift_connection.get_object(container, "p.bin")[1] == data
        assert store.put("empty", memoryview(b""), digest("md5", b"")).size == 0
    finally:
        store.close()


def test_overwrite_replaces_object_and_removes_old_segments(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    _upload(tmp_path, container, "same.bin", 3 * MiB, 1 * MiB)
    first = set(_segments(swift_connection, container))
    assert len(first) == 3

    want = _upload(tmp_path, container, "same.bin", 2 * MiB + 1, 1 * MiB)

    second = set(_segments(swift_connection, container))
    assert len(second) == 3 and not (first & second)
    back = tmp_path / "back.bin"
    mover.copy(f"swift://{container}/same.bin", str(back))
    assert _sha256(back) == want


def test_delete_of_slo_removes_its_segments(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    _upload(tmp_path, container, "gone.bin", 2 * MiB + 1, 1 * MiB)
    assert len(_segments(swift_connection, container)) == 3
    store = _provider(container)
    try:
        store.delete("gone.bin")
        assert _segments(swift_connection, container) == []
        with pytest.raises(ObjectNotFound, match=f"swift://{container}/gone.bin"):
            store.stat("gone.bin")
        with pytest.raises(ObjectNotFound):
            store.delete("gone.bin")
    finally:
        store.close()


def test_list_pages_through_the_container(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    names = [f"many/{i:03d}" for i in range(25)]
    for name in names:
        swift_connection.put_object(container, name, name.encode())
    swift_connection.put_object(container, "other/x", b"x")
    store = _provider(container, {"listing_limit": 10})
    try:
        listed = list(store.list("many/"))
    finally:
        store.close()
    assert [i.key for i in listed] == names
    assert all(i.size == len(i.key) for i in listed)


# --- refusals, before anything moves ---------------------------------------------------------


def test_missing_container_is_refused_and_not_created(
    swift_env: SwiftServer, swift_connection: Connection, tmp_path: Path
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"some bytes")
    missing = "no-such-container-for-mover"
    with pytest.raises(NotWritable, match=f"swift://{missing}: no such container"):
        mover.copy(str(src), f"swift://{missing}/x.bin")
    names = [c["name"] for c in swift_connection.get_account(full_listing=True)[1]]
    assert missing not in names
    assert missing + "_segments" not in names


def test_missing_object_is_named(swift_env: SwiftServer, container: str, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match=f"swift://{container}/not/here.bin"):
        mover.copy(f"swift://{container}/not/here.bin", str(tmp_path / "x.bin"))
    assert not (tmp_path / "x.bin").exists()


def test_wrong_key_is_access_denied_without_the_key(
    swift_env: SwiftServer, container: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = "wrong-key-9f3a7c"
    monkeypatch.setenv("ST_KEY", wrong)
    resolve.clear_cache()
    with pytest.raises(AccessDenied) as denied:
        mover.copy(f"swift://{container}/x.bin", str(tmp_path / "x.bin"))
    text = str(denied.value)
    assert wrong not in text
    assert swift_env.key not in text
    assert swift_env.auth_url in text and swift_env.user in text


def test_unreachable_endpoint_is_retryable_and_named(
    swift_env: SwiftServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("ST_AUTH", f"http://127.0.0.1:{port}/auth/v1.0")
    store = _provider("whatever", {"timeout_s": 5})
    with pytest.raises(ChunkFailed) as failed:
        store.stat("x")
    assert failed.value.retryable
    assert f"127.0.0.1:{port}" in str(failed.value)
    assert "connection refused" in str(failed.value)


@contextlib.contextmanager
def _paused(server: SwiftServer, name: str) -> Iterator[None]:
    """Freeze one of the server's processes (SIGSTOP) and always thaw it (SIGCONT).

    A frozen process still accepts TCP connections (the kernel queues them) but never answers:
    a hung server, without breaking the session's server for later tests.
    """
    process = next(p for p in server._processes if p.name == name)
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def test_hung_proxy_times_out_retryably_naming_the_endpoint(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    swift_connection.put_object(container, "h.bin", b"hung")
    store = _provider(container, {"timeout_s": 1})
    try:
        store.stat("h.bin")  # authenticated before the proxy hangs
        with _paused(swift_env, "swift-proxy-server"), pytest.raises(ChunkFailed) as hung:
            store.read_into("h.bin", 0, memoryview(bytearray(4)))
        assert hung.value.retryable
        assert "timed out" in str(hung.value)
        assert f"127.0.0.1:{swift_env.port}" in str(hung.value)
        buf = bytearray(4)
        assert store.read_into("h.bin", 0, memoryview(buf)) == 4 and bytes(buf) == b"hung"
    finally:
        store.close()


@pytest.mark.slow
def test_server_error_is_retryable(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    """A hung object server makes the proxy answer 503 (after its 10 s node time-out)."""
    swift_connection.put_object(container, "e.bin", b"error")
    store = _provider(container)
    try:
        store.stat("e.bin")
        with _paused(swift_env, "swift-object-server"), pytest.raises(ChunkFailed) as failed:
            store.read_into("e.bin", 0, memoryview(bytearray(5)))
        assert failed.value.retryable
        assert "503" in str(failed.value)
        assert f"swift://{container}/e.bin" in str(failed.value)
    finally:
        store.close()


# --- failures during a transfer --------------------------------------------------------------


def test_failed_upload_leaves_no_segment_and_old_object_intact(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    swift_connection.put_object(container, "keep.bin", b"the old content")
    src = tmp_path / "shrinks.bin"
    _write_random(src, 8 * MiB)
    cut = threading.Event()

    def shrink_after_first_chunk(_: int) -> None:
        # The source shrinks under the copy: later chunks read short and the job fails.
        if not cut.is_set():
            cut.set()
            os.truncate(src, 1 * MiB)

    with pytest.raises(MoverError):
        mover.copy(
            str(src),
            f"swift://{container}/keep.bin",
            chunk_size=1 * MiB,
            streams=1,
            on_progress=shrink_after_first_chunk,
        )
    assert cut.is_set()
    assert _segments(swift_connection, container) == []
    _, body = swift_connection.get_object(container, "keep.bin")
    assert body == b"the old content"


def test_corrupt_part_is_refused_by_swift_and_abort_cleans(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    store = _provider(container)
    try:
        writer = store.open_writer("c.bin", 2 * MiB)
        good = memoryview(os.urandom(1 * MiB))
        receipt = writer.write_part(0, 0, good, digest("md5", good))
        assert receipt.digest == str(digest("md5", good))
        bad = memoryview(os.urandom(1 * MiB))
        with pytest.raises(VerificationFailed) as refused:
            writer.write_part(1, MiB, bad, digest("md5", b"what was read"))
        assert refused.value.retryable
        assert len(_segments(swift_connection, container)) == 1

        # A writer re-opened from its state (another worker) aborts the same upload.
        store.resume_writer("c.bin", writer.state()).abort()
        writer.abort()  # twice is fine
        assert _segments(swift_connection, container) == []
        with pytest.raises(ObjectNotFound):
            store.stat("c.bin")
    finally:
        store.close()


def test_expired_token_is_renewed_once_for_all_threads(
    swift_env: SwiftServer, container: str, swift_connection: Connection
) -> None:
    swift_connection.put_object(container, "t.bin", b"0123456789")
    store = _provider(container)
    try:
        store.stat("t.bin")
        # What an expired token looks like to tempauth: a Fernet token it cannot accept.
        store._token = "AUTH_ftkexpired"
        errors: list[BaseException] = []
        tokens: set[str | None] = set()

        def read() -> None:
            try:
                buf = bytearray(4)
                assert store.read_into("t.bin", 3, memoryview(buf)) == 4
                assert bytes(buf) == b"3456"
                tokens.add(store._token)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(tokens) == 1 and "AUTH_ftkexpired" not in tokens
    finally:
        store.close()


# --- server-side copy ------------------------------------------------------------------------


def test_copy_server_side_of_slo_makes_a_plain_object(
    swift_env: SwiftServer, container: str, swift_connection: Connection, tmp_path: Path
) -> None:
    want = _upload(tmp_path, container, "slo.bin", 3 * MiB + 5, 1 * MiB)
    other = container + "-copy"
    swift_connection.put_container(other)
    src = _provider(container)
    dst = _provider(other)
    try:
        assert dst.can_copy_from(src)
        info = dst.copy_server_side(src, "slo.bin", "copied.bin", 3 * MiB + 5)
        assert info.size == 3 * MiB + 5
        headers = swift_connection.head_object(other, "copied.bin")
        assert "x-static-large-object" not in headers
        # The copy shares nothing with the source: it reads whole after the source is gone.
        src.delete("slo.bin")
        assert _segments(swift_connection, container) == []
        back = tmp_path / "back.bin"
        mover.copy(f"swift://{other}/copied.bin", str(back))
        assert _sha256(back) == want
        assert info.checksum == f"md5:{hashlib.md5(back.read_bytes()).hexdigest()}"
    finally:
        src.close()
        dst.close()
        with contextlib.suppress(Exception):
            swift_connection.delete_object(other, "copied.bin")
            swift_connection.delete_container(other)


@pytest.fixture
def other_container(container: str, swift_connection: Connection) -> Iterator[str]:
    """A second container of the same account, emptied and deleted (with segments) after."""
    name = container + "-other"
    swift_connection.put_container(name)
    yield name
    for c in (name + "_segments", name):
        with contextlib.suppress(Exception):
            _, objects = swift_connection.get_container(c, full_listing=True)
            for obj in objects:
                swift_connection.delete_object(c, obj["name"])
            swift_connection.delete_container(c)


def test_copy_server_side_above_the_plain_object_limit_builds_an_slo(
    swift_env: SwiftServer,
    container: str,
    other_container: str,
    swift_connection: Connection,
    tmp_path: Path,
) -> None:
    """Above ``max_copy_bytes`` (Swift's 5 GiB, lowered here) the copy is made of ranged
    server-side copies into segments; the result shares nothing with the source."""
    size = 3 * MiB + 5
    want = _upload(tmp_path, container, "big.bin", size, 1 * MiB)
    src = _provider(container)
    dst = _provider(other_container, {"max_copy_bytes": MiB, "copy_segment_bytes": MiB})
    try:
        info = dst.copy_server_side(src, "big.bin", "big-copy.bin", size)
        assert info.size == size
        headers = swift_connection.head_object(other_container, "big-copy.bin")
        assert headers["x-static-large-object"] == "True"
        assert len(_segments(swift_connection, other_container)) == 4
        src.delete("big.bin")
        back = tmp_path / "back.bin"
        mover.copy(f"swift://{other_container}/big-copy.bin", str(back))
        assert _sha256(back) == want
        # A plain copy over it (below the limit now) removes the segments it no longer uses.
        _upload(tmp_path, container, "small.bin", 10, 1 * MiB)
        dst.copy_server_side(src, "small.bin", "big-copy.bin", 10)
        assert _segments(swift_connection, other_container) == []
    finally:
        src.close()
        dst.close()


def test_copy_between_containers_runs_server_side(
    swift_env: SwiftServer,
    container: str,
    other_container: str,
    swift_connection: Connection,
    tmp_path: Path,
) -> None:
    """End to end: the dispatcher picks the server-side strategy, no byte passes mover."""
    from mover.dispatcher import strategies

    if "server-side" not in strategies:
        from mover.strategies.motion.server_side import ServerSideCopyStrategy

        strategies.register("server-side", ServerSideCopyStrategy)
    want = _upload(tmp_path, container, "s.bin", 2 * MiB + 3, 1 * MiB)

    job = mover.copy(f"swift://{container}/s.bin", f"swift://{other_container}/d.bin")

    item = job.items[0]
    assert item.strategy == "server-side"
    assert item.bytes_through == 0
    back = tmp_path / "back.bin"
    mover.copy(f"swift://{other_container}/d.bin", str(back))
    assert _sha256(back) == want


def test_can_copy_from_only_within_one_account(
    swift_env: SwiftServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = _provider("a")
    same_account = _provider("c")
    monkeypatch.setenv("ST_USER", "other:user")
    elsewhere = _provider("b")
    assert here.can_copy_from(same_account)
    assert not here.can_copy_from(elsewhere)


@pytest.mark.s3
def test_swift_to_s3_and_back_streams_through_mover(
    swift_env: SwiftServer,
    container: str,
    swift_connection: Connection,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Across two kinds of store, the generic streaming strategy: Swift's SLO to S3's
    multipart upload and back into a new SLO, bytes unchanged."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    resolve.clear_cache()
    size = 12 * MiB + 1
    want = _upload(tmp_path, container, "x.bin", size, 5 * MiB)

    there = mover.copy(f"swift://{container}/x.bin", f"s3://{s3_bucket}/x.bin", chunk_size=5 * MiB)
    back = mover.copy(f"s3://{s3_bucket}/x.bin", f"swift://{container}/y.bin", chunk_size=5 * MiB)

    assert there.items[0].strategy == back.items[0].strategy == "streaming"
    headers = swift_connection.head_object(container, "y.bin")
    assert headers["x-static-large-object"] == "True"
    out = tmp_path / "out.bin"
    result = _swift_cli(swift_env, "download", container, "y.bin", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert _sha256(out) == want


# --- a configured store -----------------------------------------------------------------------


def test_configured_store_reads_its_secret_from_credentials_env(
    swift_env: SwiftServer,
    container: str,
    swift_connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("ST_AUTH", "ST_USER", "ST_KEY"):
        monkeypatch.delenv(name)
    config = tmp_path / "mover.toml"
    config.write_text(
        f'[stores.swift-east]\nurl = "swift://{container}/backups/"\n'
        f'auth_url = "{swift_env.auth_url}"\nuser = "{swift_env.user}"\n'
        'auth_version = "1.0"\ncredentials_env = "SWIFT_EAST"\n'
    )
    monkeypatch.setenv("MOVER_CONFIG", str(config))
    monkeypatch.setenv("SWIFT_EAST_KEY", swift_env.key)
    src = tmp_path / "src.bin"
    src.write_bytes(b"configured store")

    mover.copy(str(src), "store:swift-east/a.bin")

    _, body = swift_connection.get_object(container, "backups/a.bin")
    assert body == b"configured store"


# --- where credentials come from (no server needed) ---------------------------------------------


def test_credentials_follow_the_swift_cli() -> None:
    v1 = resolve_credentials({}, {"ST_AUTH": "http://a/auth/v1.0", "ST_USER": "t:u", "ST_KEY": "k"})
    assert (v1.auth_url, v1.user, v1.key, v1.auth_version) == (
        "http://a/auth/v1.0",
        "t:u",
        "k",
        "1.0",
    )

    keystone = {
        "OS_AUTH_URL": "http://ks/v3",
        "OS_USERNAME": "alice",
        "OS_PASSWORD": "pw",
        "OS_PROJECT_NAME": "backup",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "east",
    }
    v3 = resolve_credentials({}, keystone)
    assert v3.auth_version == "3"
    assert v3.os_options == {
        "project_name": "backup",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": "east",
    }
    no_domain = {k: v for k, v in keystone.items() if "DOMAIN" not in k}
    assert resolve_credentials({}, no_domain).auth_version == "2.0"
    assert (
        resolve_credentials({}, {**no_domain, "OS_IDENTITY_API_VERSION": "3"}).auth_version == "3"
    )


def test_store_options_name_the_secret_never_hold_it() -> None:
    options = {"auth_url": "http://a/auth/v1.0", "user": "t:u", "credentials_env": "EAST"}
    creds = resolve_credentials(options, {"EAST_PASSWORD": "s3cr3t", "ST_KEY": "not this"})
    assert creds.key == "s3cr3t"
    assert "s3cr3t" not in repr(creds)
    with pytest.raises(ConfigError, match="EAST_KEY nor EAST_PASSWORD") as missing:
        resolve_credentials(options, {})
    assert "s3cr3t" not in str(missing.value)
    with pytest.raises(ConfigError, match="no Swift credentials"):
        resolve_credentials({}, {})
