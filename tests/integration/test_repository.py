"""The backup repository on real S3 (SeaweedFS) and real Swift, through ``mover`` itself (the
CLI, in subprocesses where a process must be killed or run beside another).

What the stores hold is read back with independent clients (boto3, swiftclient), corruption is
made with them, and every restore is compared with ``sha256sum`` against its source.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mover import catalogue as cat
from tests.integration.test_fleet import _Throttled, random_file

pytestmark = [pytest.mark.integration]

MiB = 1 << 20
MOVER = [sys.executable, "-m", "mover.cli.main"]
KEY_ENV = "VAULT_REPO_KEY"
PASSPHRASE = "it is a truth universally acknowledged"


def sha256sum(path: Path) -> str:
    """The digest by coreutils' sha256sum: not mover's code."""
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


@dataclass
class Vault:
    """A store named ``vault`` holding an encrypted repository, and an independent view of it."""

    kind: str
    root: Path
    s3: Any = None
    bucket: str = ""
    swift: Any = None
    container: str = ""

    def objects(self, folder: str = "") -> dict[str, bytes | int]:
        """Key (under repository/) -> size, listed by the vendor's own client."""
        prefix = f"vault/repository/{folder}"
        if self.kind == "s3":
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return {
                o["Key"][len("vault/repository/") :]: o["Size"]
                for page in pages
                for o in page.get("Contents", [])
            }
        _, listing = self.swift.get_container(self.container, prefix=prefix, full_listing=True)
        return {o["name"][len("vault/repository/") :]: o["bytes"] for o in listing}

    def pack_bytes(self) -> int:
        return sum(int(v) for v in self.objects("data/").values())

    def get(self, key: str) -> bytes:
        full = f"vault/repository/{key}"
        if self.kind == "s3":
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=full)["Body"].read())
        return bytes(self.swift.get_object(self.container, full)[1])

    def put(self, key: str, data: bytes) -> None:
        full = f"vault/repository/{key}"
        if self.kind == "s3":
            self.s3.put_object(Bucket=self.bucket, Key=full, Body=data)
        else:
            self.swift.put_object(self.container, full, data)


