"""``mover sync`` and ``mover ls`` on files, S3 and Swift: a second sync moves nothing, a changed
object moves once, ``--delete`` removes the extra, filters are respected. What the destination
holds is read back with the server's own client (boto3, swiftclient) or the file system.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mover
from mover.resolve import clear_cache
from tests.store_envs import use_s3, use_swift

pytestmark = [pytest.mark.integration]

MOVER = str(Path(sys.executable).with_name("mover"))


@dataclass
class Side:
    """A folder on one kind of store, with independent put, get and listing."""

    url: str
    put: Callable[[str, bytes], None]
    get: Callable[[str], bytes | None]
    keys: Callable[[], set[str]]


def _file_side(folder: Path) -> Side:
    def put(rel: str, data: bytes) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)

    def get(rel: str) -> bytes | None:
        return (folder / rel).read_bytes() if (folder / rel).is_file() else None

    def keys() -> set[str]:
        return {
            str((Path(d) / n).relative_to(folder)) for d, _, names in os.walk(folder) for n in names
        }

    folder.mkdir(parents=True, exist_ok=True)
    return Side(f"{folder}/", put, get, keys)


def _connect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, kind: str) -> Any:
    """The session server of ``kind`` in the environment; its client and a fresh bucket or
    container."""
    fixtures = {"s3": ("s3_server", "s3_client", "s3_bucket", use_s3)}
    fixtures["swift"] = ("swift_server", "swift_connection", "swift_container", use_swift)
    server, client, where, use = fixtures[kind]
    use(monkeypatch, request.getfixturevalue(server))
    return request.getfixturevalue(client), request.getfixturevalue(where)


def _s3_side(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, name: str) -> Side:
    client, bucket = _connect(request, monkeypatch, "s3")
    prefix = f"{name}/"

    def get(rel: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def keys() -> set[str]:
        found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"][len(prefix) :] for o in found}

    return Side(
        f"s3://{bucket}/{prefix}",
        lambda rel, data: client.put_object(Bucket=bucket, Key=prefix + rel, Body=data),
        get,
        keys,
    )


def _swift_side(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, name: str) -> Side:
    from swiftclient.exceptions import ClientException

    conn, container = _connect(request, monkeypatch, "swift")
    prefix = f"{name}/"

    def get(rel: str) -> bytes | None:
        try:
            return conn.get_object(container, prefix + rel)[1]
        except ClientException as exc:
            if exc.http_status == 404:
                return None
            raise

    def keys() -> set[str]:
        _, found = conn.get_container(container, prefix=prefix, full_listing=True)
        return {o["name"][len(prefix) :] for o in found}

    return Side(
        f"swift://{container}/{prefix}",
        lambda rel, data: conn.put_object(container, prefix + rel, data),
        get,
        keys,
    )


def _side(kind: str, name: str, request: Any, monkeypatch: Any, tmp_path: Path) -> Side:
    if kind == "file":
        return _file_side(tmp_path / name)
    if kind == "s3":
        return _s3_side(request, monkeypatch, name)
    return _swift_side(request, monkeypatch, name)


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MOVER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MOVER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("MOVER_BROKER_URL", raising=False)
    clear_cache()
    yield
    clear_cache()


@pytest.mark.parametrize(
    ("src_kind", "dst_kind"),
    [("file", "file"), ("file", "s3"), ("s3", "file"), ("file", "swift"), ("swift", "swift")],
)
def test_sync(
    src_kind: str,
    dst_kind: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    src = _side(src_kind, "src", request, monkeypatch, tmp_path)
    dst = _side(dst_kind, "dst", request, monkeypatch, tmp_path)
    files = {"a.txt": b"first", "sub/b.bin": os.urandom(70_000), "skip.log": b"log"}
    for rel, data in files.items():
        src.put(rel, data)

    first = mover.sync(src.url, dst.url, exclude="*.log")
    assert sorted(a.path for a in first.copies) == ["a.txt", "sub/b.bin"]
    assert first.job is not None and first.job.state == "done"
    assert dst.keys() == {"a.txt", "sub/b.bin"}
    assert all(dst.get(rel) == files[rel] for rel in ("a.txt", "sub/b.bin"))

    again = mover.sync(src.url, dst.url, exclude="*.log")
    assert again.actions == [] and again.job is None and again.unchanged == 2

    src.put("a.txt", b"changed, longer")
    changed = mover.sync(src.url, dst.url, exclude="*.log")
    assert [(a.path, a.reason) for a in changed.copies] == [("a.txt", "size")]
    assert dst.get("a.txt") == b"changed, longer"
    assert mover.sync(src.url, dst.url, exclude="*.log").actions == []

    dst.put("extra.bin", b"extra")
    dst.put("keep.log", b"excluded at the destination: never deleted")
    planned = mover.sync(src.url, dst.url, exclude="*.log", delete=True, dry_run=True)
    assert [(a.verb, a.path) for a in planned.actions] == [("delete", "extra.bin")]
    assert dst.get("extra.bin") == b"extra"  # a dry run changes nothing
    done = mover.sync(src.url, dst.url, exclude="*.log", delete=True)
    assert done.deleted == ["extra.bin"]
    assert dst.keys() == {"a.txt", "sub/b.bin", "keep.log"}

    listed = {e.path: e.size for e in mover.ls(dst.url, recursive=True, include="*.bin")}
    assert listed == {"sub/b.bin": 70_000}
    top = {e.path: (e.size, e.folder) for e in mover.ls(dst.url)}
    assert top == {"a.txt": (15, False), "keep.log": (42, False), "sub/": (70_000, True)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MOVER, *args], capture_output=True, text=True, timeout=60)


def test_cli_sync_ls_and_filters(tmp_path: Path) -> None:
    src = _file_side(tmp_path / "src")
    for rel in ("a.jpg", "b.png", "deep/c.jpg", "deep/d.txt"):
        src.put(rel, rel.encode())
    dst = tmp_path / "dst"

    dry = _cli("sync", "--dry-run", "--include", "*.jpg", src.url, str(dst))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "copy a.jpg: missing (5 bytes)",
        "copy deep/c.jpg: missing (10 bytes)",
    ]
    assert not dst.exists()

    run = _cli("sync", "--json", "--include", "*.jpg", src.url, str(dst))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["copied"] == 2
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == [
        "a.jpg",
        "deep/c.jpg",
    ]
    second = _cli("sync", "--json", "--include", "*.jpg", src.url, str(dst))
    assert json.loads(second.stdout)["copied"] == 0

    ls = _cli("ls", "-r", "--json", "--exclude", "deep/**", src.url)
    assert [(e["path"], e["size"]) for e in json.loads(ls.stdout)] == [("a.jpg", 5), ("b.png", 5)]
    plain = _cli("ls", src.url)
    assert plain.stdout.split() == ["5", "a.jpg", "5", "b.png", "20", "deep/"]

    copied = tmp_path / "copied"
    run = _cli("copy", "-r", "-q", "--exclude", "*.jpg", src.url, str(copied))
    assert run.returncode == 0, run.stderr
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*") if p.is_file()) == [
        "b.png",
        "deep/d.txt",
    ]
    bad = _cli("copy", "--include", "*.jpg", src.url + "a.jpg", str(copied))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--recursive" in bad.stderr
    inside = _cli("sync", "--delete", src.url, src.url + "deep/")
    assert inside.returncode == 2 and "overlap" in inside.stderr, inside.stderr
    assert (tmp_path / "src" / "deep" / "c.jpg").read_bytes() == b"deep/c.jpg"


def test_failed_copy_deletes_nothing(tmp_path: Path) -> None:
    """The extras are deleted only after the copy job is done: a job that fails (its source
    vanished between the plan and the run) leaves the destination's extras in place."""
    from mover import syncing
    from mover.errors import MoverError

    src, dst = _file_side(tmp_path / "src"), _file_side(tmp_path / "dst")
    src.put("a.bin", b"a" * 1000)
    dst.put("extra.bin", b"extra")
    planned = syncing.plan(src.url, dst.url, delete=True)
    assert [(a.verb, a.path) for a in planned.result.actions] == [
        ("copy", "a.bin"),
        ("delete", "extra.bin"),
    ]
    (tmp_path / "src" / "a.bin").unlink()
    assert planned.job is not None
    job = syncing.run_job(planned.job)
    assert job.state != "done"
    with pytest.raises(MoverError, match="nothing deleted"):
        syncing.finish(planned, job)
    assert dst.keys() == {"extra.bin"}
