"""Pieces the built-in motion strategies share: planning a chunked write and checking receipts.

Third-party strategies may use these too; nothing here names a protocol.
"""

from __future__ import annotations

from mover.digests import Digest
from mover.errors import ChunkFailed, VerificationFailed
from mover.motion import Endpoint, Options, Plan
from mover.planning import choose_chunk_size, make_chunks
from mover.sparse import bytes_to_store
from mover.store import ObjectInfo, PartLimits, PartReceipt


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
    chunks = make_chunks(size, chunk_size)
    plan = Plan(
        strategy=name,
        size=size,
        chunk_size=chunk_size,
        chunks=chunks,
        algorithm=pick_algorithm(destination),
        bytes_through=size,
        notes=notes,
    )
    most = destination.caps.atomic_put_max_bytes
    fits = most > 0 and size is not None and size <= most
    if allow_put and fits and len(chunks) == 1:
        # One chunk, one atomic request: no upload to begin, commit or abort.
        plan.put = True
        plan.notes.append("written whole by one atomic put")
        return plan
    plan.writer = destination.store.open_writer(destination.key, size, chunk_size).state()
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
        # The put already made the object visible, atomically.
        return ObjectInfo(destination.key, sum(r.size for r in receipts))
    writer = destination.store.resume_writer(destination.key, plan.writer)
    size = sum(r.size for r in receipts)
    return writer.commit(sorted(receipts, key=lambda r: r.part), size)


def abort_writer(destination: Endpoint, plan: Plan) -> None:
    if plan.writer:
        destination.store.resume_writer(destination.key, plan.writer).abort()
