"""The store provider contract: what every kind of storage implements.

A *provider* is a class registered under a URL scheme in the ``mover.providers`` entry-point
group. The core creates one instance per *store* (a bucket on an endpoint, a container on a
Swift account, a file-system root) through :meth:`StoreProvider.open`, and then speaks only
this contract. Strategies decide from :class:`Capabilities`, never from the provider's class.

Every method takes *full keys*: the key within the bucket, container or file system
(:attr:`Location.full_key`); a provider whose location has a ``root`` refuses keys outside it.

Required of every provider: :meth:`~StoreProvider.stat`, :meth:`~StoreProvider.read_into`
(or :meth:`~StoreProvider.open_read` for stream-only sources), :meth:`~StoreProvider.list`,
:meth:`~StoreProvider.delete`. Optional, advertised in :class:`Capabilities`: a chunk writer
(:meth:`~StoreProvider.open_writer`), server-side copy, a local path for kernel copies.
Optional per object, advertised in a :class:`SourceCheck` (:meth:`~StoreProvider.source_check`):
the store's own digests of the object's ranges and of the whole, and reads pinned to a version.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO, ClassVar

from mover.digests import Digest, digest
from mover.errors import PluginLoadError, TransferError, UsageError, VerificationFailed
from mover.location import Location
from mover.registry import PROVIDERS, Registry

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


#: :attr:`ObjectInfo.kind` of an ordinary object or file.
OBJECT = "object"
#: :attr:`ObjectInfo.kind` of a volume (a block device): a fixed size told by the device, read
#: by range, written in place (only when asked, ``--to-device``), and changed by others without
#: any mtime moving, so a copy of it cannot be checked for changes.
DEVICE = "device"
#: :attr:`ObjectInfo.kind` of a stream that exists only on this host (a pipe, a socket, a
#: character device, a ``/proc`` file): no size, read once from start to end.
STREAM = "stream"
#: A writer whose :meth:`ChunkWriter.state` holds this key writes its destination in place
#: (a device): its value names what ``abort`` cannot restore.
IN_PLACE = "in_place"


@dataclass(frozen=True)
class ObjectInfo:
    """What a store says of one object.

    Attributes:
        key: the full key within the store (:attr:`Location.full_key`: root and key joined).
        size: bytes, or None when the store cannot tell (a stream).
        etag: the store's ETag or equivalent, opaque.
        checksum: a digest the store holds for the whole object, ``algorithm:hex``.
        mtime: seconds since the epoch, or None.
        kind: :data:`OBJECT`, :data:`DEVICE` or :data:`STREAM`; the last two exist only on the
            host that stat-ed them (the fleet's workers cannot read them).
        allocated: bytes the store really holds for the object when fewer than ``size`` (a
            sparse file's data), for free-space checks; None: as ``size``.
    """

    key: str
    size: int | None
    etag: str | None = None
    checksum: str | None = None
    mtime: float | None = None
    kind: str = OBJECT
    allocated: int | None = None


#: How a whole-object value is made from the digests of the source's ranges (SourceCheck.combine).
COMBINE_ONE = "one"  #: one range, the whole object: its digest is the value (an MD5 ETag)
COMBINE_RAW = "raw"  #: algorithm over the ranges' raw digests end to end, then "-N" (S3 multipart)
COMBINE_HEX = "hex"  #: algorithm over the ranges' hex digests end to end (a Swift SLO's ETag)
COMBINE_CRC = "crc"  #: a CRC of the whole object: chunks' CRCs combine, any split will do
COMBINES = (COMBINE_ONE, COMBINE_RAW, COMBINE_HEX, COMBINE_CRC)


@dataclass(frozen=True)
class SourceCheck:
    """How reads of one object can be checked against values its store holds (not ones mover
    computed): what "verified" rests on. Made by :meth:`StoreProvider.source_check` when an
    object is planned, kept in the plan (JSON, so it reaches Celery workers and ``resume``),
    and read by strategies only; a strategy never asks which provider it has.

    Attributes:
        size: the object's size in bytes (None: a stream of unknown size).
        version: what identifies the object's content when the job was prepared (an ETag, a
            version id; for files inode, mtime and size). Compared again before commit: a
            source that changed while it was read fails the object (SourceChanged).
        pinned: every :meth:`StoreProvider.read_version_into` of this object fails with
            SourceChanged once the object is another version (``If-Match``), so no second look
            is needed before commit.
        algorithm: the digest the store's values use (``md5``, ``crc32c``, ``crc32``,
            ``crc64nvme``, ``sha256``); empty when the store holds none (files).
        combine: how the whole-object value is made from the ranges' digests: one of
            :data:`COMBINES`, or empty when there is no whole-object value.
        whole: the whole-object value, hex (for ``raw``, without the ``-N``).
        part_bytes: the ranges are this many bytes each from offset 0, the last shorter
            (S3 parts inferred uniform).
        sizes: the ranges' sizes in order, when they are not uniform (Swift SLO segments);
            with neither ``part_bytes`` nor ``sizes`` a ranged combine has one range.
        expected: each range's digest (hex) known before reading, "" where unknown (Swift
            segment ETags, AWS part checksums): a chunk is checked as soon as it is read.
        inferred: ``part_bytes`` was inferred from the first and last parts only; if the
            whole-object value disagrees, ask :meth:`StoreProvider.source_check` with
            ``exact=True`` before blaming the bytes.
        what: the store's value in words, for messages ("the S3 ETag (md5 of 16 parts)").
        live: the source's changes cannot be detected (a device in use); the plan notes it.
    """

    size: int | None
    version: str | None = None
    pinned: bool = False
    algorithm: str = ""
    combine: str = ""
    whole: str = ""
    part_bytes: int = 0
    sizes: tuple[int, ...] = ()
    expected: tuple[str, ...] = ()
    inferred: bool = False
    what: str = ""
    live: bool = False

    def __post_init__(self) -> None:
        if self.combine and self.combine not in COMBINES:
            raise ValueError(f"unknown combine {self.combine!r} (known: {', '.join(COMBINES)})")
        if self.combine and not self.algorithm:
            raise ValueError("a whole-object value needs an algorithm")

    @property
    def checks_bytes(self) -> bool:
        """True when read bytes are checked against the store's values (not only the version)."""
        return bool(self.algorithm and (self.combine or any(self.expected)))

    @property
    def fixed_ranges(self) -> bool:
        """True when digests are per fixed range of the source (chunks must align to them);
        False for a CRC, which any split of the object can be combined into."""
        return self.checks_bytes and self.combine != COMBINE_CRC

    def ranges(self) -> tuple[tuple[int, int], ...]:
        """``(offset, length)`` of each range, in order (empty for a CRC or no check)."""
        return self._ranges

    def range_starts(self) -> tuple[int, ...]:
        """The offset of each range, in order (for bisecting)."""
        return self._starts

    @cached_property
    def _ranges(self) -> tuple[tuple[int, int], ...]:
        # Computed once per instance: up to 10,000 S3 parts, asked by every chunk.
        if not self.fixed_ranges or self.size is None:
            return ()
        if self.sizes:
            out, offset = [], 0
            for n in self.sizes:
                out.append((offset, n))
                offset += n
            return tuple(out)
        if self.part_bytes:
            size, step = self.size, self.part_bytes
            return tuple((o, min(step, size - o)) for o in range(0, size, step)) or ((0, 0),)
        return ((0, self.size),)

    @cached_property
    def _starts(self) -> tuple[int, ...]:
        return tuple(o for o, _ in self._ranges)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "size": self.size,
            "version": self.version,
            "pinned": self.pinned,
            "algorithm": self.algorithm,
            "combine": self.combine,
            "whole": self.whole,
            "part_bytes": self.part_bytes,
            "sizes": list(self.sizes),
            "expected": list(self.expected),
            "inferred": self.inferred,
            "what": self.what,
            "live": self.live,
        }
        return {k: v for k, v in d.items() if v or k == "size"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceCheck:
        return cls(
            size=d.get("size"),
            version=d.get("version"),
            pinned=bool(d.get("pinned", False)),
            algorithm=d.get("algorithm", ""),
            combine=d.get("combine", ""),
            whole=d.get("whole", ""),
            part_bytes=int(d.get("part_bytes", 0)),
            sizes=tuple(d.get("sizes") or ()),
            expected=tuple(d.get("expected") or ()),
            inferred=bool(d.get("inferred", False)),
            what=d.get("what", ""),
            live=bool(d.get("live", False)),
        )


@dataclass(frozen=True)
class PartLimits:
    """How a chunk writer accepts parts (rclone's ChunkWriterInfo).

    Attributes:
        min_part_bytes: the smallest part but the last (S3: 5 MiB).
        max_part_bytes: the largest part (S3: 5 GiB).
        max_parts: how many parts one object may have (S3: 10,000).
        preferred_part_bytes: the part size this store does best with.
        single_put_below_bytes: objects smaller than this are better written as one part.
    """

    min_part_bytes: int = 1
    max_part_bytes: int = 1 << 62
    max_parts: int = 1 << 62
    preferred_part_bytes: int = 64 * MiB
    single_put_below_bytes: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a store can do, gathered once; the only thing strategies decide from.

    Attributes:
        ranged_read: ``read_into`` works at any offset, so chunks can be read in parallel.
        sequential_read: ``open_read`` gives a stream of the whole object (a store that reads
            only by range leaves it False: :func:`mover.reading.open_sequential` then builds
            the stream from ranged reads).
        listing: :meth:`StoreProvider.list` gives every object under a prefix; False: only the
            object named (HTTP, smart_open), so recursive copies, ``ls -r`` and ``sync`` of a
            folder are refused there.
        chunk_writer: parts can be written independently (possibly in parallel) and committed
            at the end; None when the store cannot.
        write_at: parts land at their byte offset in the object (files), so parts may be of any
            size and in any order.
        streaming_write: the store accepts an object of unknown size through the chunk writer
            (parts written in order, sizes told at commit).
        ordered_parts: parts must arrive in order, one at a time, at the writer of the process
            that opened it (a pipe, a stream-only SDK): only sequential strategies may write.
        atomic_put_max_bytes: objects up to this size can be written whole by
            :meth:`StoreProvider.put` in one atomic request (0: no ``put``). For small objects
            that is one request instead of begin, part and commit.
        server_side_copy: the store can copy from another store by itself for some pairs
            (ask :meth:`StoreProvider.can_copy_from` which).
        local_path: objects are files on this host, reachable at :meth:`StoreProvider.local_path`,
            so kernel copies (``copy_file_range``, reflinks) apply.
        sparse_write: zeros written through :meth:`ChunkWriter.write_zeros` (a source's holes)
            take no space: an object needs room for its data only (files).
        checksum_algorithms: digests the store can confirm per part, best first.
        readable, writable: whether the store can be a source, a destination.
    """

    ranged_read: bool = True
    sequential_read: bool = False
    listing: bool = True
    chunk_writer: PartLimits | None = None
    write_at: bool = False
    streaming_write: bool = False
    ordered_parts: bool = False
    atomic_put_max_bytes: int = 0
    server_side_copy: bool = False
    local_path: bool = False
    sparse_write: bool = False
    checksum_algorithms: tuple[str, ...] = ("xxh3_128",)
    readable: bool = True
    writable: bool = True


@dataclass(frozen=True)
class PartReceipt:
    """What a chunk writer says of one stored part: the proof a commit is built from.

    ``digest`` is the digest the *store* confirmed for the part's bytes; ``extra`` holds what
    the provider needs at commit (an S3 part ETag, a Swift segment name), JSON-serialisable.
    """

    part: int
    offset: int
    size: int
    digest: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "offset": self.offset,
            "size": self.size,
            "digest": self.digest,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartReceipt:
        return cls(d["part"], d["offset"], d["size"], d["digest"], dict(d.get("extra") or {}))


class ChunkWriter(abc.ABC):
    """Writes one object as numbered parts, then commits it, or aborts and cleans up.

    Modelled on rclone's ChunkWriter. Instances are cheap and may be re-created from
    :meth:`state` in another thread or process (a resumed job, another worker): every method
    must work on a writer opened with :meth:`StoreProvider.resume_writer`.
    """

    @abc.abstractmethod
    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        """Store ``data`` as part ``part`` (0-based) at byte ``offset`` of the object.

        Idempotent: writing the same part again replaces it. The store must confirm that it
        stored bytes whose digest is ``expected`` (a server-side checksum where the protocol
        has one) and raise :class:`~mover.errors.VerificationFailed` otherwise. Raise
        :class:`~mover.errors.TransferError` subclasses with ``retryable`` set for failures.
        """

    def write_zeros(self, part: int, offset: int, length: int, expected: Digest) -> PartReceipt:
        """Store ``length`` zero bytes as part ``part`` at ``offset`` (a hole of the source).

        ``expected`` is the digest of those zeros (:func:`mover.sparse.zero_digest`, cached).
        The default sends real zeros through :meth:`write_part`, which stores without holes
        (S3, Swift) must do anyway; a file store leaves a hole, a device writes zeros its
        fastest way. No byte of the source was read for this part.
        """
        return self.write_part(part, offset, memoryview(bytes(length)), expected)

    @abc.abstractmethod
    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        """Make the object visible, built from ``receipts`` in part order; called exactly once.

        ``size`` is the total byte count (known at commit even for streams). Must leave an
        existing object untouched if it fails.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Remove everything partial (temporary file, multipart upload, segments).

        Safe to call more than once and after a failed commit; never touches an existing,
        committed object.
        """

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """JSON-serialisable state to re-open this writer (temp path, upload id); no secret."""

    def local_path(self) -> str | None:
        """The file on this host that parts land in, if any (for kernel copies)."""
        return None


def confirm_digest(
    data: memoryview | bytes, expected: Digest, what: str, *, retryable: bool = True
) -> Digest:
    """The digest of ``data`` by ``expected``'s algorithm, which must equal ``expected``.

    A writer calls this on exactly the bytes it is about to hand to its store, where the store
    cannot confirm ``expected`` itself: bytes that changed after they were read (a flipped bit
    in memory) are then refused before they are stored, as :meth:`ChunkWriter.write_part`
    requires. Raises :class:`~mover.errors.VerificationFailed` naming ``what`` (retryable by
    default: the part read again is likely sound).
    """
    stored = digest(expected.algorithm, data)
    if stored != expected:
        raise VerificationFailed(
            f"{what}: read {expected}, would store {stored}", retryable=retryable
        )
    return stored


def digest_for_store(
    data: memoryview | bytes, expected: Digest, algorithm: str, what: str, *, retryable: bool = True
) -> Digest:
    """The ``algorithm`` digest of ``data``, for a store that confirms only that one (S3's
    crc32c, Swift's md5): ``expected`` itself when it is of that algorithm; otherwise
    ``expected`` is confirmed here first (:func:`confirm_digest`), since the store cannot."""
    if expected.algorithm == algorithm:
        return expected
    confirm_digest(data, expected, what, retryable=retryable)
    return digest(algorithm, data)


def check_receipts(receipts: list[PartReceipt], size: int, what: str) -> list[PartReceipt]:
    """Check that ``receipts``, in part order, cover ``size`` bytes from offset 0 without gap
    or overlap, and return them in that order. :meth:`ChunkWriter.commit` checks this before
    it makes the object: one built from parts that do not cover it would be wrong yet look
    whole. Raises :class:`~mover.errors.TransferError` naming ``what``."""
    ordered = sorted(receipts, key=lambda r: r.part)
    expect = 0
    for r in ordered:
        if r.offset != expect:
            raise TransferError(f"{what}: parts do not cover the object at {expect}")
        expect += r.size
    if expect != size:
        raise TransferError(f"{what}: parts hold {expect} bytes, expected {size}")
    return ordered


class StoreProvider(abc.ABC):
    """One store: a bucket, a container, a file-system root.

    Subclasses set :attr:`scheme` and implement the abstract methods. A provider must translate
    its vendor's exceptions into :mod:`mover.errors` at this boundary, and its messages must
    name the store and key but never a credential.
    """

    #: The URL scheme this provider serves (the entry-point name).
    scheme: ClassVar[str] = ""
    #: Whether URLs must name a bucket, container or host (``scheme://STORE/key``); a path-like
    #: store (files) sets False and takes ``scheme:///path``.
    needs_store: ClassVar[bool] = True
    #: Example URLs, for docs and ``mover plugins``.
    examples: ClassVar[tuple[str, ...]] = ()

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        self.location = location
        self.options = dict(options or {})

    @classmethod
    def open(cls, location: Location, options: dict[str, Any] | None = None) -> StoreProvider:
        """Create the store that holds ``location``; validate the URL's shape here.

        Must not do network I/O: the caller decides when to touch the store. Raise
        :class:`~mover.errors.BadLocation` for a URL this provider cannot serve.
        """
        return cls(location, options)

    @classmethod
    def store_id(cls, location: Location, options: dict[str, Any] | None = None) -> str:
        """A key under which one instance can serve several locations (bucket + endpoint)."""
        return f"{location.scheme}://{location.endpoint or location.store}/{location.root}"

    # -- what it can do ----------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """This store's :class:`Capabilities`; constant for the instance."""

    def describe(self) -> str:
        """A short, secret-free name for messages and logs (``s3://bucket`` at an endpoint)."""
        loc = self.location
        return f"{loc.scheme}://{loc.endpoint or loc.store}" if loc.scheme else str(loc)

    # -- reading ----------------------------------------------------------------------------

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, ETag or checksum and mtime of ``key``; raise ObjectNotFound if absent."""

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        """Fill ``buf`` with the object's bytes from ``offset``; return the count read.

        Called only when ``capabilities.ranged_read``. Must fill the buffer completely unless the
        object ends first. The hot path: read straight into ``buf``, without extra copies.
        """
        raise UsageError(f"{self.describe()} cannot read ranges")

    def open_read(self, key: str) -> BinaryIO:
        """A sequential stream of the whole object, for stores without ranged reads and for
        objects of unknown size (``stat`` said None), read once to the end. Called only when
        ``capabilities.sequential_read``; readers use :func:`mover.reading.open_sequential`."""
        raise UsageError(f"{self.describe()} cannot stream")

    def data_extents(self, key: str, offset: int, length: int) -> list[tuple[int, int]] | None:
        """Where ``key`` holds data within ``[offset, offset + length)``: ``(start, end)``
        pairs in order; every byte of the range outside them is a hole, known to read as zero
        without reading it (a sparse file). None when the store cannot tell or the object
        ends before the range does: read all of it. The default: None.
        """
        return None

    def source_check(self, key: str, info: ObjectInfo, exact: bool = False) -> SourceCheck:
        """How reads of ``key`` can be checked against this store's own values.

        Called once per object when it is planned, with ``info`` as recorded when the job was
        prepared (``info.etag`` is the version to hold to). Raise
        :class:`~mover.errors.SourceChanged` when the object is already another version.
        Keep it cheap: no request where the ETag or listing already tells (a small
        single-part object), a few for a large one. ``exact`` asks for range sizes that are
        known rather than inferred (after a whole-object mismatch).

        The default holds to the version only (``stat(key).etag`` compared before commit):
        right for any store whose ETag changes with the content.
        """
        return SourceCheck(size=info.size, version=info.etag)

    def read_version_into(self, key: str, version: str, offset: int, buf: memoryview) -> int:
        """:meth:`read_into`, refused with :class:`~mover.errors.SourceChanged` unless the object
        is still ``version`` (``If-Match``). Called only when the object's
        :class:`SourceCheck` says ``pinned``."""
        raise NotImplementedError(f"{self.describe()} cannot pin reads to a version")

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a folder ends in ``/``), recursively.

        Keys in the results are full keys relative to the store's root, as in ``stat``.
        """

    def exists(self, key: str) -> bool:
        from mover.errors import ObjectNotFound

        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    # -- writing ----------------------------------------------------------------------------

    def check_writable(self, key: str, size: int | None) -> None:
        """Raise before any byte moves if ``key`` cannot receive ``size`` bytes.

        The place for free-space checks, missing folders or buckets, permissions. For a
        store with ``sparse_write``, ``size`` is the bytes that will take space (a sparse
        source's data: :func:`mover.sparse.bytes_to_store`); for others the object's size.
        The default does nothing.
        """

    def is_folder(self, key: str) -> bool:
        """True if ``key`` names a folder (file stores): a copy into it keeps the file's name."""
        return False

    def make_parents(self, key: str) -> None:
        """Create what must exist above ``key`` before it is written (folders); default none."""

    def free_bytes(self, key: str) -> int | None:
        """Free space where ``key`` would be written, or None when the store cannot tell."""
        return None

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        """Begin writing ``key`` (``size`` bytes, None for a stream); parts come as the
        strategy planned them, within ``capabilities.chunk_writer`` (:class:`PartLimits`).

        Called only when ``capabilities.chunk_writer`` is set.
        """
        raise UsageError(f"{self.describe()} cannot be written")

    def put(self, key: str, data: memoryview, expected: Digest) -> ObjectInfo:
        """Store ``data`` as the whole object ``key`` in one atomic request.

        Called only for objects up to ``capabilities.atomic_put_max_bytes``. The object appears
        whole or not at all, and an existing object is replaced only when the put succeeds, so
        no commit is needed. As ``ChunkWriter.write_part``, the store must confirm ``expected``
        and raise :class:`~mover.errors.VerificationFailed` otherwise.
        """
        raise UsageError(f"{self.describe()} cannot put an object in one request")

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        """Re-open a writer from its :meth:`ChunkWriter.state` (another thread or worker)."""
        raise UsageError(f"{self.describe()} cannot resume a write")

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; raise ObjectNotFound if it does not exist."""

    # -- optional powers ----------------------------------------------------------------------

    def can_copy_from(self, source: StoreProvider) -> bool:
        """True if this store can copy an object of ``source`` by itself (same endpoint)."""
        return False

    def copy_server_side(
        self, source: StoreProvider, src_key: str, dst_key: str, size: int
    ) -> ObjectInfo:
        """Copy ``src_key`` of ``source`` to ``dst_key`` here, no bytes through mover."""
        raise NotImplementedError(f"{self.describe()} cannot copy server-side")

    def local_path(self, key: str) -> str:
        """The absolute path of ``key`` on this host (when ``capabilities.local_path``)."""
        raise NotImplementedError(f"{self.describe()} has no local paths")

    def sweep_abandoned(self, prefix: str) -> int:
        """Remove what writers that are certainly dead left under ``prefix`` (the temporary
        files of a process of this host killed with ``kill -9``); return how many. Only what
        is provably abandoned: a store that cannot tell leaves everything (the default)."""
        return 0

    def begin_batch(self) -> None:
        """An executor starts a job here: until :meth:`end_batch`, commits may be deferred
        and grouped (the file store commits small files in groups). Calls nest."""

    def end_batch(self) -> None:
        """The job's commits are over: make them all visible and durable (:meth:`flush`)."""
        self.flush()

    def flush(self) -> None:
        """Make every object this store committed durable and visible, where commits defer
        part of that (the file store syncs folders once per job, not once per file)."""

    def close(self) -> None:
        """Release connections and file descriptors."""


#: What each capability promises: the method a provider that declares it must implement
#: (override), so that a strategy that reads the capability never meets NotImplementedError.
CAPABILITY_METHODS: dict[str, str] = {
    "ranged_read": "read_into",
    "sequential_read": "open_read",
    "chunk_writer": "open_writer",
    "atomic_put_max_bytes": "put",
    "server_side_copy": "copy_server_side",
    "local_path": "local_path",
}


def unimplemented(provider: StoreProvider) -> list[str]:
    """``capability (method)`` for each capability ``provider`` declares without implementing
    its method; empty when its capabilities hold."""
    caps, cls = provider.capabilities, type(provider)
    return [
        f"{cap} ({method})"
        for cap, method in CAPABILITY_METHODS.items()
        if getattr(caps, cap) and getattr(cls, method) is getattr(StoreProvider, method)
    ]


#: (provider class, capabilities) pairs already found to hold.
_held: set[tuple[type, Capabilities]] = set()


def check_capabilities(provider: StoreProvider) -> None:
    """Raise PluginLoadError when ``provider`` declares a capability it does not implement
    (asked before strategies read capabilities, :func:`mover.dispatcher.rank`; each class
    and set of capabilities is checked once per process)."""
    key = (type(provider), provider.capabilities)
    if key in _held:
        return
    missing = unimplemented(provider)
    if not missing:
        _held.add(key)
    if missing:
        raise PluginLoadError(
            f"provider {type(provider).__module__}:{type(provider).__qualname__} declares "
            f"{', '.join(missing)} without implementing it: its strategies would fail; "
            "implement the method or leave the capability off"
        )


def _validate(plugin: Any) -> None:
    """A provider implements the required core (``stat``, ``list``, ``delete``)."""
    missing = [
        m
        for m in ("stat", "list", "delete")
        if getattr(plugin, m) is getattr(StoreProvider, m, None)
    ]
    if missing:
        raise TypeError(f"does not implement {', '.join(missing)}")


#: Every store provider, by URL scheme (checked against this contract when registered or
#: first loaded).
providers: Registry[type[StoreProvider]] = Registry(
    PROVIDERS,
    "provider",
    required=("open", "capabilities", "stat", "list", "delete", "read_into"),
    validate=_validate,
    contract=StoreProvider,
    instances=False,
)
