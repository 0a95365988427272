"""The backup repository's pure parts, and its rules on a memory store: keys, blobs, packs,
index, retention, range plans, prune's two phases around a running backup, check, stats."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mover import catalogue as cat
from mover.errors import ConfigError, ObjectNotFound, UsageError, VerificationFailed
from mover.providers import memory
from mover.repository import backup as rbackup
from mover.repository import check as rcheck
from mover.repository import crypto, index, keys, manifests, packs, prune, restore, retention
from mover.repository.layout import RepoConfig
from mover.repository.repo import Repository
from mover.repository.runner import ThreadRunner
from mover.repository.source import is_zero, plan_ranges, spans
from mover.repository.stats import stats

MiB = 1 << 20
GiB = 1 << 30
KEY_ENV = "MOVER_TEST_REPO_KEY"


# --- pure parts ---------------------------------------------------------------------------


def test_master_key_wraps_and_a_wrong_secret_is_refused() -> None:
    master = crypto.MasterKey.generate()
    obj = crypto.wrap(master, b"right")
    assert b"right" not in obj and master.data not in obj
    assert crypto.unwrap(obj, b"right") == master
    with pytest.raises(crypto.BadKey, match="wrong passphrase"):
        crypto.unwrap(obj, b"wrong")


def test_sealed_objects_fail_when_changed_or_moved() -> None:
    s = crypto.AesGcmSealer(os.urandom(32))
    sealed = s.seal(b"manifest body", b"snapshots/a/1")
    assert s.open(sealed, b"snapshots/a/1") == b"manifest body"
    with pytest.raises(crypto.Corrupt):
        s.open(sealed, b"snapshots/b/1")  # the same bytes under another name
    flipped = bytearray(sealed)
    flipped[20] ^= 1
    with pytest.raises(crypto.Corrupt):
        s.open(bytes(flipped), b"snapshots/a/1")


@pytest.mark.parametrize("sealer", [crypto.Sealer(), crypto.AesGcmSealer(os.urandom(32))])
def test_blobs_compress_when_it_pays_and_verify_their_id(sealer: crypto.Sealer) -> None:
    ids = crypto.ChunkIds(os.urandom(32))
    codec = packs.Codec(sealer, ids, ("zstd", 1))
    text = memoryview(b"mover " * 100_000)
    noise = memoryview(os.urandom(300_000))
    for data in (text, noise):
        cid = ids(data)
        blob = codec.encode(cid, data)
        assert codec.decode(cid, memoryview(blob), len(data)) == bytes(data)
    assert len(codec.encode(ids(text), text)) < len(text) // 10
    assert len(codec.encode(ids(noise), noise)) == len(noise) + 1 + sealer.overhead
    other = ids(b"something else")
    with pytest.raises(crypto.Corrupt):
        codec.decode(other, memoryview(codec.encode(other, noise)), len(noise) - 1)
    if not sealer.encrypted:
        # Unencrypted, a changed byte still fails: the keyed id of the plaintext.
        blob = bytearray(codec.encode(ids(noise), noise))
        blob[1000] ^= 1
        with pytest.raises(crypto.Corrupt, match="does not match its id"):
            codec.decode(ids(noise), memoryview(blob), len(noise))


def test_a_pack_carries_its_own_header_and_is_named_by_its_bytes() -> None:
    import blake3

    sealer = crypto.AesGcmSealer(os.urandom(32))
    b = packs.PackBuilder(sealer, target=1000, max_blob=600)
    b.add(b"a" * 32, b"x" * 500, 400)
    assert not b.full
    b.add(b"b" * 32, b"y" * 600, 600)
    assert b.full
    name, data, entries = b.finish()
    assert name == blake3.blake3(data).hexdigest()
    length = packs.header_length(data)
    header = data[len(data) - 4 - length : len(data) - 4]
    assert packs.open_header(sealer, header) == entries
    assert [(e.offset, e.length) for e in entries] == [(0, 500), (500, 600)]
    table = {"ab" * 32: (len(data), entries)}
    assert index.decode_index(index.encode_index(table)) == table


def test_retention_keeps_last_daily_weekly() -> None:
    day = 86400.0
    base = time.mktime((2026, 11, 30, 12, 0, 0, 0, 0, -1))  # a Monday, noon
    backups = [(f"b{i}", base - i * day / 2) for i in range(30)]  # two a day, 15 days
    keep = retention.decide(backups, retention.Policy(last=3))
    assert [b for b, why in keep.items() if why] == ["b0", "b1", "b2"]
    keep = retention.decide(backups, retention.Policy(daily=4))
    assert [b for b, why in keep.items() if why] == ["b0", "b2", "b4", "b6"]  # noon each day
    keep = retention.decide(backups, retention.Policy(last=1, weekly=2))
    kept = {b: why for b, why in keep.items() if why}
    assert kept["b0"] == ["last", "weekly"] and len(kept) == 2  # this week and the last
    assert all(keep.values()) is False
    assert all(retention.decide(backups, retention.Policy()).values())
    with pytest.raises(UsageError):
        retention.Policy(last=-1)


def test_plans_cut_volumes_on_chunk_boundaries() -> None:
    ranges = plan_ranges(200 * MiB + 5, MiB)
    assert [r.length for r in ranges] == [64 * MiB] * 3 + [8 * MiB + 5]
    assert len(plan_ranges(1 << 40, MiB)) <= 4096
    assert list(spans(0, 2 * MiB + 1, MiB)) == [(0, MiB), (MiB, MiB), (2 * MiB, 1)]
    zeros = bytes(MiB)
    assert is_zero(memoryview(bytearray(MiB)), zeros)
    tail = bytearray(MiB)
    tail[-1] = 1
    assert not is_zero(memoryview(tail), zeros)
    mid = bytearray(10)
    mid[3] = 1
    assert not is_zero(memoryview(mid), zeros) and is_zero(memoryview(bytearray(10)), zeros)


def test_a_thin_volumes_ranges_follow_its_data() -> None:
    """100 GiB holding 1,024 extents of 1 MiB spread evenly: tens of ranges, not 1,600; they
    tile the volume on chunk boundaries, and none holds much more than a range's data."""
    size, step = 100 * GiB, 64 * MiB
    gap = size // 1024
    data = [(i * gap + 5 * MiB, i * gap + 6 * MiB) for i in range(1024)]
    ranges = plan_ranges(size, MiB, data=data)
    assert 10 <= len(ranges) <= 40, len(ranges)
    assert ranges[0].offset == 0 and sum(r.length for r in ranges) == size
    for a, b in itertools.pairwise(ranges):
        assert a.offset + a.length == b.offset and a.offset % MiB == 0
    for r in ranges:
        held = sum(
            min(e, r.offset + r.length) - max(s, r.offset)
            for s, e in data
            if s < r.offset + r.length and e > r.offset
        )
        assert held <= step + MiB  # a range ends at the first step past 64 MiB of data
    # Without a hole map, as before: 64 MiB of volume each.
    assert len(plan_ranges(size, MiB)) == 1600


