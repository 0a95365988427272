"""The smart_open fallback provider, offline.

No GCS, Azure, SFTP or HDFS server runs here, so two things are tested:

* the error for a scheme whose smart_open extra (or the Hadoop command) is missing: a
  PluginLoadError with the ``pip install`` line, raised when the store is opened, before any
  byte moves;
* the provider itself, end to end through the registry and ``mover.copy``, under a scheme
  registered at run time (``smfile``) whose transport is smart_open's own ``file`` transport.
  smart_open's ``file://`` is not mover's ``file`` scheme (the posix provider owns that), so a
  two-line subclass points the alias at that transport: everything else (stat by opening,
  reading as one stream, the in-order chunk writer, commit on close, abort) is the code that
  gs:// or sftp:// run.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import smart_open.transport

import mover
from mover.digests import digest
from mover.errors import (
    ChunkFailed,
    ConfigError,
    ObjectNotFound,
    PluginLoadError,
    VerificationFailed,
)
from mover.jobs import DONE
from mover.location import parse
from mover.provider import MiB, PartReceipt
from mover.providers.smartopen import SmartOpenProvider
from mover.resolve import clear_cache, open_location, providers

ALIAS = "smfile"


class LocalSmartOpen(SmartOpenProvider):
    """smart_open's ``file`` transport under the alias scheme: ``smfile:///abs/path``."""

    transport_scheme = "file"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MOVER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MOVER_CONFIG", str(tmp_path / "none.toml"))
    providers.register(ALIAS, LocalSmartOpen, clobber=True)
    clear_cache()
    yield
    clear_cache()
    providers.unregister(ALIAS)


def alias_url(path: Path) -> str:
    return f"{ALIAS}://{path}"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".mover-" in p.name)


# -- missing extras ---------------------------------------------------------------------------


def _missing(scheme: str) -> bool:
    try:
        smart_open.transport.get_transport(scheme)
    except ImportError:
        return True
    return False


@pytest.mark.parametrize(("scheme", "extra"), [("gs", "gcs"), ("azure", "azure"), ("sftp", "ssh")])
def test_missing_extra_names_the_pip_line(scheme: str, extra: str, tmp_path: Path) -> None:
    if not _missing(scheme):
        pytest.skip(f"smart_open[{extra}] is installed here")
    registered = scheme not in providers
    if registered:  # until the entry points are installed
        providers.register(scheme, SmartOpenProvider)
    try:
        with pytest.raises(PluginLoadError) as err:
            open_location(f"{scheme}://bucket/dir/x.raw")
        assert f"pip install 'smart_open[{extra}]'" in str(err.value)
        # Through a copy: refused in the caller, before anything is written.
        src = tmp_path / "src"
        src.write_bytes(b"x")
        with pytest.raises(PluginLoadError):
            mover.copy(str(src), f"{scheme}://bucket/x.raw")
        with pytest.raises(PluginLoadError):
            mover.copy(f"{scheme}://bucket/x.raw", str(tmp_path / "dst"))
        assert not (tmp_path / "dst").exists()
    finally:
        if registered:
            providers.unregister(scheme)


def test_hdfs_without_the_hadoop_command() -> None:
    if shutil.which("hdfs"):
        pytest.skip("the hdfs command is installed here")
    with pytest.raises(PluginLoadError, match="'hdfs' command"):
        SmartOpenProvider.open(parse("hdfs://namenode:8020/backups/x.raw"))


def test_scheme_smart_open_does_not_know() -> None:
    class Nowhere(SmartOpenProvider):
        transport_scheme = "nowhere"

    with pytest.raises(PluginLoadError, match="no transport for nowhere://"):
        Nowhere.open(parse("nowhere://x/y"))


# -- round trips through the registry ---------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5 * MiB + 1])
def test_round_trip(tmp_path: Path, size: int) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    out = tmp_path / "out"
    out.mkdir()

    # The writer takes parts in order only (ordered_parts): the sequential strategy writes
    # it, even from a ranged source with several chunks.
    job = mover.copy(str(src), alias_url(out / "a.bin"), streams=4, chunk_size=1 * MiB)
    assert job.state == DONE
    assert job.items[0].strategy == "single-stream"
    assert sha256_of(out / "a.bin") == sha256_of(src)

    # As a source it has no ranges: one stream.
    job = mover.copy(alias_url(out / "a.bin"), str(out / "b.bin"), chunk_size=1 * MiB)
    assert job.state == DONE
    assert job.items[0].strategy == "single-stream"
    assert sha256_of(out / "b.bin") == sha256_of(src)
    assert leftovers(out) == []


