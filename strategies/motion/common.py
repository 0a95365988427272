"""Pieces the built-in motion strategies share: planning a chunked write and checking receipts.

Third-party strategies may use these too; nothing here names a protocol.
"""

from __future__ import annotations

import logging

from mover import verify
from mover.buffers import chunk_buffer
from mover.digests import Digest, digest
from mover.errors import ChunkFailed, VerificationFailed
from mover.motion import Chunk, ChunkContext, Endpoint, Options, Plan, Priority
from mover.planning import aligned_chunks, choose_chunk_size, make_chunks, slice_lengths
from mover.provider import MiB, ObjectInfo, PartLimits, PartReceipt, SourceCheck
from mover.sparse import bytes_to_store

log = logging.getLogger("mover.verify")

#: A chunk is read in slices of at most this much, so that progress and cancellation are
#: seen within a slice rather than a whole part.
READ_SLICE_BYTES = 16 * MiB


def when(priority: Priority, *needs: bool) -> Priority:
    """``priority`` if every one of ``needs`` holds, else ``CANT_HANDLE``: a strategy's
    ``can_handle`` written as the list of what it needs of the pair."""
    return priority if all(needs) else Priority.CANT_HANDLE


def known_size(endpoint: Endpoint) -> int | None:
    """The size of the endpoint's object; None when unknown (not stat'ed, or a stream)."""
    return endpoint.info.size if endpoint.info is not None else None


def writes_chunks(destination: Endpoint) -> bool:
    """Whether ``destination`` takes an object written in chunks (parts)."""
    return bool(destination.caps.writable and destination.caps.chunk_writer)


def pick_algorithm(destination: Endpoint) -> str:
    """The best digest the destination can confirm."""
    return destination.caps.checksum_algorithms[0]


def chunked_plan(
    name: str,
    source: Endpoint,
    destination: Endpoint,
    options: Options,
    size: int | None,
    allow_put: bool = False,
) -> Plan:
    """Plan chunks within the destination's part limits and open its writer; with
    ``allow_put``, an object of one chunk that the store can put atomically gets no writer."""
    limits = destination.caps.chunk_writer or PartLimits()
    chunk_size, notes = choose_chunk_size(
        size, limits, options.chunk_size, options.streams, where=destination.store.describe()
    )
    destination.store.check_writable(destination.key, _needed(source, destination, size))
    check = plan_source_check(source)
    slices: list[int] = []
    if check is not None and check.fixed_ranges and size is not None:
        chunks, slices = aligned_chunks(check.ranges(), chunk_size, limits)
    else:
        chunks = make_chunks(size, chunk_size)
    plan = Plan(
        strategy=name,
        size=size,
        chunk_size=chunk_size,
        chunks=chunks,
        algorithm=pick_algorithm(destination),
        bytes_through=size,
        notes=notes + source_notes(check, slices),
        source=check.to_dict() if check is not None else None,
        slices=slices,
    )
    most = destination.caps.atomic_put_max_bytes
    fits = most > 0 and size is not None and size <= most
    if allow_put and fits and len(chunks) == 1 and not slices:
        # One chunk, one atomic request: no upload to begin, commit or abort.
        plan.put = True
        plan.notes.append("written whole by one atomic put")
        return plan
    plan.writer = destination.store.open_writer(destination.key, size).state()
    return plan


def _needed(source: Endpoint, destination: Endpoint, size: int | None) -> int | None:
    """Space the object takes at the destination: a sparse source's data only, where the
    destination keeps holes."""
    allocated = source.info.allocated if source.info is not None else None
    return bytes_to_store(source.store, source.key, size, allocated, destination.store)


def confirm(receipt: PartReceipt, expected: Digest, where: str) -> PartReceipt:
    """Refuse a receipt whose store-confirmed digest is not the one read."""
    if receipt.digest != str(expected):
        raise VerificationFailed(
            f"{where} part {receipt.part}: read {expected}, store confirmed {receipt.digest}",
            retryable=True,
        )
    return receipt


def short_read(where: str, offset: int, want: int, got: int) -> ChunkFailed:
    return ChunkFailed(
        f"{where} ended at {offset + got} while {want} bytes were expected from {offset}: "
        "the source changed or shrank during the copy",
        retryable=False,
    )


def commit_writer(
    source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
) -> ObjectInfo:
    if plan.put:
        # The put already made the object visible, atomically (checked before it was sent).
        return ObjectInfo(destination.key, sum(r.size for r in receipts))
    verify_before_commit(source, destination, plan, receipts)
    writer = destination.store.resume_writer(destination.key, plan.writer)
    parts = flatten(receipts)
    return writer.commit(parts, sum(r.size for r in parts))


