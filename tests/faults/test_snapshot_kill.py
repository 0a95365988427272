"""``mover snapshot backup`` killed with SIGKILL after a chosen number of chunks reached the
store, then run again: the backup must then restore to bytes identical to the volume (read
back here with hashlib), and the store must hold no more than a clean run of the same
backups leaves (the killed run's chunks are either reused or removed, never orphaned).

Kinds: the first backup of a volume killed, or an incremental one (after a clean first
backup and a change to some of the volume's chunks). Stores: a folder and an S3 bucket.
The volume is a file whose reads are paced, so that chunks reach the store one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults import rigs
from tests.faults.harness import (
    MISSED,
    Fault,
    FileDest,
    MiB,
    Verdict,
    case_ids,
    conclude,
    count,
    judge,
    kind_of,
    rng,
    sha256_bytes,
    wait_until,
)

FAMILY = "snapshot_kill"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults, pytest.mark.s3]

KINDS = [("file", "first"), ("s3", "first"), ("file", "incremental"), ("s3", "incremental")]
CASES = count(6, 2)
PACE_S = 0.1


@pytest.fixture(scope="module")
def s3(s3_server: Any) -> Iterator[Any]:
    import boto3

    client = boto3.client("s3", **s3_server.client_kwargs())
    with rigs.bucket(client, "faults-snap"):
        yield client


@dataclass
class Store:
    """A backup store as the harness lists it: (key, size) of every object it holds."""

    name: str
    table: dict[str, Any]
    listing: Callable[[], list[tuple[str, int]]]


def _store(kind: str, name: str, folder: Path, s3: Any, s3_server: Any) -> Store:
    if kind == "file":
        root = folder / name
        root.mkdir()

        def files() -> list[tuple[str, int]]:
            return [(str(p), p.stat().st_size) for p in root.rglob("*") if p.is_file()]

        return Store(name, {"url": f"file://{root}/"}, files)
    prefix = f"{folder.name}/{name}/"

    def objects() -> list[tuple[str, int]]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="faults-snap", Prefix=prefix)
        return [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]

    table = {"url": f"s3://faults-snap/{prefix}", "endpoint_url": s3_server.endpoint_url}
    return Store(name, table, objects)


@dataclass
class SnapshotDest:
    """The snapshot as a destination: restored by mover, then read here; its leftovers are
    the objects the store holds beyond what a clean run of the same backups left."""

    restored: FileDest
    store: Store
    reference: Store

    @property
    def url(self) -> str:
        return self.restored.url

    def sha256(self) -> str | None:
        return self.restored.sha256()

    def leftovers(self) -> list[str]:
        """What the killed run left that a clean run would not have: a lease, a temporary file,
        chunk bytes stored twice (beyond a pack header's worth per extra pack), or an index
        file or manifest beyond one per backup that was committed."""
        mine, clean = _folders(self.store.listing()), _folders(self.reference.listing())
        problems = []
        for folder in ("locks", "temporary"):
            if mine.get(folder):
                problems.append(f"{mine[folder][0]} object(s) left in {folder}")
        extra_packs = max(0, mine.get("data", (0, 0))[0] - clean.get("data", (0, 0))[0])
        extra_data = mine.get("data", (0, 0))[1] - clean.get("data", (0, 0))[1]
        if extra_data > PACK_OVERHEAD * extra_packs:
            problems.append(f"{extra_data} more bytes of packs than a clean run stores")
        backups = mine.get("snapshots", (0, 0))[0] - clean.get("snapshots", (0, 0))[0]
        extra_index = mine.get("index", (0, 0))[0] - clean.get("index", (0, 0))[0]
        if backups < 0 or extra_index > backups:
            problems.append(f"{extra_index} more index file(s) for {backups} more backup(s)")
        return [f"{p} (by folder: {mine} against a clean run's {clean})" for p in problems]


#: A pack's own header and alignment: what one more pack may cost beyond its chunks.
PACK_OVERHEAD = 4096
REPO_FOLDERS = ("data", "index", "locks", "trash", "snapshots", "templates", "keys", "config")


def _folders(listing: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    """(objects, bytes) per repository folder; temporary files of killed writers apart."""
    out: dict[str, tuple[int, int]] = {}
    for key, size in listing:
        parts = key.split("/")
        if ".mover-" in parts[-1] and parts[-1].endswith(".part"):
            folder = "temporary"
        else:
            folder = next((p for p in parts if p in REPO_FOLDERS), "other")
        n, b = out.get(folder, (0, 0))
        out[folder] = (n + 1, b + size)
    return out


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_snapshot_kill(
    index: int,
    fault: Fault,
    s3_server: Any,
    s3: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    kind, moment = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    size = r.randint(5 * MiB, 8 * MiB)
    v1 = r.randbytes(size)
    n = -(-size // MiB)
    changed = sorted(r.sample(range(n), r.randint(2, n - 1)))
    v2 = bytearray(v1)
    for c in changed:
        v2[c * MiB : c * MiB + 100] = r.randbytes(100)
    volume_versions = [v1] if moment == "first" else [v1, bytes(v2)]
    sent = n if moment == "first" else len(changed)
    after = r.randint(1, sent - 1)
    streams = r.choice([1, 2])
    fault.params.update(store=kind, moment=moment, size=size, chunks=n, streams=streams)
    if moment == "incremental":
        fault.params["changed_chunks"] = changed
    fault.params["after_chunks"] = after

    store = _store(kind, "snaps", tmp_path, s3, s3_server)
    reference = _store(kind, "clean", tmp_path, s3, s3_server)
    for table in (store.table, reference.table):  # encrypted repositories, as users keep them
        table["repository_key_env"] = "MOVER_FAULT_REPO_KEY"
    rigs.write_config(tmp_path, {"snaps": store.table, "clean": reference.table})
    pace = rigs.Pace(tmp_path / "pace.json")
    env = rigs.mover_env(
        tmp_path, pace, MOVER_FAULT_REPO_KEY=f"passphrase-{index}", **s3_server.env()
    )
    volume = tmp_path / "vol" / "vol.img"
    volume.parent.mkdir()
    backup = ["snapshot", "backup", str(volume), "--name", "vol", "--chunk-size", "1MiB"]
    backup += ["--streams", str(streams)]

    # The clean reference: the same backups, never interrupted.
    for data in volume_versions:
        volume.write_bytes(data)
        out = rigs.run(env, tmp_path, *backup, "--to", "clean")
        assert out.returncode == 0, f"the clean reference backup failed: {out.stderr}"
    volume.write_bytes(v1)
    if moment == "incremental":
        out = rigs.run(env, tmp_path, *backup, "--to", "snaps")
        assert out.returncode == 0, f"the first backup failed: {out.stderr}"
        volume.write_bytes(bytes(v2))
    before = len(store.listing())

    pace.set([volume.parent], PACE_S)
    cli = rigs.start(env, tmp_path, *backup, "--to", "snaps")
    if wait_until(lambda: len(store.listing()) >= before + after, 60) and cli.alive():
        cli.kill()
        fault.injected = 1
    else:
        cli.result(60)
    pace.off()
    if not fault.injected:
        fault.outcome = MISSED
        conclude(fault, request.node.nodeid)
        return
    fault.params["objects_at_kill"] = len(store.listing()) - before

    runs = [rigs.run(env, tmp_path, *backup, "--to", "snaps")]
    dest = SnapshotDest(FileDest(tmp_path / "restored" / "vol.img"), store, reference)
    dest.restored.path.parent.mkdir()
    if runs[-1].returncode == 0:
        runs.append(
            rigs.run(env, tmp_path, "snapshot", "restore", "vol", dest.url, "--from", "snaps")
        )
    ok = all(x.returncode == 0 for x in runs)
    error = None if ok else runs[-1].stderr.strip()
    verdict = Verdict("done" if ok else "failed", error, runs)
    judge(fault, verdict, dest, {"volume": sha256_bytes(volume_versions[-1])})
    if not ok and fault.outcome != "bad":
        # A backup run again after a kill must succeed: the volume and the store are fine.
        fault.problems.append(f"the backup run again failed: {error}")
        fault.outcome = "bad"
    conclude(fault, request.node.nodeid)
