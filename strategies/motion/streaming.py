"""The generic chunked stream: any ranged-readable source to any chunk-writable destination.

Each chunk is read with one or more ranged reads into this thread's reusable buffer, digested as
read, and written as one part; the destination confirms the digest of what it stored. Chunks
are independent, so executors run them in parallel, in threads or on workers.

A sparse source's holes are not read (:func:`mover.sparse.read_chunk`): a chunk that is one
hole costs no read and no hashing (its digest is cached) and goes to the writer's
``write_zeros`` (a hole in a file, zeros sent to S3 or Swift, which have no holes).
"""

from __future__ import annotations

from mover.buffers import chunk_buffer
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan, Priority
from mover.provider import ObjectInfo, PartReceipt
from mover.sparse import chunk_digest, read_chunk
from mover.strategies.motion.common import (
    abort_writer,
    chunked_plan,
    commit_writer,
    confirm,
    digest_source,
    known_size,
    move_sliced,
    read_source,
    short_read,
    source_check,
    when,
    with_pieces,
    writes_chunks,
)


class StreamingStrategy(MotionStrategy):
    name = "streaming"
    summary = "chunks read by range and written as parts, in parallel"

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        return when(
            Priority.DEFAULT,
            source.caps.readable and source.caps.ranged_read,
            known_size(source) is not None,
            writes_chunks(destination),
            not destination.caps.ordered_parts,  # parallel chunks would arrive out of order
        )

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        assert source.info is not None
        return chunked_plan(
            self.name, source, destination, options, source.info.size, allow_put=True
        )

    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        if plan.slices:  # a source range larger than a chunk: read in order, in slices
            return move_sliced(source, destination, plan, chunk, ctx)
        check = source_check(plan)
        length = chunk.length or 0
        buf = chunk_buffer(length)
        # Holes of a sparse source are not read; reads are pinned to the prepared version.
        filled = read_chunk(
            source.store,
            source.key,
            chunk.offset,
            buf,
            ctx,
            fill_holes=plan.put or bool(check is not None and check.checks_bytes),
            reader=lambda offset, view: read_source(source, check, offset, view),
        )
        got = filled.got
        if got != length:
            raise short_read(source.store.describe() + "/" + source.key, chunk.offset, length, got)
        ctx.check()
        data = buf[:length]
        pieces = digest_source(source, plan, chunk.offset, data)
        expected = chunk_digest(plan.algorithm, data, filled)
        if plan.put:
            info = destination.store.put(destination.key, data, expected)
            extra = {"etag": info.etag} if info.etag else {}
            receipt = PartReceipt(chunk.index, chunk.offset, length, str(expected), extra)
            return with_pieces(receipt, pieces)
        writer = destination.store.resume_writer(destination.key, plan.writer)
        if filled.hole:
            receipt = writer.write_zeros(chunk.index, chunk.offset, length, expected)
        else:
            receipt = writer.write_part(chunk.index, chunk.offset, data, expected)
        return with_pieces(confirm(receipt, expected, destination.store.describe()), pieces)

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        return commit_writer(source, destination, plan, receipts)

    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        abort_writer(destination, plan)
