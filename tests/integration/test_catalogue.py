"""The catalogue on real stores: a region store on S3 (SeaweedFS), zone ``a`` with a file image
store, zone ``b`` with a Swift image store.

Stores name their credentials by reference (``credentials_env``): the secrets live only in this
process's environment. What the stores hold is read back with independent clients (boto3,
swiftclient, plain files), never with mover itself.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from mover import catalogue as cat
from mover.catalogue.placement import placements
from mover.cli.catalogue import catalogue_groups
from tests.independent import chunks_sha256

pytestmark = [
    pytest.mark.integration,
    pytest.mark.s3,
    pytest.mark.swift,
    pytest.mark.usefixtures("catalogue_backend"),  # on SQLite and on PostgreSQL
]

MiB = 1024 * 1024
#: Not a real secret: the wrong one, which must never appear in a message.
WRONG_SECRET = "wrong-secret-7f3a9c"


@dataclass
class World:
    root: Path
    bucket: str
    container: str
    s3: Any
    swift: Any
    s3_server: Any
    swift_server: Any

    def s3_keys(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def swift_names(self, prefix: str) -> list[str]:
        _, objects = self.swift.get_container(self.container, prefix=prefix, full_listing=True)
        return sorted(o["name"] for o in objects)


@pytest.fixture
def world(
    s3_server: Any,
    swift_server: Any,
    s3_bucket: str,
    swift_container: str,
    s3_client: Any,
    swift_connection: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    """The three stores in a fresh catalogue, credentials only in the environment."""
    env = {
        # The region store's own credentials, by reference (credentials_env = "REGION").
        "REGION_ACCESS_KEY_ID": s3_server.access_key,
        "REGION_SECRET_ACCESS_KEY": s3_server.secret_key,
        "BAD_ACCESS_KEY_ID": s3_server.access_key,
        "BAD_SECRET_ACCESS_KEY": WRONG_SECRET,
        "ZONEB_KEY": swift_server.key,
        "WORLD_REPO_KEY": "world passphrase",  # the stores' repository key, by reference
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ST_AUTH", "ST_USER", "ST_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "zone-a").mkdir()
    cat.add_zone("a")
    cat.add_zone("b")
    cat.add_store(
        "region-s3",
        f"s3://{s3_bucket}/region/",
        scope="region",
        credentials_env="REGION",
        options={"endpoint_url": s3_server.endpoint_url, "repository_key_env": "WORLD_REPO_KEY"},
    )
    cat.add_store("a-files", f"file://{tmp_path}/zone-a/", scope="zone:a")
    cat.add_store(
        "b-swift",
        f"swift://{swift_container}/images/",
        scope="zone:b",
        credentials_env="ZONEB",
        options={
            "auth_url": swift_server.auth_url,
            "user": swift_server.user,
            "repository_key_env": "WORLD_REPO_KEY",
        },
    )
    yield World(
        tmp_path, s3_bucket, swift_container, s3_client, swift_connection, s3_server, swift_server
    )


def _cli() -> click.Group:
    group = click.Group("mover")
    for g in catalogue_groups:
        group.add_command(g)
    return group


def _mover(*args: str) -> Any:
    return CliRunner().invoke(_cli(), list(args))


def test_templates_region_and_per_zone(world: World) -> None:
    data = os.urandom(6 * MiB + 11)
    src = world.root / "centos9.qcow2"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()

    # Region-wide: one copy in the region's S3 store, which every zone reads.
    r = _mover(
        "template",
        "register",
        "centos9",
        str(src),
        "--scope",
        "region",
        "--checksum",
        f"sha256:{sha}",
        "--chunk-size",
        "5MiB",
    )
    assert r.exit_code == 0, r.output
    key = "region/templates/centos9/centos9.qcow2"
    assert world.s3_keys("region/templates/") == [key]
    body = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    for zone in ("a", "b"):
        where = cat.locate_template("centos9", zone)
        assert where["via"] == "region" and where["store"] == "region-s3"
        assert where["url"] == f"s3://{world.bucket}/{key}"

    # Per zone: one copy in each zone's image store, as parallel jobs.
    r = _mover(
        "template", "register", "ubuntu", str(src), "--scope", "zone", "--zones", "a,b", "--json"
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert sorted(c["store"] for c in result["copies"]) == ["a-files", "b-swift"]
    assert {c["state"] for c in result["copies"]} == {"ready"}
    assert all(run["job"]["state"] == "done" for run in result["copies_run"])
    file_copy = world.root / "zone-a" / "templates" / "ubuntu" / "centos9.qcow2"
    assert file_copy.read_bytes() == data
    _, swift_body = world.swift.get_object(world.container, "images/templates/ubuntu/centos9.qcow2")
    assert hashlib.sha256(swift_body).hexdigest() == sha
    assert cat.locate_template("ubuntu", "a")["store"] == "a-files"
    assert cat.locate_template("ubuntu", "b")["store"] == "b-swift"

    # Copy the region template into zone b (S3 -> Swift, store to store): b now reads its own.
    r = _mover("template", "copy", "centos9", "--to-zone", "b")
    assert r.exit_code == 0, r.output
    swift_key = "images/templates/centos9/centos9.qcow2"
    _, swift_body = world.swift.get_object(world.container, swift_key)
    assert hashlib.sha256(swift_body).hexdigest() == sha
    r = _mover("template", "locate", "centos9", "--zone", "b")
    assert r.exit_code == 0 and "zone copy in store b-swift" in r.output
    assert cat.locate_template("centos9", "a")["via"] == "region"

    r = _mover("template", "list")
    assert "centos9" in r.output and "ubuntu" in r.output

    # Delete removes every copy.
    for name in ("centos9", "ubuntu"):
        r = _mover("template", "delete", name)
        assert r.exit_code == 0, r.output
    assert world.s3_keys("region/templates/") == []
    assert world.swift_names("images/templates/") == []
    assert not file_copy.exists()
    assert cat.list_templates() == []
    r = _mover("template", "locate", "centos9", "--zone", "a")
    assert r.exit_code == 1 and "centos9" in r.output


def test_template_checksum_refused_on_real_stores(world: World) -> None:
    src = world.root / "x.raw"
    src.write_bytes(b"x" * 4096)
    r = _mover("template", "register", "x", str(src), "--checksum", "sha256:" + "0" * 64)
    assert r.exit_code == 1 and "nothing was registered" in r.output
    assert world.s3_keys("region/") == []


@pytest.mark.parametrize("store", ["region-s3", "b-swift"])
def test_snapshot_backups_made_before_the_repository_restore_beside_new_ones(
    world: World, store: str
) -> None:
    """Backups of the per-backup-prefix format (each under snapshots/NAME/ID/ with its
    manifest.json) on real S3 and Swift: still restored by ``mover snapshot restore``, beside
    the repository backups that follow them; delete removes both kinds."""
    from mover.catalogue import snapshots as legacy

    vol = bytearray(os.urandom(8 * MiB + 4321))
    path = world.root / "vol-7"
    path.write_bytes(vol)
    first = legacy.backup_snapshot(str(path), store, chunk_size=MiB, streams=4)
    assert first["full"] and (first["chunks"], first["chunks_sent"]) == (9, 9)
    for offset in (100, 3 * MiB + 5, 8 * MiB + 1):  # chunks 0, 3 and 8 change
        vol[offset] ^= 0x5A
    path.write_bytes(vol)
    second = legacy.backup_snapshot(str(path), store)
    assert second["parent"] == first["id"] and second["chunks_sent"] == 3
    prefix = f"snapshots/vol-7/{second['id']}/"
    names = (
        world.s3_keys("region/" + prefix)
        if store == "region-s3"
        else world.swift_names("images/" + prefix)
    )
    assert [n.rsplit("/", 1)[1] for n in names] == [
        "00000000",
        "00000003",
        "00000008",
        "manifest.json",
    ]

    out = world.root / "restored.img"
    r = _mover("snapshot", "restore", "vol-7", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == bytes(vol)
    older = world.root / "older.img"
    cat.restore_snapshot("vol-7", str(older), backup=first["id"])
    assert chunks_sha256(older.read_bytes(), MiB) == first["digest"]
    if store == "region-s3":
        # Into S3 itself: 1 MiB chunks grouped into parts of S3's 5 MiB minimum.
        cat.restore_snapshot("vol-7", "store:region-s3/restored/vol-7.img")
        body = world.s3.get_object(Bucket=world.bucket, Key="region/restored/vol-7.img")["Body"]
        assert body.read() == bytes(vol)
        world.s3.delete_object(Bucket=world.bucket, Key="region/restored/vol-7.img")

    # The next backup goes into the store's repository; both kinds restore, delete takes both.
    third = cat.backup_snapshot(str(path), store)
    assert third["format"] == "repository" and third["chunks_sent"] == 9
    r = _mover("snapshot", "restore", "vol-7", str(out))
    assert r.exit_code == 0 and out.read_bytes() == bytes(vol)
    cat.restore_snapshot("vol-7", str(older), backup=second["id"])
    assert older.read_bytes() == bytes(vol)
    cat.delete_snapshot("vol-7")
    if store == "region-s3":
        assert world.s3_keys("region/snapshots/") == []
        assert world.s3_keys("region/repository/snapshots/") == []
    else:
        assert world.swift_names("images/snapshots/") == []
        assert world.swift_names("images/repository/snapshots/") == []


def test_stores_check_good_and_wrong_credentials(world: World) -> None:
    cat.add_store(
        "bad-s3",
        f"s3://{world.bucket}/bad/",
        credentials_env="BAD",
        options={"endpoint_url": world.s3_server.endpoint_url},
    )
    # Credentials by file reference: NAME=VALUE lines, read by the process that uses the store.
    s3_file = world.root / "s3.credentials"
    s3_file.write_text(
        f"# region S3\nACCESS_KEY_ID={world.s3_server.access_key}\n"
        f"SECRET_ACCESS_KEY={world.s3_server.secret_key}\n"
    )
    swift_file = world.root / "swift.credentials"
    swift_file.write_text(f"KEY={world.swift_server.key}\n")
    cat.add_store(
        "file-s3",
        f"s3://{world.bucket}/viafile/",
        credentials_file=str(s3_file),
        options={"endpoint_url": world.s3_server.endpoint_url},
    )
    cat.add_store(
        "file-swift",
        f"swift://{world.container}/viafile/",
        credentials_file=str(swift_file),
        options={"auth_url": world.swift_server.auth_url, "user": world.swift_server.user},
    )
    r = _mover("stores", "check")
    assert r.exit_code == 1
    lines = {line.split()[1]: line for line in r.output.splitlines()}
    for good in ("region-s3", "a-files", "b-swift", "file-s3", "file-swift"):
        assert lines[good].startswith("ok "), r.output
    assert lines["bad-s3"].startswith("FAIL ") and "bad-s3" in lines["bad-s3"]
    assert WRONG_SECRET not in r.output and world.s3_server.secret_key not in r.output
    assert "BAD" in lines["bad-s3"]  # it names where the credentials came from
    r = _mover("stores", "check", "region-s3", "b-swift")
    assert r.exit_code == 0, r.output
    assert world.s3_keys("region/") == [] and world.swift_names("images/") == []
    # Nothing in the catalogue file is a secret.
    raw = cat.Catalogue().dump()
    for secret in (WRONG_SECRET, world.s3_server.secret_key, world.swift_server.key):
        assert secret.encode() not in raw


def test_literal_secret_refused(world: World) -> None:
    r = _mover(
        "stores",
        "add",
        "leaky",
        f"s3://{world.bucket}/",
        "-o",
        f"secret_access_key={world.s3_server.secret_key}",
    )
    assert r.exit_code == 1
    assert "secret_access_key" in r.output and world.s3_server.secret_key not in r.output
    r = _mover("stores", "add", "leaky", f"swift://{world.container}/", "-o", "password=hunter2")
    assert r.exit_code == 1 and "hunter2" not in r.output
    assert "leaky" not in _mover("stores", "list").output


def test_placement_plugin_from_an_external_package(world: World) -> None:
    """The test package's ``vendorx-last`` placement, found through its entry point (registered
    at run time when the package's installed metadata does not declare it yet)."""
    from mover_testplugin.placement import LastNamePlacement

    declared = any(
        ep.name == "vendorx-last" for ep in importlib.metadata.entry_points(group="mover.placement")
    )
    if not declared:
        placements.register("vendorx-last", LastNamePlacement, clobber=True)
    try:
        (world.root / "zone-a-2").mkdir()
        cat.add_store("a-zz-files", f"file://{world.root}/zone-a-2/", scope="zone:a")
        src = world.root / "t.raw"
        src.write_bytes(os.urandom(MiB))
        before = LastNamePlacement.calls
        out = cat.register_template(
            "t", str(src), scope="zone", zones=["a", "b"], placement="vendorx-last"
        )
        assert out["ok"] and LastNamePlacement.calls == before + 2
        assert sorted(c["store"] for c in out["copies"]) == ["a-zz-files", "b-swift"]
        assert (world.root / "zone-a-2" / "templates" / "t" / "t.raw").exists()
        # The default (free capacity where reported, else round robin) would pick either file
        # store; the plugin picked the last name, with no edit of mover.
        os.environ["MOVER_PLACEMENT"] = "vendorx-last"
        cat.delete_template("t")
        r = _mover("template", "register", "t2", str(src), "--scope", "zone", "--zones", "a")
        assert r.exit_code == 0 and "a-zz-files ready" in r.output
    finally:
        os.environ.pop("MOVER_PLACEMENT", None)
        if not declared:
            placements.unregister("vendorx-last")
