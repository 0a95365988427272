"""The catalogue on memory and file stores: stores without secrets, store: resolution, placement,
templates per zone and region-wide, incremental snapshots, store checks and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mover import catalogue as cat
from mover import config as config_mod
from mover.catalogue.placement import Candidate, Placement, PlacementRequest, choose, placements
from mover.catalogue.store import Catalogue, forget_cached_stores
from mover.cli.catalogue import catalogue_groups
from mover.errors import ConfigError, NotEnoughSpace, UnknownStore, UsageError, VerificationFailed
from mover.location import parse
from mover.providers import memory
from mover.resolve import open_location, store_table
from mover.resolve import resolve as resolve_store
from mover.strategies.placement.capacity import CapacityPlacement

MiB = 1024 * 1024

#: Every test runs on the SQLite catalogue and on PostgreSQL (an integration test: a server).
pytestmark = pytest.mark.usefixtures("catalogue_backend")


def _read(url: str) -> bytes:
    store, loc = open_location(url)
    size = store.stat(loc.full_key).size or 0
    buf = bytearray(size)
    assert store.read_into(loc.full_key, 0, memoryview(buf)) == size
    return bytes(buf)


#: The environment variable that holds the test repositories' passphrase (a reference in the
#: stores' options; the value lives only in this process's environment).
KEY_ENV = "MOVER_TEST_REPO_KEY"
REPO = {"repository_key_env": KEY_ENV}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Zone a (a file store), zone b (a memory store), a region memory store, a backup store
    whose repository is encrypted with a passphrase from the environment."""
    monkeypatch.setenv(KEY_ENV, "correct horse battery staple")
    (tmp_path / "a1").mkdir()
    cat.add_zone("a")
    cat.add_zone("b")
    cat.add_store("region-m", "memory://region/images/", scope="region")
    cat.add_store("a1", f"file://{tmp_path}/a1/", scope="zone:a")
    cat.add_store("b1", "memory://zoneb/", scope="zone:b")
    cat.add_store("backup", "memory://backup/", options=REPO)
    return tmp_path


# --- stores -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option", ["secret_key", "password", "token", "aws_secret_access_key", "key", "api_key"]
)
def test_literal_secret_refused(option: str) -> None:
    with pytest.raises(ConfigError) as err:
        cat.add_store("s", "s3://bucket/", options={option: "hunter2"})
    assert "hunter2" not in str(err.value) and option in str(err.value)
    assert cat.list_stores() == []


def test_reference_accepted_and_value_shapes_checked() -> None:
    rec = cat.add_store(
        "s",
        "s3://bucket/p/",
        options={"endpoint_url": "http://x", "access_key_id_env": "K"},
        credentials_env="BACKUP",
    )
    assert rec["credentials_env"] == "BACKUP"
    with pytest.raises(ConfigError):
        cat.add_store("t", "s3://bucket/", credentials_env="not a name=secret")
    with pytest.raises(ConfigError):
        cat.add_store("t", "s3://bucket/", credentials_file="relative/path")
    with pytest.raises(Exception, match="credentials do not belong"):
        cat.add_store("t", "s3://user:pw@bucket/")


def test_store_validation() -> None:
    with pytest.raises(UsageError, match="unknown zone"):
        cat.add_store("x", "memory://x/", scope="zone:nowhere")
    with pytest.raises(UsageError, match="scope"):
        cat.add_store("x", "memory://x/", scope="cluster")
    with pytest.raises(Exception, match="unknown provider"):
        cat.add_store("x", "nosuch://x/")
    cat.add_store("x", "memory://x/")
    with pytest.raises(UsageError, match="already exists"):
        cat.add_store("x", "memory://y/")


def test_catalogue_store_resolves_as_store_location() -> None:
    cat.add_store("m", "memory://bucket/root/", options={"min_part_bytes": 5})
    loc, options = resolve_store(parse("store:m/a/b.img"))
    assert (loc.scheme, loc.store, loc.full_key) == ("memory", "bucket", "root/a/b.img")
    assert options == {"min_part_bytes": 5}
    with pytest.raises(UnknownStore, match="known: m"):
        resolve_store(parse("store:nope/x"))