def abort_writer(destination: Endpoint, plan: Plan) -> None:
    if plan.writer:
        destination.store.resume_writer(destination.key, plan.writer).abort()


# -- checking the source (mover.verify): small helpers the strategies call --------------------


def plan_source_check(source: Endpoint) -> SourceCheck | None:
    """The source provider's :class:`SourceCheck` for the object, held to the version the job
    was prepared from (``source.info.etag``); None when nothing is known of the source."""
    if source.info is None:
        return None
    return source.store.source_check(source.key, source.info)


def source_notes(check: SourceCheck | None, slices: list[int]) -> list[str]:
    """What the plan's record says of the source check (``mover status`` shows notes)."""
    notes: list[str] = []
    if check is None:
        return notes
    if check.checks_bytes:
        notes.append(f"source bytes checked against {check.what or check.algorithm}")
    if check.live:
        notes.append(
            "the source is live (a device in use): changes during the copy cannot be "
            "detected; snapshot the volume first (LVM, the hypervisor) for a consistent copy"
        )
    if slices:
        notes.append(
            f"{sum(1 for n in slices if n > 1)} chunk(s) hold a source range larger than a "
            "chunk: read in order, in slices, one stream each"
        )
    return notes


def source_check(plan: Plan) -> SourceCheck | None:
    """The plan's :class:`SourceCheck`, parsed once per plan object."""
    if plan.source is None:
        return None
    cached = plan.__dict__.get("_source_check")
    if cached is None:
        cached = SourceCheck.from_dict(plan.source)
        plan.__dict__["_source_check"] = cached
    return cached


def source_where(source: Endpoint) -> str:
    """The source for messages: its URL without a query (which may hold a signature)."""
    return source.location.url.split("?", 1)[0]


def read_source(source: Endpoint, check: SourceCheck | None, offset: int, buf: memoryview) -> int:
    """One ranged read; pinned to the prepared version where the store can (``If-Match``)."""
    if check is not None and check.pinned and check.version:
        return source.store.read_version_into(source.key, check.version, offset, buf)
    return source.store.read_into(source.key, offset, buf)


def fill_from_source(
    source: Endpoint, check: SourceCheck | None, offset: int, buf: memoryview, ctx: ChunkContext
) -> int:
    """Fill ``buf`` from ``offset`` in slices (progress, cancellation); the count read."""
    got = 0
    while got < len(buf):
        ctx.check()
        piece = buf[got : min(len(buf), got + READ_SLICE_BYTES)]
        n = read_source(source, check, offset + got, piece)
        if n == 0:
            break
        got += n
        ctx.progress(n)
    return got


def digest_source(
    source: Endpoint, plan: Plan, offset: int, data: memoryview
) -> list[verify.Piece]:
    """Digest the source's ranges in ``data`` (read from ``offset``) and check them.

    Ranges with a known value are compared at once; when ``data`` is the whole object, so is
    the whole-object value, and (for reads not pinned to a version) the version: all before
    anything is written that cannot be taken back (an atomic put). Raises a retryable
    VerificationFailed on a mismatch, so the retry policy reads the chunk again.
    """
    check = source_check(plan)
    if check is None or not check.checks_bytes:
        if check is not None and plan.put and not check.pinned:
            verify.confirm_version(source.store, source.key, check, source_where(source))
        return []
    hasher = verify.RangeHasher(check, offset)
    hasher.update(data)
    pieces = hasher.finish()
    where = source_where(source)
    verify.check_expected(check, pieces, where)
    if offset == 0 and check.size is not None and len(data) == check.size:
        try:
            mismatch = verify.whole_mismatch(check, pieces, where)
        except verify.Unsettled:
            mismatch = None
        if mismatch is not None:
            raise VerificationFailed(mismatch + "; reading it again", retryable=True)
        if plan.put and not check.pinned:
            verify.confirm_version(source.store, source.key, check, where)
    return pieces


def with_pieces(receipt: PartReceipt, pieces: list[verify.Piece]) -> PartReceipt:
    """The receipt carrying the source digests of its chunk, for the check at commit."""
    if not pieces:
        return receipt
    return PartReceipt(
        receipt.part,
        receipt.offset,
        receipt.size,
        receipt.digest,
        {**receipt.extra, "source": pieces},
    )


