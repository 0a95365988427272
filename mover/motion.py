"""The motion strategy contract: how bytes get from one object to another.

Each strategy is registered in the ``mover.motion`` entry-point group. For a transfer, the
dispatcher (:mod:`mover.dispatcher`) asks every strategy :meth:`MotionStrategy.can_handle` and
takes the highest :class:`Priority`, ties going to the earlier name in a stable order. The
winner then :meth:`~MotionStrategy.plan` s the chunks; an executor runs
:meth:`~MotionStrategy.run_chunk` for each (in threads here, or as Celery tasks on workers) and
:meth:`~MotionStrategy.commit` once at the end, or :meth:`~MotionStrategy.abort`.

Plans and receipts are plain JSON-able data, so that a chunk can run in another process from
the plan alone; strategies keep no state between calls.
"""

from __future__ import annotations

import abc
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mover.digests import composite
from mover.errors import Cancelled
from mover.location import Location
from mover.provider import ObjectInfo, PartReceipt, StoreProvider
from mover.registry import MOTION, Registry


class Priority(enum.IntEnum):
    """How well a strategy fits a pair (CloudStack's StrategyPriority, with room for plugins).

    ``CANT_HANDLE`` is never chosen. ``FALLBACK`` works but should lose to anything real (a
    generic single stream). ``DEFAULT`` is the generic chunked stream. ``OPTIMIZED`` uses a
    power of the pair (kernel copy on one host). ``SERVER_SIDE`` lets a store copy by itself.
    ``PLUGIN`` sits above the built-ins for a vendor's own path; ``HIGHEST`` wins over all.
    """

    CANT_HANDLE = 0
    FALLBACK = 5
    DEFAULT = 10
    OPTIMIZED = 20
    SERVER_SIDE = 30
    PLUGIN = 35
    HIGHEST = 40


@dataclass(frozen=True)
class Endpoint:
    """One side of a transfer: the store, the location, and (for sources) what stat said."""

    store: StoreProvider
    location: Location
    info: ObjectInfo | None = None

    @property
    def key(self) -> str:
        return self.location.full_key

    @property
    def caps(self):  # -> Capabilities (kept untyped to avoid an import cycle in docs)
        return self.store.capabilities


@dataclass
class Chunk:
    """A byte range of the source; ``length`` None means "to the end of a stream"."""

    index: int
    offset: int
    length: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "offset": self.offset, "length": self.length}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chunk:
        return cls(d["index"], d["offset"], d["length"])