def test_config_stores_appear_and_win(tmp_path: Path) -> None:
    path = Path(os.environ["MOVER_CONFIG"])
    path.write_text(
        '[stores.cfg]\nurl = "memory://cfg/"\nrole = "image"\nscope = "region"\n'
        'credentials_env = "CFG"\n'
    )
    stores = {s["name"]: s for s in cat.list_stores()}
    assert stores["cfg"]["scope"] == "region" and stores["cfg"]["origin"] == str(path)
    assert stores["cfg"]["credentials_env"] == "CFG"
    with pytest.raises(UsageError, match="already configured"):
        cat.add_store("cfg", "memory://other/")
    with pytest.raises(UsageError, match="edit that file"):
        cat.remove_store("cfg")


def test_catalogue_file_never_holds_a_secret() -> None:
    cat.add_store("s", "s3://bucket/", credentials_env="REGION", options={"region": "x"})
    raw = Catalogue().dump()
    assert b"REGION" in raw and b"SECRET" not in raw.upper().replace(b"SECRET_", b"")


# --- placement ----------------------------------------------------------------------------


def _req(turn: int = 0, size: int | None = 10) -> PlacementRequest:
    return PlacementRequest("template", "t", size, "zone:a", turn)


def test_capacity_placement() -> None:
    p = CapacityPlacement()
    a, b = Candidate("a", "u", "zone:a", 100), Candidate("b", "u", "zone:a", 1000)
    assert p.choose([a, b], _req()) is b
    silent = [Candidate(n, "u", "zone:a", None) for n in ("x", "y", "z")]
    assert [p.choose(silent, _req(t)).name for t in range(4)] == ["x", "y", "z", "x"]
    small = Candidate("s", "u", "zone:a", 50)
    assert p.choose([small, *silent], _req(1, size=100)).name == "y"
    with pytest.raises(NotEnoughSpace, match="most free"):
        p.choose([small], _req(size=100))


def test_runtime_placement_plugin_and_contract() -> None:
    class First(Placement):
        name = "first-test"

        def choose(self, candidates, request):  # type: ignore[no-untyped-def]
            return candidates[0]

    placements.register("first-test", First)
    try:
        cands = [Candidate("z", "u", "zone:a", None), Candidate("a", "u", "zone:a", None)]
        assert choose(cands, _req(), "first-test").name == "z"
    finally:
        placements.unregister("first-test")
    with pytest.raises(Exception, match="contract"):
        placements.register("bad", object)  # type: ignore[arg-type]


# --- templates ----------------------------------------------------------------------------


def test_templates_region_and_zones(world: Path) -> None:
    data = os.urandom(3 * MiB + 7)
    src = world / "centos.qcow2"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    region = cat.register_template("centos", str(src), scope="region", checksum=f"sha256:{digest}")
    assert region["ok"] and region["state"] == "ready" and region["format"] == "qcow2"
    assert region["checksum"] == f"sha256:{digest}"
    assert [c["store"] for c in region["copies"]] == ["region-m"]
    assert _read("store:region-m/templates/centos/centos.qcow2") == data
    here = cat.locate_template("centos", "a")
    assert here["via"] == "region" and here["url"].startswith("memory://region/images/")

    zonal = cat.register_template("deb", str(src), scope="zone", zones=["a", "b"], chunk_size=MiB)
    assert zonal["ok"] and sorted(c["store"] for c in zonal["copies"]) == ["a1", "b1"]
    assert (world / "a1" / "templates" / "deb" / "centos.qcow2").read_bytes() == data
    assert cat.locate_template("deb", "b")["store"] == "b1"

    copied = cat.copy_template("centos", "b")
    assert copied["ok"] and not copied["already"]
    assert cat.locate_template("centos", "b") | {"url": ""} == {
        "template": "centos",
        "zone": "b",
        "via": "zone",
        "store": "b1",
        "scope": "zone:b",
        "location": "store:b1/templates/centos/centos.qcow2",
        "url": "",
        "format": "image",
    }
    assert cat.copy_template("centos", "b")["already"]
    assert {t["name"] for t in cat.list_templates()} == {"centos", "deb"}

    out = cat.delete_template("centos")
    assert sorted(d["store"] for d in out["deleted"]) == ["b1", "region-m"]
    with pytest.raises(FileNotFoundError):
        _read("store:b1/templates/centos/centos.qcow2")
    with pytest.raises(FileNotFoundError):
        cat.show_template("centos")


