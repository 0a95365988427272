"""Every kind of local source and sink: block devices, pipes, sockets, character devices,
``/proc`` files and sparse files, to files, S3 and Swift, and snapshots of volumes.

The devices are real loop devices (``losetup``), made by each test and detached at the end;
pipes are real FIFOs fed by a thread. What mover wrote is read back by something that is not
mover: ``cmp``/hashlib on files and devices, boto3 for S3, swiftclient for Swift. Loop devices
need root and ``losetup``: without them the device tests skip with the reason on a developer's
machine, and fail in CI (``CI`` set), where a missing tool is a broken set-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mover
from mover import catalogue as cat
from mover.check import compare
from mover.errors import KeyEscapesRoot, NotEnoughSpace, UsageError
from tests.independent import allocated_bytes, file_sha256

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
MOVER = str(Path(sys.executable).parent / "mover")


# --- fixtures -------------------------------------------------------------------------------


def _need(ok: bool, reason: str) -> None:
    """Skip locally, fail in CI (``CI`` set, as tests/fixtures_servers.py decides)."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing tool fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture
def loop() -> Iterator[Callable[[Path], str]]:
    """Attach image files as loop devices (``losetup -f --show``); detached at the end,
    always."""
    _need(os.geteuid() == 0, "loop devices need root")
    _need(shutil.which("losetup") is not None, "losetup is not installed")
    attached: list[str] = []

    def attach(image: Path) -> str:
        for _ in range(5):  # another process may take the free device first
            run = subprocess.run(
                ["losetup", "-f", "--show", str(image)], capture_output=True, text=True
            )
            if run.returncode == 0:
                attached.append(run.stdout.strip())
                return attached[-1]
            time.sleep(0.2)
        pytest.fail(f"losetup -f --show {image}: {run.stderr.strip()}")

    yield attach
    for device in attached:
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.fixture
def s3_env(s3_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The S3 server's endpoint and credentials in the environment, as boto3 reads them."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server


@pytest.fixture
def swift_env(swift_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", swift_server.user)
    monkeypatch.setenv("ST_KEY", swift_server.key)
    return swift_server


def volume_image(path: Path, size: int, zeros: list[tuple[int, int]] = ()) -> bytes:
    """A random image of ``size`` bytes with ``zeros`` ranges (offset, length) left as holes
    (never written); returns its bytes."""
    data = bytearray(os.urandom(size))
    for offset, length in zeros:
        data[offset : offset + length] = bytes(length)
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        for offset, length in [*sorted(zeros), (size, 0)]:
            f.seek(pos)
            f.write(data[pos:offset])
            pos = offset + length
    return bytes(data)


def feed_fifo(path: Path, data: bytes) -> threading.Thread:
    """A thread that writes ``data`` into the FIFO ``path`` (in uneven pieces, as a producer
    would) and closes it."""

    def run() -> None:
        with open(path, "wb") as f:
            for start in range(0, len(data), 777_777):
                f.write(data[start : start + 777_777])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def cli(*args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MOVER, *args], stdout=stdout, stderr=subprocess.PIPE, text=True)


# --- block devices --------------------------------------------------------------------------


def test_block_device_to_file(loop: Callable[[Path], str], tmp_path: Path) -> None:
    image = tmp_path / "vol.img"
    data = volume_image(image, 20 * MiB + 4096, zeros=[(5 * MiB, 6 * MiB)])
    device = loop(image)
    out = tmp_path / "copy.img"
    run = cli("copy", "--json", device, str(out))
    assert run.returncode == 0, run.stderr
    assert subprocess.run(["cmp", device, str(out)]).returncode == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    summary = json.loads(run.stdout)
    assert summary["size"] == summary["bytes_done"] == len(data)
    assert summary["strategies"] == ["streaming"]  # ranged parallel reads, not the kernel copy
    assert any("read live" in n and "snapshot" in n for n in summary["notes"])
    # The 6 MiB read as zeros from the device were not written: the copy is sparse there.
    assert allocated_bytes(out) <= len(data) - 5 * MiB
    # mover check reads the device's bytes, and sees a change.
    assert compare(device, str(out)).matched == 1
    with open(out, "r+b") as f:
        f.seek(7 * MiB)
        f.write(b"x")
    assert compare(device, str(out)).differences == [f"content differs: file://{out}"]


def test_links_to_a_device(loop: Callable[[Path], str], tmp_path: Path) -> None:
    """A link is followed (as /dev/vg0/vol-1 -> ../dm-3), but not out of a store's root."""
    image = tmp_path / "vol.img"
    volume_image(image, 3 * MiB)
    device = loop(image)
    link = tmp_path / "vol-link"
    link.symlink_to(device)
    job = mover.copy(str(link), str(tmp_path / "via-link.img"))
    assert job.state == "done" and job.size == 3 * MiB
    assert (tmp_path / "via-link.img").read_bytes() == image.read_bytes()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "vol").symlink_to(device)
    cat.add_store("imgs", f"file://{tmp_path}/root/")
    with pytest.raises(KeyEscapesRoot):
        mover.copy("store:imgs/vol", str(tmp_path / "escaped.img"))
    assert not (tmp_path / "escaped.img").exists()