def flatten(receipts: list[PartReceipt]) -> list[PartReceipt]:
    """The destination's parts: a chunk written as several parts lists them in ``parts``."""
    out: list[PartReceipt] = []
    for r in sorted(receipts, key=lambda r: r.part):
        parts = r.extra.get("parts")
        if parts:
            out.extend(PartReceipt.from_dict(d) for d in parts)
        else:
            out.append(r)
    return out


def move_sliced(
    source: Endpoint,
    destination: Endpoint,
    plan: Plan,
    chunk: Chunk,
    ctx: ChunkContext,
    hasher: verify.RangeHasher | None = None,
) -> PartReceipt:
    """Move a chunk as one or more destination parts, read in order, in slices of at most a
    chunk's memory: for a source range too large to hold at once (its digest is computed in
    order across the slices), and for reading an object again at commit (``hasher`` then
    digests the whole object in order instead of this chunk alone)."""
    length = chunk.length or 0
    count = plan.slices[chunk.index] if plan.slices else 1
    first = sum(plan.slices[: chunk.index]) if plan.slices else chunk.index
    check = source_check(plan)
    own = hasher is None and check is not None and check.checks_bytes
    if own:
        assert check is not None
        hasher = verify.RangeHasher(check, chunk.offset)
    writer = destination.store.resume_writer(destination.key, plan.writer)
    where = source_where(source)
    parts: list[PartReceipt] = []
    offset = chunk.offset
    for n, size in enumerate(slice_lengths(length, count)):
        data = chunk_buffer(size)
        got = fill_from_source(source, check, offset, data, ctx)
        if got != size:
            raise short_read(where, offset, size, got)
        if hasher is not None:
            hasher.update(data)
        expected = digest(plan.algorithm, data)
        receipt = writer.write_part(first + n, offset, data, expected)
        parts.append(confirm(receipt, expected, destination.store.describe()))
        offset += size
    pieces: list[verify.Piece] = []
    if own:
        assert hasher is not None and check is not None
        pieces = hasher.finish()
        verify.check_expected(check, pieces, where)
    if count == 1 and not plan.slices:
        return with_pieces(parts[0], pieces)
    extra: dict = {"parts": [p.to_dict() for p in parts]}
    if pieces:
        extra["source"] = pieces
    return PartReceipt(chunk.index, chunk.offset, length, "", extra)


def verify_before_commit(
    source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
) -> None:
    """Prove the object against the source before it is made visible.

    The version first (one ``stat`` unless every read was pinned to it), then the
    whole-object value from the chunks' range digests. On a mismatch the object is read once
    more, in order, every chunk rewritten (parts are idempotent) and digested anew: a byte
    flipped on the way the first time is then settled, and ``receipts`` are replaced in place.
    A second mismatch fails the object with what was compared with what; a source that
    changed fails it with SourceChanged. The caller aborts the write on any error.
    """
    check = source_check(plan)
    if check is None or plan.put:
        return
    where = source_where(source)
    if not check.pinned:
        verify.confirm_version(source.store, source.key, check, where)
    if not check.checks_bytes:
        return
    pieces = [p for r in receipts for p in r.extra.get("source", [])]
    try:
        mismatch = verify.whole_mismatch(check, pieces, where)
    except verify.Unsettled as exc:
        mismatch = f"{where}: the chunks' digests do not settle it ({exc})"
    if mismatch is None:
        return
    log.warning("%s; reading the object again before giving up", mismatch)
    if check.inferred:
        assert source.info is not None
        exact = source.store.source_check(source.key, source.info, exact=True)
        if exact.ranges() != check.ranges():
            plan.source = exact.to_dict()
            plan.__dict__.pop("_source_check", None)
            check = exact
    hasher = verify.RangeHasher(check, 0)
    ctx = ChunkContext()
    again = [move_sliced(source, destination, plan, c, ctx, hasher) for c in plan.chunks]
    pieces = hasher.finish()
    verify.check_expected(check, pieces, where)
    try:
        second = verify.whole_mismatch(check, pieces, where)
    except verify.Unsettled as exc:
        second = f"{where}: cannot be checked ({exc})"
    if not check.pinned:
        verify.confirm_version(source.store, source.key, check, where)
    if second is not None:
        raise VerificationFailed(
            f"{second}, twice (the object was read again after the first mismatch); the copy "
            "was aborted and nothing was committed: check the source (an ETag that is no MD5, "
            "as with SSE-KMS, cannot be checked) and run the copy again",
            retryable=False,
        )
    receipts[:] = again