def test_template_checksum_mismatch_registers_nothing(world: Path) -> None:
    src = world / "x.raw"
    src.write_bytes(b"x" * 1000)
    with pytest.raises(VerificationFailed, match="nothing was registered"):
        cat.register_template("x", str(src), checksum="sha256:" + "0" * 64)
    assert cat.list_templates() == []
    assert list(memory._OBJECTS.get("region", {})) == []


def test_template_validation(world: Path) -> None:
    src = world / "x.raw"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="--zones"):
        cat.register_template("x", str(src), scope="zone")
    with pytest.raises(UsageError, match="unknown zone"):
        cat.register_template("x", str(src), scope="zone", zones=["q"])
    cat.add_zone("empty")
    with pytest.raises(UsageError, match="no image store"):
        cat.register_template("x", str(src), scope="zone", zones=["empty"])
    with pytest.raises(FileNotFoundError):
        cat.locate_template("nope", "a")


# --- snapshots ----------------------------------------------------------------------------


def _repo_keys(store: str, folder: str) -> list[str]:
    return sorted(k for k in memory._OBJECTS[store] if k.startswith(f"repository/{folder}/"))


def test_snapshot_backups_dedup_and_restore(world: Path) -> None:
    vol = bytearray(os.urandom(10 * MiB + 123))
    path = world / "vol-1"
    path.write_bytes(vol)
    first = cat.backup_snapshot(str(path), "backup", chunk_size=MiB, streams=3)
    assert first["full"] and first["chunks"] == 11 and first["chunks_sent"] == 11
    assert first["format"] == "repository"
    packs = _repo_keys("backup", "data")
    first_vol = bytes(vol)

    vol[10] ^= 0xFF
    vol[4 * MiB + 1] ^= 0xFF
    vol += os.urandom(MiB)  # grown: one more chunk, the old last one filled up
    path.write_bytes(vol)
    second = cat.backup_snapshot(str(path), "backup", streams=2)
    assert not second["full"] and second["parent"] == first["id"]
    # chunks 0, 4, 10 (now full) and 11 are new; the 8 others are the store's already
    assert second["chunks"] == 12 and second["chunks_sent"] == 4 and second["reused_chunks"] == 8
    new_packs = sorted(set(_repo_keys("backup", "data")) - set(packs))
    stored = sum(len(memory._OBJECTS["backup"][k]) for k in new_packs)
    assert stored == second["bytes_sent"] and 3 * MiB + 123 < stored < 3 * MiB + 4096
    assert len(_repo_keys("backup", "snapshots")) == 2  # one manifest per backup

    from mover.api import default_jobstore

    job = default_jobstore().get(second["job_id"])
    assert job.state == "done" and job.summary()["bytes_through_mover"] == second["bytes_sent"]

    out = world / "restored.img"
    result = cat.restore_snapshot("vol-1", str(out))
    assert result["verified"] and hashlib.sha256(out.read_bytes()).digest() == (
        hashlib.sha256(vol).digest()
    )
    old = world / "old.img"
    cat.restore_snapshot("vol-1", str(old), backup=first["id"])
    assert old.read_bytes() == first_vol

    # A destination whose parts must be >= 3 MiB gets chunks grouped into parts.
    cat.add_store("big-parts", "memory://bp/", options={"min_part_bytes": 3 * MiB})
    cat.restore_snapshot("vol-1", "store:big-parts/v.img")
    assert _read("store:big-parts/v.img") == bytes(vol)

    # Another chunk size: other chunk boundaries, so nothing to reuse, but it restores.
    third = cat.backup_snapshot(str(path), "backup", chunk_size=2 * MiB)
    assert third["chunks"] == 6 and third["chunks_sent"] == 6
    cat.restore_snapshot("vol-1", str(out), backup=third["id"])
    assert out.read_bytes() == bytes(vol)
    shown = cat.show_snapshot("vol-1")
    assert [b["id"] for b in shown["backups"]] == [first["id"], second["id"], third["id"]]
    assert cat.delete_snapshot("vol-1")["objects_deleted"] == 3
    assert _repo_keys("backup", "snapshots") == []  # the chunks wait for a prune


