"""Prune: delete packs no manifest needs, safely while backups run, in two phases.

Why two phases: a running backup decides to *reuse* a chunk that already exists long before it
writes the manifest that references it. Deleting every pack no manifest names right now would
delete chunks such a backup is about to reference. So:

- **Mark**: packs whose referenced chunks are all held by other kept packs (none at all, or
  duplicates) are listed in a trash file ``trash/<id>`` with the time. Nothing is deleted. From
  then on, every new backup's view excludes marked packs: it stores those chunks again
  rather than reuse them.
- **Sweep** (a later prune, at least ``grace`` after the mark): the manifests are read again;
  a marked pack is deleted only if (a) no live backup lease started before the mark (plus a
  clock-skew margin) — such a backup may have chosen to reuse its chunks — in which case the
  sweep is postponed and says by whom, and (b) every referenced chunk it holds is also in a
  pack that stays. Then one new index file replaces the old ones, the packs go, and the trash
  file last.

Interrupted anywhere, a prune loses nothing a manifest references: marks delete nothing; a
sweep deletes only packs decided from manifests read after every backup that could reuse them
had committed; an index file that still names a deleted pack is harmless (views drop packs the
store no longer lists, and range tasks treat a vanished index file as knowing less). Prunes
exclude each other with their own lease.
"""

from __future__ import annotations

import time
from typing import Any

from mover.errors import UsageError
from mover.repository.index import INDEX, TRASH_AAD, Packs, survey, write_index
from mover.repository.layout import TRASH, new_id, pack_key
from mover.repository.locks import Lease, read_locks
from mover.repository.references import all_manifests
from mover.repository.repo import Repository

#: Default seconds between a mark and its sweep (listing delays of eventually consistent stores).
GRACE_S = 15 * 60
#: Clock skew and listing delay allowed between hosts, in seconds.
SKEW_S = 60


def _blobs(packs: Packs, pid: str) -> set[bytes]:
    return {e.id for e in packs[pid][1]}


def keep_set(
    packs: Packs, candidates: list[str], kept: set[str], referenced: set[bytes]
) -> set[str]:
    """Among ``candidates``, the packs to keep so that every referenced chunk stays in some
    pack of ``kept`` or of the result (greedy: packs holding more referenced chunks first)."""
    have: set[bytes] = set()
    for pid in kept:
        have |= _blobs(packs, pid) & referenced
    out: set[str] = set()
    ranked = sorted(candidates, key=lambda p: (-len(_blobs(packs, p) & referenced), p))
    for pid in ranked:
        needed = (_blobs(packs, pid) & referenced) - have
        if needed:
            out.add(pid)
            have |= needed
    return out


def prune(repo: Repository, *, grace_s: float = GRACE_S, dry_run: bool = False) -> dict[str, Any]:
    """Sweep marks that are due, then mark what is unreferenced now. Returns a report."""
    with Lease(repo, "prune", "prune") as lease:
        others = [
            lk
            for lk in read_locks(repo)
            if lk.kind == "prune" and lk.name != lease.name and lk.alive()
        ]
        if others:
            o = others[0]
            raise UsageError(
                f"{repo.describe()}: another prune is running (host {o.host}, pid {o.pid}, "
                f"since {time.ctime(o.started)}); try again when it ends"
            )
        s = survey(repo, rebuild=False)
        # Leases before manifests: a backup that ends between the two reads has written its
        # manifest before it released its lease, so it is seen one way or the other.
        now = time.time()
        backups = [lk for lk in read_locks(repo) if lk.kind == "backup" and lk.alive(now)]
        referenced: set[bytes] = set()
        count = 0
        for m in all_manifests(repo):
            referenced |= {bytes.fromhex(i) for i in m.ids()}
            count += 1

        # -- sweep -------------------------------------------------------------------------
        sweepable: set[str] = set()
        consumed: list[str] = []
        postponed: list[str] = []
        for tname, mark in sorted(s.trash.items()):
            age = now - float(mark["time"])
            if age < grace_s:
                postponed.append(f"mark {tname[:12]}: {age:.0f} s old, grace {grace_s:.0f} s")
                continue
            blockers = [b for b in backups if b.started < float(mark["time"]) + SKEW_S]
            if blockers:
                b = blockers[0]
                postponed.append(
                    f"mark {tname[:12]}: backup {b.owner} (host {b.host}) started before it "
                    "and is still running"
                )
                continue
            sweepable |= set(mark["packs"])
            consumed.append(tname)
        known = {p for p in s.packs if p in s.indexed}
        sweepable &= known
        stays = known - sweepable
        deletable = sweepable - keep_set(s.indexed, sorted(sweepable), stays, referenced)

        # -- mark ----------------------------------------------------------------------------
        alive = sorted(known - deletable)
        needed = keep_set(s.indexed, alive, set(), referenced)
        still_marked = {p for t, m in s.trash.items() if t not in consumed for p in m["packs"]}
        marks = [p for p in alive if p not in needed and p not in still_marked]

        report: dict[str, Any] = {
            "manifests": count,
            "referenced_chunks": len(referenced),
            "packs": len(s.packs),
            "stored_bytes": sum(s.packs.values()),
            "deleted_packs": len(deletable),
            "deleted_bytes": sum(s.packs[p] for p in deletable),
            "marked_packs": len(marks),
            "marked_bytes": sum(s.packs[p] for p in marks),
            "postponed": postponed,
            "unreadable_packs": sorted(s.unreadable),
            "index_files_before": len(s.index_files),
            "dry_run": dry_run,
            "grace_s": grace_s,
        }
        if dry_run:
            return report
        index_name = None
        if (
            deletable
            or len(s.index_files) > 1
            or set(s.indexed) - set().union(*(set(f) for f in s.index_files.values()))
        ):
            index_name = write_index(repo, {p: s.indexed[p] for p in alive})
        for pid in sorted(deletable):
            repo.delete(pack_key(pid))
        if index_name is not None:
            for name in s.index_files:
                repo.delete(INDEX + name)
        for tname in consumed:
            repo.delete(TRASH + tname)
        if marks:
            repo.put_sealed(TRASH + new_id(), {"time": now, "packs": marks}, TRASH_AAD)
        report["index_files_after"] = len(s.index_files) if index_name is None else 1
        return report
