"""Small operating-system helpers shared by the file store and the local strategy: write-back,
device sizes, holes (``SEEK_DATA``/``SEEK_HOLE``) and zeroing ranges (``fallocate``)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from typing import Any


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range of a file to disk now, without waiting for it.

    The final fdatasync then finds little left to do, instead of flushing a whole object at
    once after its last chunk. ``POSIX_FADV_DONTNEED`` starts write-back of the range's dirty
    pages and drops its clean ones (mover does not read them again). A no-op where the
    platform lacks it.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


# -- sizes, holes and zeros ------------------------------------------------------------------

#: fallocate(2) modes (linux/falloc.h).
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


def device_size(fd: int) -> int:
    """The size in bytes of the block device open as ``fd`` (``stat`` says 0 for devices).

    ``lseek(SEEK_END)`` answers what ``ioctl(BLKGETSIZE64)`` does, without a platform's
    ioctl numbers.
    """
    return os.lseek(fd, 0, os.SEEK_END)


def data_extents(fd: int, offset: int, length: int) -> list[tuple[int, int]] | None:
    """The ``(start, end)`` ranges within ``[offset, offset + length)`` of the regular file
    ``fd`` that hold data, found with ``SEEK_DATA``/``SEEK_HOLE``; the rest reads as zeros.

    None when the file ends before the range does (the caller reads and finds the short read),
    when the platform cannot tell (no ``SEEK_DATA``), or when the file is fully allocated (a
    file without holes answers in one ``fstat`` rather than two seeks per chunk).
    """
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        return None
    st = os.fstat(fd)
    end = offset + length
    if st.st_size < end or st.st_blocks * 512 >= st.st_size:
        return None
    out: list[tuple[int, int]] = []
    pos = offset
    while pos < end:
        try:
            start = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data from pos to the end of the file
                break
            return None
        if start >= end:
            break
        stop = os.lseek(fd, start, seek_hole)
        out.append((start, min(stop, end)))
        pos = stop
    return out


def _fallocate(fd: int, mode: int, offset: int, length: int) -> bool:
    """fallocate(2) through the C library; False where the file system or device refuses the
    mode (the caller falls back), an OSError for a real failure."""
    libc = _libc()
    if libc is None or length <= 0:
        return length <= 0
    if libc.fallocate(fd, mode, offset, length) == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV):
        return False
    raise OSError(err, os.strerror(err))


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Make a range of a file a hole (reads as zeros, holds no blocks); False if unsupported."""
    return _fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)


def zero_range(fd: int, offset: int, length: int) -> bool:
    """Zero a range of a block device the device's fastest way (WRITE ZEROES, or a hole in a
    loop device's file); False if the device refuses, and the caller writes zeros itself."""
    return _fallocate(fd, FALLOC_FL_ZERO_RANGE, offset, length)


def syncfs(fd: int) -> bool:
    """Flush the file system holding ``fd`` (syncfs(2)); False where the C library has none."""
    libc = _libc()
    return libc is not None and libc.syncfs(fd) == 0


@functools.cache
def _libc() -> Any:
    """The C library, loaded at first use: ``ctypes`` costs import time, and
    ``ctypes.util.find_library`` runs ``ldconfig -p`` in a subprocess, so neither is paid by
    a command that never punches a hole or syncs a file system. The process's own symbols
    (``CDLL(None)``) hold the C library on Linux; ``libc.so.6`` by name otherwise."""
    return _load_libc()


def _load_libc() -> Any:
    import ctypes

    for name in (None, "libc.so.6"):
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            libc.syncfs.argtypes = [ctypes.c_int]
            libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            libc.fallocate.restype = ctypes.c_int
            return libc
        except (OSError, AttributeError):
            continue
    return None