@pytest.fixture(params=["s3", "swift"])
def vault(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Vault]:
    monkeypatch.setenv(KEY_ENV, PASSPHRASE)
    monkeypatch.setenv("MOVER_REPO_LEASE_S", "60")
    repo_options = {"repository_key_env": KEY_ENV, "repository_pack_size": 4 * MiB}
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        monkeypatch.setenv("VAULT_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("VAULT_SECRET_ACCESS_KEY", server.secret_key)
        cat.add_store(
            "vault",
            f"s3://{bucket}/vault/",
            credentials_env="VAULT",
            options={"endpoint_url": server.endpoint_url, **repo_options},
        )
        yield Vault("s3", tmp_path, s3=request.getfixturevalue("s3_client"), bucket=bucket)
    else:
        server = request.getfixturevalue("swift_server")
        container = request.getfixturevalue("swift_container")
        monkeypatch.setenv("VAULT_KEY", server.key)
        cat.add_store(
            "vault",
            f"swift://{container}/vault/",
            credentials_env="VAULT",
            options={"auth_url": server.auth_url, "user": server.user, **repo_options},
        )
        yield Vault(
            "swift",
            tmp_path,
            swift=request.getfixturevalue("swift_connection"),
            container=container,
        )


def mover(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``mover ARGS`` in this process (click's runner): the CLI exactly, without paying a
    process start and a key derivation per command. Tests that kill or race a backup run it
    as a real process instead (``MOVER``)."""
    from click.testing import CliRunner

    from mover.cli.main import cli

    r = CliRunner().invoke(cli, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    out = subprocess.CompletedProcess(list(args), r.exit_code, r.stdout, r.stderr)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def backup(source: Path | str, name: str) -> dict[str, Any]:
    out = mover("snapshot", "backup", str(source), "--to", "vault", "--name", name, "--json")
    return json.loads(out.stdout)


def restore_and_compare(name: str, source: Path | bytes, out: Path, *args: str) -> None:
    mover("snapshot", "restore", name, str(out), *args)
    if isinstance(source, Path):
        assert sha256sum(out) == sha256sum(source)
    else:
        assert sha256sum(out) == hashlib.sha256(source).hexdigest()


@contextlib.contextmanager
def slow_http(root: Path, rate: int) -> Iterator[Any]:
    """Serve ``root``'s files with ranges at ``rate`` bytes/s per request (``server.rate`` may
    change while it runs; 0 is full speed); yields the server, its URL in ``server.url``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttled)
    server.daemon_threads = True
    server.root = root  # type: ignore[attr-defined]
    server.rate = rate  # type: ignore[attr-defined]
    server.seen = set()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def wait_until(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


# --- the tests --------------------------------------------------------------------------------


def test_two_volumes_cloned_from_one_image_share_chunks(vault: Vault) -> None:
    image = bytearray(os.urandom(16 * MiB))
    image[: 2 * MiB] = (b"mover-plaintext-marker " * (2 * MiB // 23 + 1))[: 2 * MiB]
    vol1, vol2 = bytearray(image), bytearray(image)
    vol1[5 * MiB + 7] ^= 1  # one chunk of its own
    vol2[9 * MiB] ^= 1
    vol2[15 * MiB + 3] ^= 1  # two of its own
    (vault.root / "vol1.img").write_bytes(vol1)
    (vault.root / "vol2.img").write_bytes(vol2)

    first = backup(vault.root / "vol1.img", "vol1")
    after_first = vault.pack_bytes()
    assert first["chunks_sent"] == 16 and after_first == first["bytes_sent"]
    second = backup(vault.root / "vol2.img", "vol2")
    # new: its own two, and the image's chunk 5 (which vol1 changed); the 13 others reused
    assert second["chunks_sent"] == 3 and second["reused_chunks"] == 13
    grown = vault.pack_bytes() - after_first
    assert grown == second["bytes_sent"] and 3 * MiB < grown < 3 * MiB + 64 * 1024

    # Compressed (the text chunks) and encrypted: no plaintext in any stored object.
    assert after_first < 15 * MiB
    for key in vault.objects():
        assert b"mover-plaintext-marker" not in vault.get(key), key

    restore_and_compare("vol1", vault.root / "vol1.img", vault.root / "r1.img")
    restore_and_compare("vol2", vault.root / "vol2.img", vault.root / "r2.img")
    stats = json.loads(mover("repo", "stats", "vault", "--json").stdout)
    assert stats["logical_bytes"] == 32 * MiB and stats["unique_bytes"] == 19 * MiB
    assert stats["dedup_ratio"] == pytest.approx(32 / 19, 0.01)
    assert stats["stored_bytes"] == sum(int(v) for v in vault.objects().values())


def test_a_sparse_image_is_stored_small_and_restored_sparse(vault: Vault) -> None:
    sparse = vault.root / "sparse.img"
    with open(sparse, "wb") as f:
        f.truncate(96 * MiB)
        for at in (0, 40 * MiB + 12345, 95 * MiB):
            f.seek(at)
            f.write(os.urandom(MiB))
    assert os.stat(sparse).st_blocks * 512 < 8 * MiB  # the file system keeps it sparse
    result = backup(sparse, "sparse")
    assert result["zero_chunks"] >= 91 and result["chunks_sent"] == 4  # one write spans two
    assert vault.pack_bytes() < 4 * MiB + 64 * 1024
    out = vault.root / "restored.img"
    restore_and_compare("sparse", sparse, out)
    assert os.stat(out).st_size == 96 * MiB
    assert os.stat(out).st_blocks * 512 < 8 * MiB  # zero chunks written as holes


def test_a_wrong_key_is_refused_in_one_line(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_file(vault.root / "v.img", 3 * MiB)
    backup(data, "v")
    monkeypatch.setenv(KEY_ENV, "a wrong passphrase")
    out = vault.root / "out.img"
    for args in (
        ("snapshot", "restore", "v", str(out)),
        ("snapshot", "backup", str(data), "--to", "vault"),
        ("repo", "check", "vault"),
    ):
        r = mover(*args, check=False)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "wrong repository key" in lines[0], r.stderr
        assert f"${KEY_ENV}" in lines[0] and "a wrong passphrase" not in r.stderr
    assert not out.exists()
    monkeypatch.delenv(KEY_ENV)
    r = mover("snapshot", "restore", "v", str(out), check=False)
    assert r.returncode == 1 and f"${KEY_ENV}, which is not set" in r.stderr


def test_a_corrupted_chunk_is_named_by_check_and_stops_restore(vault: Vault) -> None:
    data = random_file(vault.root / "v.img", 10 * MiB)
    first = backup(data, "v")
    assert json.loads(mover("repo", "check", "vault", "--json").stdout)["ok"]
    packs = sorted(vault.objects("data/"))
    victim = packs[len(packs) // 2]
    body = bytearray(vault.get(f"{victim}"))
    body[len(body) // 3] ^= 0x04  # one bit, inside a blob, by the store's own client
    vault.put(victim, bytes(body))

    quick = mover("repo", "check", "vault", "--json")  # sizes match: only reading finds it
    assert json.loads(quick.stdout)["ok"]
    r = mover("repo", "check", "vault", "--read-data-subset", "100%", check=False)
    assert r.returncode == 1
    assert f"pack {victim.rsplit('/', 1)[1]}" in r.stdout and "is corrupt" in r.stdout
    assert f"needed by snapshot v/{first['id']}" in r.stdout

    out = vault.root / "out.img"
    r = mover("snapshot", "restore", "v", str(out), check=False)
    assert r.returncode == 1 and "is corrupt" in r.stderr and "nothing restored" in r.stderr
    assert not out.exists() and not [p for p in vault.root.iterdir() if ".mover-" in p.name]


def test_an_interrupted_backup_leaves_nothing_and_is_resumed(vault: Vault) -> None:
    """``kill -9`` of a ``mover snapshot backup`` mid-way: no manifest, no catalogue record,
    a clean check; the next backup reuses every chunk the killed one had stored."""
    (vault.root / "src").mkdir()
    source = random_file(vault.root / "src" / "vol.img", 32 * MiB)
    with slow_http(vault.root / "src", 4 * MiB) as http:
        url = http.url
        proc = subprocess.Popen(
            [*MOVER, "snapshot", "backup", f"{url}/vol.img", "--to", "vault", "--name", "vol"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(
                lambda: len(vault.objects("data/")) >= 2 or proc.poll() is not None, 60, "two packs"
            )
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        left = vault.objects("data/")
        assert not vault.objects("snapshots/")  # a backup without a manifest never happened
        assert cat.show_snapshot("vol")["backups"] == []
        assert json.loads(mover("repo", "check", "vault", "--json").stdout)["ok"]

        http.rate = 0
        again = backup(f"{url}/vol.img", "vol")
    stored_before = sum(int(v) for v in left.values())
    reused = again["reused_chunks"]
    assert reused >= 8 and again["chunks_sent"] == 32 - reused
    assert set(left) <= set(vault.objects("data/"))  # what it had stored is kept, and used
    assert vault.pack_bytes() - stored_before == again["bytes_sent"]
    restore_and_compare("vol", source, vault.root / "restored.img")
    # The killed process's lease is dead at once (same host, process gone): prune can go on.
    report = json.loads(mover("repo", "prune", "vault", "--grace", "0", "--json").stdout)
    assert report["postponed"] == []


def test_forget_and_prune_beside_a_running_backup_lose_nothing(vault: Vault) -> None:
    """A backup reusing chunks that only a forgotten backup references runs while prunes mark
    and try to sweep them; nothing it needs goes; once nothing needs them, they go."""
    x = os.urandom(24 * MiB)
    vol = vault.root / "vol.img"
    vol.write_bytes(x)
    a1 = backup(vol, "vol")
    a2_data = os.urandom(12 * MiB) + x[12 * MiB :]  # the first half rewritten
    vol.write_bytes(a2_data)
    a2 = backup(vol, "vol")
    (vault.root / "src").mkdir()
    clone = bytearray(x)
    clone[20 * MiB + 9] ^= 1  # a clone of the first state, one chunk of its own
    (vault.root / "src" / "clone.img").write_bytes(clone)

    r = mover("snapshot", "forget", "vol", "--keep-last", "1", "--json")
    assert [b["id"] for b in json.loads(r.stdout)["forgotten"]] == [a1["id"]]

    with slow_http(vault.root / "src", 4 * MiB) as http:
        proc = subprocess.Popen(
            [
                *MOVER,
                "snapshot",
                "backup",
                f"{http.url}/clone.img",
                "--to",
                "vault",
                "--name",
                "clone",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: vault.objects("locks/") or proc.poll() is not None, 60, "a lease")
        before = vault.objects("data/")
        first = json.loads(mover("repo", "prune", "vault", "--grace", "0", "--json").stdout)
        assert first["deleted_packs"] == 0 and first["marked_packs"] >= 3  # the forgotten half
        second = json.loads(mover("repo", "prune", "vault", "--grace", "0", "--json").stdout)
        assert proc.poll() is None, "the backup ended too soon to test anything"
        assert second["deleted_packs"] == 0
        assert any("started before it and is still running" in p for p in second["postponed"])
        assert set(before) <= set(vault.objects("data/"))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    clone_backup = json.loads(out)
    assert clone_backup["reused_chunks"] == 23 and clone_backup["chunks_sent"] == 1

    third = json.loads(mover("repo", "prune", "vault", "--grace", "0", "--json").stdout)
    assert third["deleted_packs"] == 0 and third["postponed"] == []  # all needed again
    restore_and_compare("clone", bytes(clone), vault.root / "clone.out")
    restore_and_compare("vol", a2_data, vault.root / "vol.out")

    # Now nothing needs the old first half: forget the clone; a mark, then a sweep.
    mover("snapshot", "forget", "clone", "--backup", clone_backup["id"])
    packs_before = vault.pack_bytes()
    mover("repo", "prune", "vault", "--grace", "0")
    swept = json.loads(mover("repo", "prune", "vault", "--grace", "0", "--json").stdout)
    assert swept["deleted_packs"] >= 3
    assert vault.pack_bytes() <= packs_before - 12 * MiB
    assert json.loads(
        mover("repo", "check", "vault", "--read-data-subset", "100%", "--json").stdout
    )["ok"]
    restore_and_compare("vol", a2_data, vault.root / "vol.again", "--backup", a2["id"])


def test_a_template_copied_to_another_zone_moves_only_missing_chunks(
    s3_server: Any,
    s3_bucket: str,
    s3_client: Any,
    swift_server: Any,
    swift_container: str,
    swift_connection: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Region templates on S3, zone b's image store on Swift sharing the region's key: the
    second template copied to zone b moves only the chunk zone b lacks (counted on Swift by
    swiftclient), and zone b's export is the image (sha256sum)."""
    monkeypatch.setenv(KEY_ENV, PASSPHRASE)
    monkeypatch.setenv("REGION_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("REGION_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("ZONEB_KEY", swift_server.key)
    cat.add_zone("b")
    key = {"repository_key_env": KEY_ENV}
    cat.add_store(
        "region",
        f"s3://{s3_bucket}/region/",
        scope="region",
        credentials_env="REGION",
        options={"endpoint_url": s3_server.endpoint_url, **key},
    )
    cat.add_store(
        "zone-b",
        f"swift://{swift_container}/b/",
        scope="zone:b",
        credentials_env="ZONEB",
        options={"auth_url": swift_server.auth_url, "user": swift_server.user, **key},
    )
    mover("repo", "init", "region")
    mover("repo", "init", "zone-b", "--like", "region")
    image = os.urandom(12 * MiB)
    (tmp_path / "base.img").write_bytes(image)
    variant = bytearray(image)
    variant[7 * MiB + 3] ^= 1
    (tmp_path / "variant.img").write_bytes(variant)
    for name in ("base", "variant"):
        mover("template", "register", name, str(tmp_path / f"{name}.img"), "--repository")

    def zone_b_packs() -> int:
        _, listing = swift_connection.get_container(
            swift_container, prefix="b/repository/data/", full_listing=True
        )
        return sum(o["bytes"] for o in listing)

    first = json.loads(mover("template", "copy", "base", "--to-zone", "b", "--json").stdout)
    assert first["copies_run"][0]["copied_chunks"] == 12
    after_base = zone_b_packs()
    second = json.loads(mover("template", "copy", "variant", "--to-zone", "b", "--json").stdout)
    run = second["copies_run"][0]
    assert run["copied_chunks"] == 1 and run["present_chunks"] == 11
    assert MiB < zone_b_packs() - after_base < MiB + 64 * 1024  # one chunk and a header
    out = tmp_path / "exported.img"
    mover("template", "export", "variant", str(out), "--zone", "b")
    assert sha256sum(out) == hashlib.sha256(variant).hexdigest()


@pytest.mark.redis
@pytest.mark.parametrize("vault", ["s3"], indirect=True)
def test_the_fleet_executor_without_workers_is_refused_before_anything_is_written(
    vault: Vault, redis_server: Any
) -> None:
    data = random_file(vault.root / "v.img", 2 * MiB)
    env = {**os.environ, "MOVER_BROKER_URL": redis_server.url}
    r = subprocess.run(
        [*MOVER, "snapshot", "backup", str(data), "--to", "vault", "--executor", "celery"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 1 and "no mover worker answers" in r.stderr, r.stderr
    assert vault.objects() == {}  # not even the repository's configuration
