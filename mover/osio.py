"""Small operating-system helpers shared by the file store and the local strategy."""

from __future__ import annotations

import contextlib
import os


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range of a file to disk now, without waiting for it.

    The final fdatasync then finds little left to do, instead of flushing a whole object at
    once after its last chunk. ``POSIX_FADV_DONTNEED`` starts write-back of the range's dirty
    pages and drops its clean ones (mover does not read them again). A no-op where the
    platform lacks it.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