def test_hole_ranges_are_the_complement_of_a_providers_data_extents() -> None:
    """The hook's arithmetic, given the answer a provider's ``data_extents`` gives (a plain
    object stands for the provider: only that method is asked)."""
    from mover.repository.source import hole_ranges

    class Extents:
        def data_extents(self, key: str, offset: int, length: int) -> list[tuple[int, int]]:
            return [(offset + 10, offset + 20), (offset + 50, offset + 60)]

    assert hole_ranges(Extents(), "k", 100, 100) == [(100, 10), (120, 30), (160, 40)]  # type: ignore[arg-type]
    assert hole_ranges(object(), "k", 0, 10) == []  # type: ignore[arg-type]


def test_restore_ranges_keep_holes_for_files_and_fill_parts_for_objects() -> None:
    chunks = [[0, MiB, "a"], [MiB, 40 * MiB, None], [41 * MiB, MiB, "b"]]
    locs = {"a": ("p", 0, 10, MiB), "b": ("p", 10, 10, MiB)}
    at = restore._ranges(chunks, locs, 16 * MiB, write_at=True)
    assert [[e[3] for e in r["entries"]] for r in at] == [["a", "b"]]
    parts = restore._ranges(chunks, locs, 16 * MiB, write_at=False)
    assert [(r["offset"], r["length"]) for r in parts] == [
        (0, 16 * MiB),
        (16 * MiB, 16 * MiB),
        (32 * MiB, 10 * MiB),
    ]
    assert sum(e[2] for r in parts for e in r["entries"]) == 42 * MiB


