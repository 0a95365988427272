"""File to file on one host: the kernel copies, mover verifies.

Each chunk is copied with ``os.copy_file_range`` from the source file into the destination's
temporary file at the same offset: the kernel moves the pages (and on file systems that offer
it, such as XFS, Btrfs or NFS 4.2, shares extents or copies on the server instead). Where the
kernel cannot (``EXDEV``, ``ENOSYS``, ``EINVAL``), the chunk falls back to ``preadv`` and
``pwrite`` through this thread's buffer.

Verification: the chunk's source range and the destination range are read back and digested;
they must match, so a copy is never reported done on the kernel's word alone.
"""

from __future__ import annotations

import errno
import os

from mover.buffers import chunk_buffer
from mover.digests import digest
from mover.errors import CannotHandle, ChunkFailed, VerificationFailed
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan, Priority
from mover.osio import start_writeback
from mover.store import MiB, ObjectInfo, PartReceipt
from mover.strategies.motion.common import abort_writer, chunked_plan, commit_writer

#: Verification reads back in slices of this size, so that memory stays bounded.
VERIFY_SLICE_BYTES = 16 * MiB
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


class LocalStrategy(MotionStrategy):
    name = "local"
    summary = "kernel copy (copy_file_range, reflink where offered) between files on one host"

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        if not (source.caps.local_path and destination.caps.local_path):
            return Priority.CANT_HANDLE
        if not (destination.caps.chunk_writer and destination.caps.write_at):
            return Priority.CANT_HANDLE
        if source.info is None or source.info.size is None:
            return Priority.CANT_HANDLE
        return Priority.OPTIMIZED

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        assert source.info is not None
        return chunked_plan(self.name, source, destination, options, source.info.size)

    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        writer = destination.store.resume_writer(destination.key, plan.writer)
        target = writer.local_path()
        if target is None:
            raise CannotHandle(f"{destination.store.describe()} gave no local temporary file")
        src_path = source.store.local_path(source.key)
        length = chunk.length or 0
        try:
            fin = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ChunkFailed(f"opening {src_path}: {exc.strerror}") from exc
        try:
            fout = os.open(target, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            os.close(fin)
            raise ChunkFailed(f"opening the temporary file of {destination.key}: {exc}") from exc
        try:
            _kernel_copy(fin, fout, chunk.offset, length, ctx)
            source_digest, stored_digest = _verify(fin, fout, chunk.offset, length, plan, ctx)
            if length:
                start_writeback(fout, chunk.offset, length)
        except OSError as exc:
            raise ChunkFailed(
                f"copying {src_path} at {chunk.offset}: {exc.strerror or exc}",
                retryable=exc.errno in (errno.EIO, errno.EINTR, errno.EAGAIN),
            ) from exc
        finally:
            os.close(fin)
            os.close(fout)
        if source_digest != stored_digest:
            raise VerificationFailed(
                f"part {chunk.index} of {destination.key}: read {source_digest}, "
                f"stored {stored_digest}",
                retryable=True,
            )
        return PartReceipt(chunk.index, chunk.offset, length, str(stored_digest))

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        return commit_writer(source, destination, plan, receipts)

    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        abort_writer(destination, plan)


def _kernel_copy(fin: int, fout: int, offset: int, length: int, ctx: ChunkContext) -> None:
    done = 0
    while done < length:
        ctx.check()
        step = min(length - done, VERIFY_SLICE_BYTES)
        try:
            n = os.copy_file_range(fin, fout, step, offset + done, offset + done)
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS:
                raise
            n = _copy_through_buffer(fin, fout, offset + done, step)
        if n == 0:
            raise ChunkFailed(f"source ended at {offset + done}, expected {offset + length}")
        done += n


def _copy_through_buffer(fin: int, fout: int, offset: int, length: int) -> int:
    buf = chunk_buffer(length)
    n = os.preadv(fin, [buf], offset)
    written = 0
    while written < n:
        written += os.pwrite(fout, buf[written:n], offset + written)
    return n


def _verify(fin: int, fout: int, offset: int, length: int, plan: Plan, ctx: ChunkContext):
    """Digest the range on both sides; the source's digest is what mover read."""
    from mover.digests import Hasher

    src_h, dst_h = Hasher(plan.algorithm), Hasher(plan.algorithm)
    buf = chunk_buffer(min(length, VERIFY_SLICE_BYTES) or 1)
    pos = 0
    while pos < length:
        step = min(length - pos, len(buf))
        view = buf[:step]
        for fd, h in ((fin, src_h), (fout, dst_h)):
            got = os.preadv(fd, [view], offset + pos)
            if got != step:
                raise ChunkFailed(f"short read at {offset + pos} while verifying")
            h.update(view)
        pos += step
        ctx.progress(step)
    if length == 0:
        return digest(plan.algorithm, b""), digest(plan.algorithm, b"")
    return src_h.digest(), dst_h.digest()
