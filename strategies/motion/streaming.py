"""The generic chunked stream: any ranged-readable source to any chunk-writable destination.

Each chunk is read with one or more ranged reads into this thread's reusable buffer, digested as
read, and written as one part; the destination confirms the digest of what it stored. Chunks
are independent, so executors run them in parallel, in threads or on workers.
"""

from __future__ import annotations

from mover.buffers import chunk_buffer
from mover.digests import digest
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan, Priority
from mover.store import MiB, ObjectInfo, PartReceipt
from mover.strategies.motion.common import (
    abort_writer,
    chunked_plan,
    commit_writer,
    confirm,
    short_read,
)

#: A chunk is read in slices of at most this much, so that progress and cancellation are
#: seen within a slice rather than a whole part.
READ_SLICE_BYTES = 16 * MiB


class StreamingStrategy(MotionStrategy):
    name = "streaming"
    summary = "chunks read by range and written as parts, in parallel"

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        if not (source.caps.readable and source.caps.ranged_read):
            return Priority.CANT_HANDLE
        if source.info is None or source.info.size is None:
            return Priority.CANT_HANDLE
        if not (destination.caps.writable and destination.caps.chunk_writer):
            return Priority.CANT_HANDLE
        if destination.caps.ordered_parts:  # parallel chunks would arrive out of order
            return Priority.CANT_HANDLE
        return Priority.DEFAULT

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        assert source.info is not None
        return chunked_plan(
            self.name, source, destination, options, source.info.size, allow_put=True
        )

    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        length = chunk.length or 0
        buf = chunk_buffer(length)
        got = 0
        while got < length:
            ctx.check()
            piece = buf[got : min(length, got + READ_SLICE_BYTES)]
            n = source.store.read_into(source.key, chunk.offset + got, piece)
            if n == 0:
                break
            got += n
            ctx.progress(n)
        if got != length:
            raise short_read(source.store.describe() + "/" + source.key, chunk.offset, length, got)
        ctx.check()
        data = buf[:length]
        expected = digest(plan.algorithm, data)
        if plan.put:
            info = destination.store.put(destination.key, data, expected)
            extra = {"etag": info.etag} if info.etag else {}
            return PartReceipt(chunk.index, chunk.offset, length, str(expected), extra)
        writer = destination.store.resume_writer(destination.key, plan.writer)
        receipt = writer.write_part(chunk.index, chunk.offset, data, expected)
        return confirm(receipt, expected, destination.store.describe())

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        return commit_writer(source, destination, plan, receipts)

    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        abort_writer(destination, plan)
