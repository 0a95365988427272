"""One sequential stream, for sources that cannot seek (standard input, a compressed stream,
an HTTP server without ranges), and for destinations that take parts only in order (standard
output, sftp). The source is read through its own stream where it declares ``sequential_read``,
else by ranged reads in order (S3 to standard output).

The plan is a single chunk; running it reads the stream in chunk-size pieces into this thread's
buffer, digests each as read and writes it as the next part, in order. Memory stays at one
chunk. Such a transfer cannot be split across workers, and a failed one starts again from the
beginning, because the stream cannot be rewound.
"""

from __future__ import annotations

from mover import verify
from mover.buffers import chunk_buffer
from mover.digests import digest
from mover.errors import ChunkFailed, UsageError, VerificationFailed
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan, Priority
from mover.provider import ObjectInfo, PartReceipt
from mover.reading import can_read_sequentially, open_sequential
from mover.strategies.motion.common import (
    abort_writer,
    chunked_plan,
    confirm,
    flatten,
    known_size,
    read_source,
    source_check,
    source_where,
    when,
    writes_chunks,
)


class SingleStreamStrategy(MotionStrategy):
    name = "single-stream"
    summary = "one sequential read, parts written in order (sources that cannot seek)"

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        size = known_size(source)
        return when(
            Priority.FALLBACK,
            # A sequential reader of its own, or ranged reads in order (S3): never assumed.
            can_read_sequentially(source.caps, size),
            writes_chunks(destination),
            size is not None or destination.caps.streaming_write,
        )

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        size = known_size(source)
        plan = chunked_plan(self.name, source, destination, options, size)
        # One chunk covers the whole stream; its parts are plan.chunk_size each.
        plan.chunks = [Chunk(0, 0, size)]
        plan.slices = []
        return plan

    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        writer = destination.store.resume_writer(destination.key, plan.writer)
        limits = destination.caps.chunk_writer
        buf = chunk_buffer(plan.chunk_size)
        receipts: list[dict] = []
        offset = 0
        part = 0
        check = source_check(plan)
        hasher = verify.RangeHasher(check, 0) if check is not None and check.checks_bytes else None
        stream = open_sequential(
            source.store,
            source.key,
            plan.size,
            read=lambda offset, view: read_source(source, check, offset, view),
        )
        try:
            while True:
                ctx.check()
                got = _fill(stream, buf)
                if got == 0 and part > 0:
                    break
                if limits is not None and part >= limits.max_parts:
                    raise UsageError(
                        f"the stream is larger than {limits.max_parts:,} parts of "
                        f"{plan.chunk_size} bytes: give a larger --chunk-size"
                    )
                data = buf[:got]
                if hasher is not None:
                    hasher.update(data)
                expected = digest(plan.algorithm, data)
                receipt = writer.write_part(part, offset, data, expected)
                receipts.append(confirm(receipt, expected, destination.store.describe()).to_dict())
                ctx.progress(got)
                offset += got
                part += 1
                if got < len(buf):
                    break
        finally:
            stream.close()
        if chunk.length is not None and offset != chunk.length:
            raise ChunkFailed(
                f"{source.store.describe()}: stream gave {offset} bytes, expected {chunk.length}"
            )
        if hasher is not None:
            assert check is not None
            _check_stream(check, hasher.finish(), source_where(source))
        return PartReceipt(0, 0, offset, "", {"parts": receipts})

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        check = source_check(plan)
        if check is not None:
            # The stream was one GET, but not necessarily of the prepared version.
            verify.confirm_version(source.store, source.key, check, source_where(source))
        parts = flatten(receipts)
        writer = destination.store.resume_writer(destination.key, plan.writer)
        return writer.commit(parts, sum(p.size for p in parts))

    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        abort_writer(destination, plan)


def _check_stream(check, pieces: list, where: str) -> None:
    """The whole stream against the source's values; a mismatch reads it all again (retry)."""
    verify.check_expected(check, pieces, where)
    try:
        mismatch = verify.whole_mismatch(check, pieces, where)
    except verify.Unsettled as exc:
        mismatch = f"{where}: {exc}"
    if mismatch is not None:
        raise VerificationFailed(mismatch + "; reading it again", retryable=True)


def _fill(stream, buf: memoryview) -> int:
    """Read until ``buf`` is full or the stream ends (pipes return short reads)."""
    got = 0
    while got < len(buf):
        readinto = getattr(stream, "readinto", None)
        if readinto is not None:
            n = readinto(buf[got:])
        else:
            piece = stream.read(len(buf) - got)
            n = len(piece)
            buf[got : got + n] = piece
        if not n:
            break
        got += n
    return got
