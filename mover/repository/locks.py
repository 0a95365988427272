"""Leases: how a prune knows which backups are running, and how a backup knows it may commit.

A backup (or template registration, or prune) writes ``locks/<id>`` when it starts and
rewrites it every :func:`refresh_s` seconds from a thread, then deletes it when it ends. A
lease is *live* while it was refreshed within :func:`stale_s` seconds, except that a lease of
this very host (same host name and boot id) whose process is gone is dead at once: a backup
killed with ``kill -9`` does not hold prunes back for ten minutes.

A backup checks its own lease before it writes its manifest: if it could not refresh it for
longer than the stale time (a process paused, a store unreachable), a prune may have counted
it dead and deleted chunks it reuses, so it fails instead of writing a manifest that could name
a missing chunk. Its chunks stay for the next backup to reuse.

``MOVER_REPO_LEASE_S`` sets the stale time (default 600 s; refreshes every sixth of it).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from mover.errors import MoverError, TransferError
from mover.hostid import BOOT, HOST, gone_here
from mover.repository.layout import LOCKS, is_id, new_id
from mover.repository.repo import Repository

LOCK_AAD = "mover-lock"


def stale_s() -> float:
    return float(os.environ.get("MOVER_REPO_LEASE_S") or 600)


def refresh_s() -> float:
    return max(0.5, stale_s() / 6)


@dataclass(frozen=True)
class LockInfo:
    """One lease as stored."""

    name: str
    kind: str  #: "backup" or "prune"
    owner: str  #: the backup id, or a description
    host: str
    boot: str
    pid: int
    started: float
    refreshed: float

    def alive(self, now: float | None = None) -> bool:
        if gone_here(self.host, self.boot, self.pid):
            return False
        return (now or time.time()) - self.refreshed < stale_s()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_locks(repo: Repository) -> list[LockInfo]:
    """Every lease in the repository, live or not (one that vanished meanwhile is skipped)."""
    out = []
    for obj in repo.list(LOCKS):
        if not is_id(obj.name):
            continue
        try:
            raw = repo.get_sealed(LOCKS + obj.name, LOCK_AAD)
        except MoverError:
            continue  # released between the listing and the read
        out.append(LockInfo(name=obj.name, **raw))
    return out


def remove_dead_here(repo: Repository) -> int:
    """Delete the leases of this host whose process is gone (killed with ``kill -9``): they can
    never be released, and nothing else knows for sure that they are dead (as restic removes
    its stale locks of the same host). Leases of other hosts wait for their stale time.
    Returns how many went."""
    gone = 0
    for lock in read_locks(repo):
        if gone_here(lock.host, lock.boot, lock.pid):
            with contextlib.suppress(MoverError):
                gone += bool(repo.delete(LOCKS + lock.name))
    return gone


class Lease:
    """A lease held while a backup or prune runs; a context manager."""

    def __init__(self, repo: Repository, kind: str, owner: str) -> None:
        self.repo = repo
        self.name = new_id()
        self.kind = kind
        self.owner = owner
        self.started = time.time()
        self.refreshed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def _write(self) -> None:
        now = time.time()
        info = LockInfo(
            self.name, self.kind, self.owner, HOST, BOOT, os.getpid(), self.started, now
        )
        body = info.to_json()
        del body["name"]
        self.repo.put_sealed(LOCKS + self.name, body, LOCK_AAD)
        self.refreshed = now

    def acquire(self) -> Lease:
        self._write()
        remove_dead_here(self.repo)
        self._thread = threading.Thread(target=self._loop, name="mover-lease", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(refresh_s()):
            try:
                self._write()
                self.error = None
            except MoverError as exc:
                self.error = exc.message  # tried again at the next tick; check() decides

    def check(self) -> None:
        """Raise if this lease may have been counted dead by a prune (see module docstring)."""
        age = time.time() - self.refreshed
        if age >= stale_s() * 0.8:
            raise TransferError(
                f"{self.repo.describe()}: this {self.kind}'s lease was last renewed {age:.0f} s "
                f"ago ({self.error or 'the process was paused'}); a prune may have removed "
                "chunks it reuses, so nothing was committed: run it again"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(MoverError):
            self.repo.delete(LOCKS + self.name)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