@dataclass
class Plan:
    """What a strategy decided for one object: JSON-able, enough to run a chunk anywhere.

    Attributes:
        strategy: the strategy's registered name.
        size: the source's size in bytes, or None for a stream.
        chunk_size: bytes per chunk (the destination's part size).
        chunks: the chunks, in order.
        algorithm: the digest algorithm chunks are verified with.
        writer: the destination writer's state (temp path, upload id), if any.
        put: the object is small enough to be written whole by one atomic ``put`` (no writer).
        bytes_through: how many bytes will pass through mover (0 for a server-side copy).
        notes: human-readable remarks on the choices (a part size raised to fit a limit).
        source: how reads of the source are checked (a :class:`~mover.provider.SourceCheck` as a
            dict), or None for a plan that checks nothing of the source.
        slices: destination parts per chunk, when some chunk is written as several parts
            (a source range larger than a chunk may hold, read in order); empty: one each.
    """

    strategy: str
    size: int | None
    chunk_size: int
    chunks: list[Chunk]
    algorithm: str = "xxh3_128"
    writer: dict[str, Any] = field(default_factory=dict)
    put: bool = False
    bytes_through: int | None = None
    notes: list[str] = field(default_factory=list)
    source: dict[str, Any] | None = None
    slices: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.source is not None:
            extra["source"] = self.source
        if self.slices:
            extra["slices"] = list(self.slices)
        return {
            "strategy": self.strategy,
            "size": self.size,
            "chunk_size": self.chunk_size,
            "chunks": [c.to_dict() for c in self.chunks],
            "algorithm": self.algorithm,
            "writer": self.writer,
            "put": self.put,
            "bytes_through": self.bytes_through,
            "notes": list(self.notes),
            **extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(
            strategy=d["strategy"],
            size=d["size"],
            chunk_size=d["chunk_size"],
            chunks=[Chunk.from_dict(c) for c in d["chunks"]],
            algorithm=d.get("algorithm", "xxh3_128"),
            writer=dict(d.get("writer") or {}),
            put=bool(d.get("put", False)),
            bytes_through=d.get("bytes_through"),
            notes=list(d.get("notes") or []),
            source=d.get("source"),
            slices=list(d.get("slices") or []),
        )


@dataclass
class Options:
    """Options a caller gives a transfer (``--streams``, ``--chunk-size``, ...).

    ``to_device``: the destination is a block device, to be overwritten in place
    (``--to-device``); without it a device destination is refused, so that a typo cannot
    overwrite a disk.
    """

    streams: int = 4
    chunk_size: int | None = None
    verify: bool = True
    to_device: bool = False


class ChunkContext:
    """What an executor gives a running chunk: progress reporting and cancellation.

    ``progress(n)`` is called as bytes move (from any thread); ``check()`` raises
    :class:`~mover.errors.Cancelled` once the job is cancelled, and strategies call it between
    reads so that a running chunk stops at its next read.
    """

    def __init__(
        self,
        progress: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self._progress = progress
        self._cancelled = cancelled or threading.Event()

    def progress(self, nbytes: int) -> None:
        if self._progress is not None and nbytes:
            self._progress(nbytes)

    def check(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("job cancelled")


class MotionStrategy(abc.ABC):
    """How to move one object between two stores.

    Subclasses set :attr:`name` and implement every method. ``can_handle`` must read only the
    endpoints' capabilities and locations (never a provider's class), do no I/O, and be fast:
    ``mover strategies`` calls it for every registered strategy.
    """

    name: ClassVar[str] = ""
    #: One line on what it does, shown by ``mover strategies``.
    summary: ClassVar[str] = ""

    @abc.abstractmethod
    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        """How well this strategy fits the pair; ``CANT_HANDLE`` when it cannot move it."""

    @abc.abstractmethod
    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        """Decide the chunks and begin the destination write (open its writer).

        Raise :class:`~mover.errors.ValidationError` subclasses when the object cannot fit the
        destination's limits, before any byte moves.
        """

    @abc.abstractmethod
    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        """Move one chunk and return the destination's receipt. Safe to run twice."""

    @abc.abstractmethod
    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        """Finish the object from all chunks' receipts; called exactly once per object.

        Before the object is made visible, the source is checked (its version, and the
        whole-object value of its :class:`~mover.provider.SourceCheck`). A strategy may read chunks
        again to settle a mismatch and then replaces their entries in ``receipts`` in place:
        executors compute the object's digest from that list after the commit.
        """

    @abc.abstractmethod
    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        """Remove everything partial; safe to call more than once."""

    def object_digest(self, plan: Plan, receipts: list[PartReceipt]) -> str:
        """The whole-object digest recorded on the job, built from the parts' digests (a chunk
        written as several parts lists them in ``extra["parts"]``)."""
        digests: list[str] = []
        for r in sorted(receipts, key=lambda r: r.part):
            parts = r.extra.get("parts")
            digests.extend([d["digest"] for d in parts] if parts else [r.digest])
        return composite(digests)


#: Every motion strategy, by name (entry-point group ``mover.motion``).
strategies: Registry[type[MotionStrategy] | MotionStrategy] = Registry(
    MOTION,
    "motion strategy",
    required=("can_handle", "plan", "run_chunk", "commit", "abort"),
    contract=MotionStrategy,
)
