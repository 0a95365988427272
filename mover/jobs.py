"""Job records and the job-store contract.

A *job* is one request: a source and a destination (an object, or with ``recursive`` a prefix
of many objects). It holds one *item* per object, and each item the *chunks* its strategy
planned. Records outlive the process that ran them: ``mover jobs``, ``mover status`` and
``mover resume`` read them back. The embedded executor keeps them in SQLite
(:mod:`mover.jobstores.sqlite`); the fleet keeps them in Redis.

States. Job: ``pending`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``.
Item: ``pending`` -> ``running`` -> ``committing`` -> ``done`` | ``failed`` | ``cancelled``.
Chunk: ``pending`` -> ``done`` (or ``failed``, with its error).
"""

from __future__ import annotations

import abc
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mover.cleanup import PendingAbort

PENDING, RUNNING, COMMITTING, DONE, FAILED, CANCELLED = (
    "pending",
    "running",
    "committing",
    "done",
    "failed",
    "cancelled",
)
#: States a job or item does not leave.
FINAL = frozenset({DONE, FAILED, CANCELLED})


def new_job_id() -> str:
    """A short, sortable, unique id: time in hex then random bits."""
    return f"{int(time.time()):x}{os.urandom(4).hex()}"


@dataclass
class ChunkRecord:
    index: int
    offset: int
    length: int | None
    state: str = PENDING
    digest: str | None = None
    error: str | None = None
    receipt: dict[str, Any] | None = None


@dataclass
class Item:
    """One object of a job.

    ``version`` is the source's version when the job was prepared (its ETag, or inode, mtime
    and size for a file): every read and the commit hold the object to it, on any worker and
    after ``mover resume``, so a source that changes mid-copy fails instead of mixing.
    ``checksum`` is what the source's store said of the whole object then (``algorithm:hex``,
    :attr:`mover.provider.ObjectInfo.checksum`), which its provider may check reads against.
    """

    index: int
    source: str
    destination: str
    size: int | None = None
    state: str = PENDING
    strategy: str | None = None
    plan: dict[str, Any] | None = None
    digest: str | None = None
    error: str | None = None
    bytes_through: int | None = None
    chunks: list[ChunkRecord] = field(default_factory=list)
    version: str | None = None
    checksum: str | None = None

    @property
    def bytes_done(self) -> int:
        if self.state == DONE:
            return self.size or sum(c.length or 0 for c in self.chunks)
        return sum((c.length or 0) for c in self.chunks if c.state == DONE)


@dataclass
class Job:
    """One request and everything known of its progress."""

    id: str
    source: str
    destination: str
    state: str = PENDING
    recursive: bool = False
    executor: str = "embedded"
    options: dict[str, Any] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    error: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    finished: float | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @property
    def size(self) -> int | None:
        sizes = [i.size for i in self.items]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    @property
    def bytes_done(self) -> int:
        return sum(i.bytes_done for i in self.items)

    @property
    def digest(self) -> str | None:
        return self.items[0].digest if len(self.items) == 1 else None

    @property
    def notes(self) -> list[str]:
        """Remarks recorded when the job was made (a source read live, a device written in
        place); kept in ``options`` so that every job store keeps them."""
        return list(self.options.get("notes") or [])

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item.state] = out.get(item.state, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (``mover copy --json``, ``mover status --json``)."""
        strategies = sorted({i.strategy for i in self.items if i.strategy})
        through = [i.bytes_through for i in self.items]
        elapsed = (self.finished or time.time()) - self.created
        return {
            "id": self.id,
            "state": self.state,
            "source": self.source,
            "destination": self.destination,
            "recursive": self.recursive,
            "executor": self.executor,
            "strategies": strategies,
            "objects": len(self.items),
            "objects_by_state": self.counts(),
            "size": self.size,
            "bytes_done": self.bytes_done,
            "bytes_through_mover": None if None in through else sum(through),  # type: ignore[arg-type]
            "digest": self.digest,
            "notes": self.notes,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
            "seconds": round(elapsed, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobStore(abc.ABC):
    """Where job records live. Every method is safe to call from several threads.

    ``claim_commit`` is the one that must be atomic across every process sharing the store:
    it decides which caller commits an item, so that a commit runs exactly once even when
    chunks are delivered twice.
    """

    @abc.abstractmethod
    def create(self, job: Job) -> None:
        """Store a new job with its items and chunks."""

    @abc.abstractmethod
    def get(self, job_id: str) -> Job:
        """The whole job; a unique prefix of the id is enough. Raise JobNotFound."""

    @abc.abstractmethod
    def list(self, limit: int = 20) -> list[Job]:
        """The newest jobs, newest first, without their chunks."""

    @abc.abstractmethod
    def save_item(self, job_id: str, item: Item) -> None:
        """Replace an item with its plan and chunks (after planning or re-planning)."""

    @abc.abstractmethod
    def chunk_done(self, job_id: str, item: int, chunk: int, receipt: dict[str, Any]) -> int:
        """Mark a chunk done with its receipt; return how many chunks of the item are not."""

    def record_chunk(self, job_id: str, item: int, chunk: int, receipt: dict[str, Any]) -> None:
        """Record a chunk done when the caller does not need the count back; a store may
        defer the write (the embedded executor counts chunks itself)."""
        self.chunk_done(job_id, item, chunk, receipt)

    def flush(self) -> None:
        """Make every deferred write visible and durable as the store allows."""

    @abc.abstractmethod
    def update_item(self, job_id: str, item: int, **fields: Any) -> None:
        """Set an item's ``state``, ``digest``, ``error``, ``bytes_through``."""

    @abc.abstractmethod
    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set a job's ``state``, ``error``, ``finished``, ``owner``."""

    @abc.abstractmethod
    def claim_commit(self, job_id: str, item: int) -> bool:
        """Atomically move an item from ``running`` to ``committing``; True for the one caller
        that did, False for everyone else."""

    # -- pending aborts (mover.cleanup): an abort that met a dead store, to run again --------

    def clock(self) -> float:
        """Now, in seconds, on the clock the store's ``next_at`` times are kept in (the
        server's own for a store shared by many hosts)."""
        return time.time()

    @abc.abstractmethod
    def save_pending_abort(self, record: PendingAbort) -> None:
        """Record (or update) an abort to retry: one per job and object."""

    @abc.abstractmethod
    def pending_aborts(self, job_id: str | None = None) -> list[PendingAbort]:
        """Every pending abort (of one job), due or not."""

    @abc.abstractmethod
    def due_aborts(self, limit: int, hold_s: float) -> list[PendingAbort]:
        """Pending aborts whose time has come, at most ``limit``; each is held for ``hold_s``
        seconds (its ``next_at`` pushed forward) so that no other sweeper runs it meanwhile."""

    @abc.abstractmethod
    def drop_pending_abort(self, job_id: str, item: int) -> None:
        """Forget a pending abort (it succeeded, or was given up)."""