@pytest.mark.s3
def test_block_device_to_s3(loop: Callable[[Path], str], tmp_path: Path, s3_env: Any) -> None:
    import boto3

    image = tmp_path / "vol.img"
    data = volume_image(image, 12 * MiB, zeros=[(0, 5 * MiB)])
    device = loop(image)
    s3 = boto3.client("s3", **s3_env.client_kwargs())
    bucket = f"dev-{os.getpid()}-{time.time_ns() % 10**9}"
    s3.create_bucket(Bucket=bucket)
    job = mover.copy(device, f"s3://{bucket}/vol.img", chunk_size=5 * MiB)
    assert job.state == "done" and job.size == len(data)
    body = s3.get_object(Bucket=bucket, Key="vol.img")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == file_sha256(device)
    assert compare(device, f"s3://{bucket}/vol.img").matched == 1


@pytest.mark.swift
def test_block_device_to_swift(
    loop: Callable[[Path], str], tmp_path: Path, swift_env: Any, swift_connection: Any
) -> None:
    image = tmp_path / "vol.img"
    data = volume_image(image, 11 * MiB + 512, zeros=[(6 * MiB, MiB)])
    device = loop(image)
    container = f"dev-{os.getpid()}-{time.time_ns() % 10**9}"
    swift_connection.put_container(container)
    job = mover.copy(device, f"swift://{container}/vol.img", chunk_size=4 * MiB)
    assert job.state == "done" and job.size == len(data)
    _, body = swift_connection.get_object(container, "vol.img")
    assert hashlib.sha256(body).hexdigest() == file_sha256(device)


def test_device_destination_needs_the_flag(loop: Callable[[Path], str], tmp_path: Path) -> None:
    target_image = tmp_path / "target.img"
    volume_image(target_image, 8 * MiB)
    device = loop(target_image)
    before = file_sha256(device)
    source = tmp_path / "new.img"
    new = volume_image(source, 6 * MiB + 1000, zeros=[(MiB, 2 * MiB)])

    refused = cli("copy", str(source), device)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and device in lines[0] and "--to-device" in lines[0]
    assert file_sha256(device) == before and stat.S_ISBLK(os.stat(device).st_mode)
    with pytest.raises(UsageError, match="block device"):
        mover.copy(str(source), device)
    with pytest.raises(UsageError, match="not a block device"):
        mover.copy(str(source), str(tmp_path / "plain.img"), to_device=True)
    too_big = tmp_path / "big.img"
    volume_image(too_big, 9 * MiB)
    with pytest.raises(NotEnoughSpace, match="restore to a volume at least that large"):
        mover.copy(str(too_big), device, to_device=True)
    assert file_sha256(device) == before

    run = cli("copy", "--to-device", str(source), device)
    assert run.returncode == 0, run.stderr
    with open(device, "rb") as f:
        written = f.read()
    # In place: the source's bytes (its zeros written over old data), the rest untouched.
    assert written[: len(new)] == new
    assert written[len(new) :] == target_image.read_bytes()[len(new) :]
    assert stat.S_ISBLK(os.stat(device).st_mode)
    assert not list(Path("/dev").glob(f".{Path(device).name}*"))  # no temporary file