def test_prune_keeps_one_copy_of_every_referenced_chunk() -> None:
    e = lambda c: packs.Entry(c * 32, 0, 1, 1)  # noqa: E731
    table = {
        "p1": (1, [e(b"a"), e(b"b")]),
        "p2": (1, [e(b"b")]),  # a duplicate of p1's b
        "p3": (1, [e(b"c")]),  # unreferenced
        "p4": (1, [e(b"d")]),
    }
    refs = {b"a" * 32, b"b" * 32, b"d" * 32}
    assert prune.keep_set(table, sorted(table), set(), refs) == {"p1", "p4"}
    assert prune.keep_set(table, ["p1", "p2"], {"p4"}, {b"b" * 32}) == {"p1"}


# --- on a memory store ----------------------------------------------------------------------


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A memory store with an encrypted repository (4 MiB packs, so tests have several)."""
    monkeypatch.setenv(KEY_ENV, "unit passphrase")
    cat.add_store(
        "vault", "memory://vault/", options={keys.KEY_ENV: KEY_ENV, "repository_pack_size": 4 * MiB}
    )
    Repository.init("vault")
    return "vault"


def _volume(path: Path, size: int, seed: bytes = b"") -> bytearray:
    data = bytearray(os.urandom(size))
    path.write_bytes(data)
    return data


def _restore_bytes(repo: Repository, name: str, backup: str, out: Path) -> bytes:
    restore.restore(repo, "snapshot", name, backup, str(out))
    return out.read_bytes()


def test_wrong_key_and_missing_key_are_one_line_errors(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.forget_unlocked()
    monkeypatch.setenv(KEY_ENV, "not the passphrase")
    with pytest.raises(crypto.BadKey) as err:
        Repository.open(store)
    message = str(err.value)
    assert "\n" not in message and f"${KEY_ENV}" in message and "wrong repository key" in message
    assert "not the passphrase" not in message
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"\\${KEY_ENV}, which is not set"):
        Repository.open(store)
    cat.add_store("plain", "memory://plain/")
    with pytest.raises(ConfigError, match="mover stores set plain -o repository_key_env="):
        Repository.init("plain")
    with pytest.raises(ConfigError, match="would hold a secret"):
        cat.set_store_options("plain", {"repository_key": "hunter2"})
    cat.set_store_options("plain", {keys.KEY_ENV: KEY_ENV})  # a reference is fine
    monkeypatch.setenv(KEY_ENV, "unit passphrase")
    assert Repository.init("plain").config.encryption == "aes-256-gcm"
    cat.add_store("unenc", "memory://unenc/", options={keys.ENCRYPTION: "none"})
    r = Repository.init("unenc")
    assert r.config.encryption == "none"
    # The same repository seen through a store that names a key: refused, not silently plain.
    cat.add_store("unenc2", "memory://unenc/", options={keys.KEY_ENV: KEY_ENV})
    with pytest.raises(UsageError, match="unencrypted"):
        Repository.open("unenc2")


def test_dedup_across_volumes_zeros_and_stats(store: str, tmp_path: Path) -> None:
    repo = Repository.open(store)
    a = _volume(tmp_path / "a", 12 * MiB)
    a[4 * MiB : 8 * MiB] = bytes(4 * MiB)
    (tmp_path / "a").write_bytes(a)
    b = bytearray(a)
    b[100] ^= 1  # a clone with one chunk changed
    (tmp_path / "b").write_bytes(b)
    ra = rbackup.backup(repo, str(tmp_path / "a"), kind="snapshot", name="a")
    rb = rbackup.backup(repo, str(tmp_path / "b"), kind="snapshot", name="b")
    assert (ra["new_chunks"], ra["zero_chunks"]) == (8, 4)
    assert (rb["new_chunks"], rb["reused_chunks"], rb["zero_chunks"]) == (1, 7, 4)
    m = manifests.read(repo, "snapshot", "a", ra["backup"])
    assert m.chunks[4] == [4 * MiB, 4 * MiB, None]  # one entry for the zero run
    st = stats(repo)
    assert st["logical_bytes"] == 24 * MiB and st["zero_bytes"] == 8 * MiB
    assert st["unique_bytes"] == 9 * MiB and st["dedup_ratio"] == pytest.approx(16 / 9, 0.01)
    assert _restore_bytes(repo, "b", rb["backup"], tmp_path / "b.out") == bytes(b)


class PausingRunner(ThreadRunner):
    """Runs a backup's range tasks only once ``go`` is set: a backup that has taken its lease
    and its view of the repository, and has not written its manifest yet."""

    def __init__(self) -> None:
        super().__init__(2)
        self.started = threading.Event()
        self.go = threading.Event()

    def map(self, task: str, payloads: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        self.started.set()
        assert self.go.wait(30)
        yield from super().map(task, payloads)


def _in_thread(
    result: dict[str, Any], repo: Repository, path: Path, name: str, runner: ThreadRunner
) -> threading.Thread:
    """A backup of ``path`` started on a thread; its summary lands in ``result``."""

    def run() -> None:
        result.update(rbackup.backup(repo, str(path), kind="snapshot", name=name, runner=runner))

    t = threading.Thread(target=run)
    t.start()
    return t


def _all_restore(repo: Repository, tmp_path: Path, expected: dict[tuple[str, str], bytes]) -> None:
    for (name, backup), data in expected.items():
        out = tmp_path / f"check-{name}-{backup}"
        assert _restore_bytes(repo, name, backup, out) == data, (name, backup)


def test_prune_during_a_backup_loses_nothing(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup reuses chunks that only a forgotten backup references; prunes run while it
    is between its view and its manifest; nothing it needs goes, and the rest does."""
    monkeypatch.setattr(prune, "SKEW_S", 0)
    repo = Repository.open(store)
    v1 = _volume(tmp_path / "vol", 16 * MiB)
    first = rbackup.backup(repo, str(tmp_path / "vol"), kind="snapshot", name="vol")
    v2 = bytearray(v1)
    v2[0 : 8 * MiB] = os.urandom(8 * MiB)  # half the volume rewritten
    (tmp_path / "vol").write_bytes(v2)
    second = rbackup.backup(repo, str(tmp_path / "vol"), kind="snapshot", name="vol")
    (tmp_path / "clone").write_bytes(v1)  # a clone of the first state
    manifests.delete(repo, "snapshot", "vol", first["backup"])  # forget the first backup

    runner = PausingRunner()
    result: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: result.update(
            rbackup.backup(
                repo, str(tmp_path / "clone"), kind="snapshot", name="clone", runner=runner
            )
        )
    )
    t.start()
    assert runner.started.wait(30)
    marked = prune.prune(repo, grace_s=0)  # marks the forgotten half; deletes nothing
    assert marked["deleted_packs"] == 0 and marked["marked_packs"] >= 2
    swept = prune.prune(repo, grace_s=0)  # the mark is due, but the backup started before it
    assert swept["deleted_packs"] == 0
    assert any("started before it" in p for p in swept["postponed"])
    runner.go.set()
    t.join(30)
    assert result["reused_chunks"] == 16 and result["new_chunks"] == 0
    after = prune.prune(repo, grace_s=0)  # the backup committed: its chunks are referenced
    assert after["deleted_packs"] == 0 and not after["postponed"]
    _all_restore(
        repo,
        tmp_path,
        {("vol", second["backup"]): bytes(v2), ("clone", result["backup"]): bytes(v1)},
    )

    # Forget the clone: its half goes after a mark and a sweep, and only that.
    manifests.delete(repo, "snapshot", "clone", result["backup"])
    before = stats(repo)["pack_bytes"]
    prune.prune(repo, grace_s=0)
    final = prune.prune(repo, grace_s=0)
    assert final["deleted_packs"] >= 2
    assert stats(repo)["pack_bytes"] <= before - 8 * MiB
    assert rcheck.check(repo, read_data=1.0)["ok"]
    _all_restore(repo, tmp_path, {("vol", second["backup"]): bytes(v2)})