def test_stat_list_and_missing(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"12345")
    store, loc = open_location(alias_url(tmp_path / "x"))
    assert store.stat(loc.full_key).size == 5
    assert [i.size for i in store.list(loc.full_key)] == [5]
    assert store.capabilities.ranged_read is False
    with pytest.raises(ObjectNotFound, match="no such object"):
        store.stat(loc.full_key + "-missing")
    with pytest.raises(ObjectNotFound):
        mover.copy(alias_url(tmp_path / "nope"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


def test_decompression_on_request(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    (tmp_path / "x.gz").write_bytes(gzip.compress(data))
    loc = parse(alias_url(tmp_path / "x.gz"))
    plain = LocalSmartOpen.open(loc)
    assert plain.stat(loc.full_key).size == len(gzip.compress(data))
    unzip = LocalSmartOpen.open(loc, {"compression": "infer_from_extension"})
    assert unzip.stat(loc.full_key).size is None  # unknown until the end
    with unzip.open_read(loc.full_key) as f:
        assert f.read() == data


# -- the writer -------------------------------------------------------------------------------


def _writer(tmp_path: Path, name: str, **options: object):  # type: ignore[no-untyped-def]
    loc = parse(alias_url(tmp_path / name))
    store = LocalSmartOpen.open(loc, dict(options))
    return store, store.open_writer(loc.full_key, None)


def test_parts_out_of_order_wait_for_their_turn(tmp_path: Path) -> None:
    store, w = _writer(tmp_path, "o.bin")
    key = parse(alias_url(tmp_path / "o.bin")).full_key
    parts = [b"aaaa", b"bbbb", b"cc"]
    receipts: list[PartReceipt] = []
    errors: list[BaseException] = []

    def write(i: int) -> None:
        # Each thread re-opens the writer from its state, as a chunk does.
        writer = store.resume_writer(key, w.state())
        try:
            data = memoryview(parts[i])
            receipts.append(writer.write_part(i, 4 * i, data, digest("xxh3_128", data)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in (2, 1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert not (tmp_path / "o.bin").exists() or (tmp_path / "o.bin").stat().st_size <= 10
    w.commit(sorted(receipts, key=lambda r: r.part), 10)
    assert (tmp_path / "o.bin").read_bytes() == b"aaaabbbbcc"


def test_a_part_whose_predecessor_never_comes_gives_up(tmp_path: Path) -> None:
    _store, w = _writer(tmp_path, "g.bin", order_wait_s=0.2)
    with pytest.raises(ChunkFailed, match="in order only"):
        w.write_part(1, 4, memoryview(b"bbbb"), digest("xxh3_128", b"bbbb"))
    w.abort()
    assert not (tmp_path / "g.bin").exists()


def test_abort_removes_the_partial_object_and_cannot_resume(tmp_path: Path) -> None:
    store, w = _writer(tmp_path, "p.bin")
    w.write_part(0, 0, memoryview(b"aaaa"), digest("xxh3_128", b"aaaa"))
    assert (tmp_path / "p.bin").exists()  # the file transport writes in place
    state = w.state()
    w.abort()
    w.abort()  # safe twice
    assert not (tmp_path / "p.bin").exists()
    again = store.resume_writer("", state)
    with pytest.raises(ChunkFailed, match="cannot be resumed"):
        again.write_part(1, 4, memoryview(b"bbbb"), digest("xxh3_128", b"bbbb"))


def test_corrupt_part_is_refused(tmp_path: Path) -> None:
    _store, w = _writer(tmp_path, "c.bin")
    with pytest.raises(VerificationFailed):
        w.write_part(0, 0, memoryview(b"aaaa"), digest("xxh3_128", b"aaab"))
    w.abort()


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    loc = parse("smfile:///tmp/x")
    monkeypatch.setenv("BOX_PASSWORD", "pw-from-env")
    store = LocalSmartOpen.open(
        loc,
        {
            "transport_params": {
                "user": "backup",
                "password_env": "BOX_PASSWORD",
                "connect_kwargs": {"key_filename": "/keys/id"},
            }
        },
    )
    assert store.transport_params == {
        "user": "backup",
        "password": "pw-from-env",
        "connect_kwargs": {"key_filename": "/keys/id"},
    }
    with pytest.raises(ConfigError, match="password_env"):
        LocalSmartOpen.open(loc, {"transport_params": {"password": "literal"}})
    with pytest.raises(ConfigError, match="passphrase"):
        LocalSmartOpen.open(loc, {"transport_params": {"connect_kwargs": {"passphrase": "x"}}})
    with pytest.raises(ConfigError, match="NOPE_UNSET"):
        LocalSmartOpen.open(loc, {"transport_params": {"password_env": "NOPE_UNSET"}})