def test_failed_write_to_a_device_says_it_is_partly_overwritten(
    loop: Callable[[Path], str], tmp_path: Path
) -> None:
    image = tmp_path / "small.img"
    volume_image(image, 4 * MiB)
    device = loop(image)
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    feeder = feed_fifo(fifo, os.urandom(6 * MiB))  # more than the device holds
    job = mover.copy(str(fifo), device, to_device=True, raise_on_failure=False)
    feeder.join(5)
    assert job.state == "failed"
    assert device in job.error and "partly overwritten" in job.error, job.error


# --- pipes, sockets, character devices, /proc -----------------------------------------------


def test_pipe_to_file_records_the_size_read(tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    data = os.urandom(13 * MiB + 7)
    feeder = feed_fifo(fifo, data)
    out = tmp_path / "out.bin"
    run = cli("copy", "--json", str(fifo), str(out))
    feeder.join(5)
    assert run.returncode == 0, run.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    summary = json.loads(run.stdout)
    assert summary["size"] == summary["bytes_done"] == len(data)
    assert summary["strategies"] == ["single-stream"]
    status = json.loads(cli("status", "--json", summary["id"]).stdout)
    assert status["items"][0]["size"] == len(data)


@pytest.mark.s3
def test_pipe_to_s3(tmp_path: Path, s3_env: Any) -> None:
    import boto3

    s3 = boto3.client("s3", **s3_env.client_kwargs())
    bucket = f"pipe-{os.getpid()}-{time.time_ns() % 10**9}"
    s3.create_bucket(Bucket=bucket)
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    data = os.urandom(11 * MiB + 3)
    feeder = feed_fifo(fifo, data)
    job = mover.copy(str(fifo), f"s3://{bucket}/from-pipe", chunk_size=5 * MiB)
    feeder.join(5)
    assert job.state == "done" and job.size == len(data)
    body = s3.get_object(Bucket=bucket, Key="from-pipe")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


def test_pipe_as_destination_is_refused_with_the_way_to_do_it(tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    source = tmp_path / "src"
    source.write_bytes(os.urandom(MiB))
    run = cli("copy", str(source), str(fifo))
    assert run.returncode == 2
    assert "named pipe" in run.stderr and f"mover copy SRC - > {fifo}" in run.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # not replaced by a file
    # The way it names works: standard output into the pipe.
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(fifo.read_bytes()), daemon=True)
    reader.start()
    with open(fifo, "wb") as pipe:
        assert cli("copy", "-q", str(source), "-", stdout=pipe).returncode == 0
    reader.join(5)
    assert bytes(received) == source.read_bytes()


def test_unix_socket_source(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    data = os.urandom(3 * MiB + 5)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        job = mover.copy(str(path), str(tmp_path / "out"))
    finally:
        thread.join(5)
        server.close()
    assert job.state == "done" and job.size == len(data)
    assert (tmp_path / "out").read_bytes() == data


def test_proc_file_and_character_device(tmp_path: Path) -> None:
    # /proc/self/mounts says 0 bytes and yields some: a stream, its size what was read.
    assert os.stat("/proc/self/mounts").st_size == 0
    job = mover.copy("/proc/self/mounts", str(tmp_path / "mounts"))
    got = (tmp_path / "mounts").read_bytes()
    assert job.state == "done" and len(got) > 0 and job.size == len(got)
    assert b" / " in got  # a real mount table, not an empty file
    # /dev/null, a character device: a stream that ends at once.
    job = mover.copy("/dev/null", str(tmp_path / "null"))
    assert job.state == "done" and job.size == 0 and (tmp_path / "null").read_bytes() == b""


def test_fleet_refuses_what_only_this_host_can_read(tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    run = cli("copy", "--executor", "celery", str(fifo), str(tmp_path / "out"))
    assert run.returncode == 2
    assert "fleet's workers cannot reach it" in run.stderr
    assert "--executor embedded" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# --- sparse files ---------------------------------------------------------------------------


def _sparse(path: Path, size: int, extents: list[tuple[int, int]]) -> None:
    """A sparse file of ``size`` bytes with random data at ``extents``, holes elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in extents:
            f.seek(offset)
            f.write(os.urandom(length))


def _proc_rchar() -> int:
    """Bytes this process has read through read-like system calls (``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_sparse_copy_stays_sparse_and_reads_no_hole(tmp_path: Path) -> None:
    source = tmp_path / "thin.img"
    size = 2048 * MiB
    _sparse(source, size, [(3 * MiB, 2 * MiB), (1000 * MiB + 5, 3 * MiB), (size - MiB, MiB)])
    with open(source, "r+b") as f:  # data that is zeros: allocated in the source, not copied
        f.seek(1500 * MiB)
        f.write(bytes(4 * MiB))
    assert allocated_bytes(source) >= 10 * MiB
    out = tmp_path / "copy.img"
    before = _proc_rchar()
    job = mover.copy(str(source), str(out))
    read = _proc_rchar() - before
    assert job.state == "done" and job.summary()["strategies"] == ["local"]
    assert subprocess.run(["cmp", str(source), str(out)]).returncode == 0
    # Only the data extents were read (twice: the source, and the copy read back), and the
    # zeros among them were not written.
    assert read < 64 * MiB, read
    assert allocated_bytes(out) <= 7 * MiB
    assert compare(str(source), str(out)).matched == 1


@pytest.mark.s3
def test_sparse_file_to_s3_sends_the_zeros(tmp_path: Path, s3_env: Any) -> None:
    import boto3

    s3 = boto3.client("s3", **s3_env.client_kwargs())
    bucket = f"sparse-{os.getpid()}-{time.time_ns() % 10**9}"
    s3.create_bucket(Bucket=bucket)
    source = tmp_path / "thin.img"
    _sparse(source, 40 * MiB, [(12 * MiB + 3, MiB)])
    job = mover.copy(str(source), f"s3://{bucket}/thin.img", chunk_size=5 * MiB)
    assert job.state == "done" and job.size == 40 * MiB
    body = s3.get_object(Bucket=bucket, Key="thin.img")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == file_sha256(source)


# --- snapshots of volumes -------------------------------------------------------------------


@pytest.mark.s3
def test_snapshot_of_a_block_device(
    loop: Callable[[Path], str],
    tmp_path: Path,
    s3_server: Any,
    s3_client: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BK_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("BK_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    cat.add_store(
        "bk",
        f"s3://{s3_bucket}/bk/",
        credentials_env="BK",
        options={"endpoint_url": s3_server.endpoint_url, "repository_key_env": "BK_REPO_KEY"},
    )
    monkeypatch.setenv("BK_REPO_KEY", "a passphrase")
    image = tmp_path / "vol.img"
    # Chunks of 1 MiB: 2 hole chunks (never written), 1 of written zeros, the rest data.
    data = volume_image(image, 9 * MiB, zeros=[(2 * MiB, 2 * MiB)])
    with open(image, "r+b") as f:
        f.seek(6 * MiB)
        f.write(bytes(MiB))
    data = data[: 6 * MiB] + bytes(MiB) + data[7 * MiB :]
    device = loop(image)

    run = cli("snapshot", "backup", device, "--to", "bk", "--name", "vol", "--chunk-size", "1MiB")
    assert run.returncode == 0, run.stderr
    assert "3 zero" in run.stdout and "read live" in run.stdout
    record = cat.show_snapshot("vol")["backups"][0]
    assert record["size"] == len(data)
    # The repository's packs, listed with boto3: the 6 data chunks (random, incompressible)
    # and nothing for the 3 zero ones.
    stored = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="bk/repository/data/")
    packed = sum(o["Size"] for o in stored["Contents"])
    assert 6 * MiB <= packed < 6 * MiB + 64 * 1024, packed
    from mover.api import default_jobstore

    job = default_jobstore().get(record["job_id"])
    assert job.state == "done" and any("read live" in n for n in job.notes)

    out = tmp_path / "restored.img"
    run = cli("snapshot", "restore", "vol", str(out))
    assert run.returncode == 0, run.stderr
    assert subprocess.run(["cmp", device, str(out)]).returncode == 0
    assert allocated_bytes(out) <= 6 * MiB  # the three zero chunks are holes

    # Onto another volume that holds other data: zeros must be written there too.
    other_image = tmp_path / "other.img"
    volume_image(other_image, 10 * MiB)
    other = loop(other_image)
    refused = cli("snapshot", "restore", "vol", other)
    assert refused.returncode == 2 and "--to-device" in refused.stderr
    run = cli("snapshot", "restore", "vol", other, "--to-device")
    assert run.returncode == 0, run.stderr
    with open(other, "rb") as f:
        assert f.read(len(data)) == data