def test_snapshot_restore_detects_a_corrupt_chunk(world: Path) -> None:
    path = world / "v"
    path.write_bytes(os.urandom(2 * MiB))
    cat.backup_snapshot(str(path), "backup", chunk_size=MiB)
    (pack,) = _repo_keys("backup", "data")
    data = bytearray(memory._OBJECTS["backup"][pack])
    data[MiB + 100] ^= 0x01  # inside the second blob
    memory._OBJECTS["backup"][pack] = bytes(data)
    out = world / "bad.img"
    with pytest.raises(VerificationFailed, match=r"chunk at offset 1048576 .* is corrupt"):
        cat.restore_snapshot("v", str(out))
    assert not out.exists() and not list(world.glob(".bad.img*"))


def test_snapshot_backups_made_before_the_repository_stay_restorable(world: Path) -> None:
    """Backups written by the per-backup-prefix code restore through the same command, beside
    new repository backups of the same snapshot; delete removes both kinds."""
    from mover.catalogue import snapshots as v1

    path = world / "old-vol"
    vol = os.urandom(3 * MiB + 5)
    path.write_bytes(vol)
    old = v1.backup_snapshot(str(path), "backup", chunk_size=MiB)
    assert any(k.endswith("/manifest.json") for k in memory._OBJECTS["backup"])
    out = world / "from-v1.img"
    r = CliRunner().invoke(_cli(), ["snapshot", "restore", "old-vol", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == vol and f"{old['digest']} verified" in r.output
    new = cat.backup_snapshot(str(path), "backup")
    assert new["format"] == "repository" and new["chunks_sent"] == 4  # a first repository backup
    cat.restore_snapshot("old-vol", str(out))
    assert out.read_bytes() == vol
    cat.restore_snapshot("old-vol", str(out), backup=old["id"])
    assert out.read_bytes() == vol
    with pytest.raises(UsageError, match="made before the repository"):
        cat.forget_snapshot("old-vol", backup=old["id"])
    cat.delete_snapshot("old-vol")
    assert not [k for k in memory._OBJECTS["backup"] if k.startswith("snapshots/")]
    assert _repo_keys("backup", "snapshots") == []


# --- checks and the CLI -------------------------------------------------------------------


def test_check_stores(world: Path) -> None:
    cat.add_store("gone", f"file://{world}/missing/")
    results = {r["store"]: r for r in cat.check_stores()}
    assert results["a1"]["ok"] and results["a1"]["steps"] == [
        "reach",
        "write",
        "list",
        "read",
        "delete",
    ]
    assert not results["gone"]["ok"] and "does not exist" in results["gone"]["error"]
    assert not os.listdir(world / "a1")


def _cli() -> click.Group:
    group = click.Group("mover")
    for g in catalogue_groups:
        group.add_command(g)
    return group


def test_cli(world: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(_cli(), ["stores", "add", "s", "s3://b/", "-o", "secret_key=hunter2"])
    assert r.exit_code == 1 and "hunter2" not in r.output and "secret_key" in r.output
    r = runner.invoke(_cli(), ["zones", "list"])
    assert r.exit_code == 0 and "a1" in r.output and "region-m" in r.output
    src = world / "t.raw"
    src.write_bytes(b"t" * 5000)
    r = runner.invoke(
        _cli(), ["template", "register", "t", str(src), "--scope", "zone", "--zones", "a,b"]
    )
    assert r.exit_code == 0, r.output
    assert "a1 ready" in r.output and "b1 ready" in r.output
    r = runner.invoke(_cli(), ["template", "locate", "t", "--zone", "a", "--json"])
    assert json.loads(r.output)["store"] == "a1"
    r = runner.invoke(_cli(), ["snapshot", "backup", str(src), "--to", "backup", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["chunks_sent"] == 1
    r = runner.invoke(_cli(), ["snapshot", "restore", "t.raw", str(world / "r.raw")])
    assert r.exit_code == 0 and (world / "r.raw").read_bytes() == src.read_bytes()
    cat.add_store("gone", f"file://{world}/missing/")
    r = runner.invoke(_cli(), ["stores", "check"])
    assert r.exit_code == 1
    assert "ok    a1" in r.output and "FAIL  gone" in r.output


def test_credentials_file_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.write_text("# comment\nACCESS_KEY_ID=AK\nexport SECRET_ACCESS_KEY='sk-value'\n")
    cat.add_store("via-file", "s3://bucket/", credentials_file=str(creds))
    table = store_table("via-file", config_mod.load())
    assert table is not None and table["credentials_env"] == "MOVER_STORE_VIA_FILE"
    assert os.environ["MOVER_STORE_VIA_FILE_SECRET_ACCESS_KEY"] == "sk-value"
    monkeypatch.delenv("MOVER_STORE_VIA_FILE_ACCESS_KEY_ID")
    monkeypatch.delenv("MOVER_STORE_VIA_FILE_SECRET_ACCESS_KEY")
    assert b"sk-value" not in Catalogue().dump()
    creds.write_text("sk-value-without-a-name\n")
    forget_cached_stores()  # the file is read again when the store is next resolved
    with pytest.raises(ConfigError, match="line 1") as err:
        store_table("via-file", config_mod.load())
    assert "sk-value" not in str(err.value)


def test_service_runs_operations_from_json_payloads(world: Path) -> None:
    from mover.catalogue import service

    src = world / "svc.raw"
    src.write_bytes(os.urandom(3000))
    payload = json.loads(json.dumps({"name": "svc", "source": str(src), "scope": "region"}))
    out = service.run("mover.template.register", payload)
    assert json.loads(json.dumps(out))["state"] == "ready"
    assert service.run("mover.template.locate", {"name": "svc", "zone": "b"})["via"] == "region"
    backup = service.run("mover.snapshot.backup", {"source": str(src), "to": "backup"})
    assert backup["chunks_sent"] == 1
    with pytest.raises(UsageError, match="unknown payload keys catalogue"):
        service.run("mover.template.show", {"name": "svc", "catalogue": "x"})
    with pytest.raises(UsageError, match="lacks zone"):
        service.run("mover.template.locate", {"name": "svc"})
    with pytest.raises(UsageError, match="unknown catalogue operation"):
        service.run("mover.template.nope", {})


def test_store_remove_refused_while_holding_copies(world: Path) -> None:
    src = world / "r.raw"
    src.write_bytes(b"r" * 100)
    cat.register_template("r", str(src), scope="zone", zones=["b"])
    with pytest.raises(UsageError, match="holds 1 copies"):
        cat.remove_store("b1")
    cat.remove_store("b1", force=True)
    assert "b1" not in {s["name"] for s in cat.list_stores()}
    assert cat.show_template("r")["copies"] == []


def test_snapshot_memory_is_bounded_by_streams_times_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 48 MiB volume in 1 MiB chunks on 3 streams: the backup and the restore allocate a read
    piece, a pack and a few chunk buffers per stream, never the volume (tracemalloc sees every
    bytearray)."""
    import tracemalloc

    (tmp_path / "bk").mkdir()
    monkeypatch.setenv(KEY_ENV, "memory test")
    cat.add_store("fbk", f"file://{tmp_path}/bk/", options={**REPO, "repository_pack_size": "4MiB"})
    vol = tmp_path / "big"
    with vol.open("wb") as f:
        for _ in range(48):
            f.write(os.urandom(MiB))
    tracemalloc.start()
    try:
        cat.backup_snapshot(str(vol), "fbk", chunk_size=MiB, streams=3)
        _, backup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        cat.restore_snapshot("big", str(tmp_path / "back"))
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    from mover.repository.restore import READ_BYTES
    from mover.repository.source import READ_BYTES as PIECE

    assert backup_peak < 3 * (PIECE + 4 * MiB + 2 * MiB) + 4 * MiB, backup_peak
    assert restore_peak < 3 * (READ_BYTES + 3 * MiB) + 4 * MiB, restore_peak
    assert (tmp_path / "back").read_bytes() == vol.read_bytes()