def test_a_backup_after_a_mark_stores_marked_chunks_again(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prune, "SKEW_S", 0)
    repo = Repository.open(store)
    data = _volume(tmp_path / "v", 6 * MiB)
    first = rbackup.backup(repo, str(tmp_path / "v"), kind="snapshot", name="v")
    manifests.delete(repo, "snapshot", "v", first["backup"])
    assert prune.prune(repo, grace_s=0)["marked_packs"] == 2
    runner = PausingRunner()
    result: dict[str, Any] = {}
    t = _in_thread(result, repo, tmp_path / "v", "v", runner)
    assert runner.started.wait(30)
    time.sleep(0.01)
    swept = prune.prune(repo, grace_s=0)  # the backup saw the mark: the sweep may go on
    assert swept["deleted_packs"] == 2
    runner.go.set()
    t.join(30)
    assert result["new_chunks"] == 6 and result["reused_chunks"] == 0
    assert _restore_bytes(repo, "v", result["backup"], tmp_path / "out") == bytes(data)


def test_check_names_missing_and_corrupt_chunks_and_who_needs_them(
    store: str, tmp_path: Path
) -> None:
    repo = Repository.open(store)
    _volume(tmp_path / "v", 9 * MiB)
    b = rbackup.backup(repo, str(tmp_path / "v"), kind="snapshot", name="v")
    assert rcheck.check(repo, read_data=1.0)["ok"]
    objects = memory._OBJECTS["vault"]
    data_keys = sorted(k for k in objects if k.startswith("repository/data/"))
    first = bytearray(objects[data_keys[0]])
    first[10] ^= 0x80
    objects[data_keys[0]] = bytes(first)
    assert rcheck.check(repo)["ok"]  # sizes still match: only reading finds it
    report = rcheck.check(repo, read_data=1.0)
    assert not report["ok"] and len(report["corrupt"]) == 1
    assert report["corrupt"][0]["needed_by"] == [f"snapshot v/{b['backup']}"]
    bad = report["corrupt"][0]["id"][:16]
    with pytest.raises(VerificationFailed, match=rf"chunk at offset \d+ \(id {bad}.* is corrupt"):
        restore.restore(repo, "snapshot", "v", b["backup"], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    del objects[data_keys[-1]]
    report = rcheck.check(repo)
    assert any("missing from the store" in e for e in report["errors"])
    assert report["missing"] and report["missing"][0]["needed_by"] == [f"snapshot v/{b['backup']}"]
    with pytest.raises(ObjectNotFound, match=r"chunk.* in no pack"):
        restore.restore(repo, "snapshot", "v", b["backup"], str(tmp_path / "out"))


def test_an_interrupted_backup_is_reused_from_its_packs(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup that dies after storing some ranges (and whose index never got written)
    leaves no manifest; the next backup indexes its packs from their headers and reuses
    every chunk they hold."""
    from mover.repository import source

    monkeypatch.setattr(source, "RANGE_BYTES", 4 * MiB)
    repo = Repository.open(store)
    data = _volume(tmp_path / "v", 13 * MiB)

    class Dies(ThreadRunner):
        def map(self, task: str, payloads: Sequence[dict[str, Any]]) -> Iterator[Any]:
            for i, r in super().map(task, payloads):
                yield i, r
                raise KeyboardInterrupt  # after the first range

    with pytest.raises(KeyboardInterrupt):
        rbackup.backup(repo, str(tmp_path / "v"), kind="snapshot", name="v", runner=Dies(1))
    assert manifests.listing(repo) == []
    for k in [k for k in memory._OBJECTS["vault"] if k.startswith("repository/index/")]:
        del memory._OBJECTS["vault"][k]  # as after kill -9: no index written
    index.forget_cached()
    again = rbackup.backup(repo, str(tmp_path / "v"), kind="snapshot", name="v")
    assert again["rebuilt_index"] and again["reused_chunks"] == 4
    assert again["new_chunks"] == 13 - 4
    # One index file names both the killed run's packs and the new ones (no extra object).
    assert len([k for k in memory._OBJECTS["vault"] if k.startswith("repository/index/")]) == 1
    out = tmp_path / "out"
    assert _restore_bytes(repo, "v", again["backup"], out) == bytes(data)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_config_is_validated() -> None:
    with pytest.raises(UsageError, match="encryption"):
        RepoConfig(id="x", encryption="rot13")
    with pytest.raises(UsageError, match="compression"):
        RepoConfig(id="x", compression="gzip")
    cfg = RepoConfig(id="x")
    assert RepoConfig.from_bytes(cfg.to_bytes(), "here") == cfg
    with pytest.raises(VerificationFailed):
        RepoConfig.from_bytes(b"{not json", "here")


def test_templates_in_repositories_share_chunks_and_copies_move_only_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region template in the region store's repository; a volume cloned from it stores only
    its own chunk there; copies to zone a (whose repository shares the region's key) move only
    the chunks zone a lacks; zone b's repository has its own key, so its copy re-keys every
    chunk; every export is the image."""
    monkeypatch.setenv(KEY_ENV, "region passphrase")
    monkeypatch.setenv("ZONE_B_KEY", "another passphrase")
    (tmp_path / "za").mkdir()
    cat.add_zone("a")
    cat.add_zone("b")
    opts = {keys.KEY_ENV: KEY_ENV}
    cat.add_store("region", "memory://region/", scope="region", options=opts)
    cat.add_store("za", f"file://{tmp_path}/za/", scope="zone:a", options=opts)
    cat.add_store("zb", "memory://zb/", scope="zone:b", options={keys.KEY_ENV: "ZONE_B_KEY"})
    Repository.init("region")
    Repository.init("za", like="region")
    image = _volume(tmp_path / "base.qcow2", 8 * MiB)
    base = cat.register_template("base", str(tmp_path / "base.qcow2"), repository=True)
    assert base["ok"] and base["copies_run"][0]["new_chunks"] == 8

    clone = bytearray(image)
    clone[3 * MiB] ^= 1
    (tmp_path / "vm1.img").write_bytes(clone)
    snap = cat.backup_snapshot(str(tmp_path / "vm1.img"), "region")
    assert snap["chunks_sent"] == 1 and snap["reused_chunks"] == 7  # the template's chunks

    first = cat.copy_template("base", "a")
    assert first["ok"] and first["copies_run"][0]["copied_chunks"] == 8
    variant = bytearray(image)
    variant[5 * MiB + 1] ^= 1
    (tmp_path / "base2.qcow2").write_bytes(variant)
    cat.register_template("base2", str(tmp_path / "base2.qcow2"), repository=True)
    second = cat.copy_template("base2", "a")
    run = second["copies_run"][0]
    assert run["same_keys"] and run["copied_chunks"] == 1 and run["present_chunks"] == 7

    other = cat.copy_template("base", "b")["copies_run"][0]
    assert not other["same_keys"] and other["copied_chunks"] == 8
    assert cat.locate_template("base", "a")["format"] == "repository"
    for zone in ("a", "b"):
        out = tmp_path / f"export-{zone}.img"
        cat.export_template("base", str(out), zone=zone)
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(image).digest()
    cat.delete_template("base")
    assert not [k for k in memory._OBJECTS["zb"] if k.startswith("repository/templates/")]
    assert [n for _k, n, _b in manifests.listing(Repository.open("za"))] == ["base2"]


def test_zero_runs_stay_holes_only_in_files(tmp_path: Path) -> None:
    """A new or regular file keeps zero runs as holes; anything else on this host (a FIFO here,
    a block device in use) and a store without local paths get their zeros written."""
    from mover.resolve import open_location

    store, loc = open_location(str(tmp_path / "new.img"))
    assert restore.holes_stay(store, loc.full_key)
    (tmp_path / "old.img").write_bytes(b"x")
    store, loc = open_location(str(tmp_path / "old.img"))
    assert restore.holes_stay(store, loc.full_key)
    os.mkfifo(tmp_path / "fifo")
    store, loc = open_location(str(tmp_path / "fifo"))
    assert not restore.holes_stay(store, loc.full_key)
    store, loc = open_location("memory://m/x.img")
    assert not restore.holes_stay(store, loc.full_key)


def test_a_key_left_by_a_killed_init_is_not_taken(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first backup killed between writing its key and its config leaves a key that the
    same passphrase opens: the next init's repository must not be read with it (its config
    names the key it belongs to), whatever order the keys are listed in."""
    orphan = crypto.wrap(crypto.MasterKey.generate(), b"unit passphrase")
    for name in ("0" * 64, "f" * 64):  # listed before and after the real key
        memory._OBJECTS["vault"][f"repository/keys/{name}"] = orphan
    repo = Repository.open(store)  # the key its init made, as that process still holds it
    data = _volume(tmp_path / "v", 3 * MiB)
    made = rbackup.backup(repo, str(tmp_path / "v"), kind="snapshot", name="v")
    keys.forget_unlocked()
    index.forget_cached()
    again = Repository.open(store)
    assert _restore_bytes(again, "v", made["backup"], tmp_path / "out") == bytes(data)
