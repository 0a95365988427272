"""File to file on one host: the kernel copies, mover verifies.

Each chunk is copied with ``os.copy_file_range`` from the source file into the destination's
temporary file at the same offset: the kernel moves the pages (and on file systems that offer
it, such as XFS, Btrfs or NFS 4.2, shares extents or copies on the server instead). Where the
kernel cannot (``EXDEV``, ``ENOSYS``, ``EINVAL``), the slice is written with ``pwrite`` from the
buffer it was just read into.

Verification: each slice of the source is read (and digested for the chunk's receipt) before
the kernel copies it, and the destination's slice is read back and compared byte for byte, so
a copy is never reported done on the kernel's word alone.

Sparse sources: ``copy_file_range`` does not keep holes on ext4 (it writes zeros), so only the
source's data extents (``SEEK_DATA``/``SEEK_HOLE``) are copied, and of those only slices that
are not all zero; holes are neither read, nor copied, nor read back. A chunk that is one hole
costs no pass at all (its digest is cached); a chunk partly hole hashes its hole as zeros from
a cached block, which reads no disk. Block devices and other special files are left to the
other strategies (``copy_file_range`` takes regular files only).
"""

from __future__ import annotations

import errno
import os
import stat

from mover import osio
from mover.buffers import chunk_buffer, starts_with
from mover.digests import Digest, Hasher
from mover.errors import CannotHandle, ChunkFailed, VerificationFailed
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan, Priority
from mover.osio import start_writeback
from mover.provider import OBJECT, MiB, ObjectInfo, PartReceipt
from mover.sparse import feed_zeros, is_zero, zero_digest
from mover.strategies.motion.common import (
    abort_writer,
    chunked_plan,
    commit_writer,
    known_size,
    when,
)

#: Chunks are copied and verified in slices of this size, so that memory stays bounded (two
#: slices per thread: the source's and the read-back destination's).
VERIFY_SLICE_BYTES = 16 * MiB
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


class LocalStrategy(MotionStrategy):
    name = "local"
    summary = "kernel copy (copy_file_range, reflink where offered) between files on one host"

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        return when(
            Priority.OPTIMIZED,
            source.caps.local_path and destination.caps.local_path,
            destination.caps.chunk_writer and destination.caps.write_at,
            source.info is not None and source.info.kind == OBJECT,
            known_size(source) is not None,
        )

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        assert source.info is not None
        for path in (
            source.store.local_path(source.key),
            destination.store.local_path(destination.key),
        ):
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue  # a destination not there yet; a missing source fails in its chunk
            if not stat.S_ISREG(mode):
                raise CannotHandle(f"{path} is not a regular file: copy_file_range cannot take it")
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
            extents = osio.data_extents(fin, chunk.offset, length) if length else None
            if extents == []:  # one hole: nothing to read, copy or read back
                os.close(fin)
                ctx.progress(length)
                expected = zero_digest(plan.algorithm, length)
                return writer.write_zeros(chunk.index, chunk.offset, length, expected)
            fout = os.open(target, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            os.close(fin)
            raise ChunkFailed(f"opening the temporary file of {destination.key}: {exc}") from exc
        try:
            if extents is None:
                extents = [(chunk.offset, chunk.offset + length)]
            stored_digest = _copy_extents(fin, fout, chunk.offset, length, extents, plan, ctx)
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
        return PartReceipt(chunk.index, chunk.offset, length, str(stored_digest))

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        return commit_writer(source, destination, plan, receipts)

    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        abort_writer(destination, plan)


def _copy_extents(
    fin: int,
    fout: int,
    offset: int,
    length: int,
    extents: list[tuple[int, int]],
    plan: Plan,
    ctx: ChunkContext,
) -> Digest:
    """Copy and verify the data extents of ``[offset, offset + length)``; the range's digest.

    Holes between extents are digested as zeros (from a cached block) and left unwritten.
    """
    hasher = Hasher(plan.algorithm)
    buf = chunk_buffer(2 * min(max(length, 1), VERIFY_SLICE_BYTES))
    half = len(buf) // 2
    read, back = buf[:half], buf[half:]
    # ``read`` starts the thread's buffer, so ``starts_with(owner, back[:n])`` compares
    # read[:n] with back[:n] by memcmp.
    owner = buf.obj
    pos = offset
    for start, end in extents:
        if start > pos:
            feed_zeros(hasher, start - pos)
            ctx.progress(start - pos)
        pos = start
        while pos < end:
            ctx.check()
            step = min(end - pos, half)
            _read_exactly(fin, read[:step], pos, offset + length)
            hasher.update(read[:step])
            if not is_zero(read[:step]):  # zeros read from data stay a hole
                _kernel_copy(fin, fout, pos, read[:step])
                _read_exactly(fout, back[:step], pos, offset + length)
                if not starts_with(owner, back[:step]):
                    raise VerificationFailed(
                        f"the copy differs from the source in {step} bytes at {pos}",
                        retryable=True,
                    )
            pos += step
            ctx.progress(step)
    if pos < offset + length:
        feed_zeros(hasher, offset + length - pos)
        ctx.progress(offset + length - pos)
    return hasher.digest()


def _read_exactly(fd: int, view: memoryview, offset: int, expected_end: int) -> None:
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise ChunkFailed(
                f"source ended at {offset + got}, expected {expected_end}: "
                "the source changed or shrank during the copy"
            )
        got += n


def _kernel_copy(fin: int, fout: int, offset: int, data: memoryview) -> None:
    """Copy ``len(data)`` bytes at ``offset`` in the kernel; ``data`` (the same bytes, just
    read) is written instead where the kernel cannot copy between these files."""
    done = 0
    length = len(data)
    while done < length:
        try:
            n = os.copy_file_range(fin, fout, length - done, offset + done, offset + done)
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS:
                raise
            n = os.pwrite(fout, data[done:], offset + done)
        if n == 0:
            raise ChunkFailed(f"source ended at {offset + done}, expected {offset + length}")
        done += n
