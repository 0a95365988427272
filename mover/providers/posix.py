"""The file store: POSIX file systems, local disks and NFS exports (``file://`` and paths).

Reads are ``os.preadv`` straight into the caller's buffer. Writes go with ``os.pwrite`` at their
offsets into a temporary file beside the destination (same directory, so the final rename is
atomic and never crosses a file system), which is flushed with ``fsync`` and renamed over the
destination at commit. Until then an existing destination is untouched; abort only removes the
temporary file.

A store with a root (``[stores.NAME] url = "file:///srv/images/"``) refuses any key that
resolves outside it, by ``..`` or through a symbolic link. Links are otherwise followed.

What a path can be, and how each is read and written (the size comes from the source itself,
never from ``stat`` alone, which says 0 for devices and pipes):

- a regular file: ranged reads; its holes (``SEEK_DATA``/``SEEK_HOLE``) are told by
  :meth:`PosixProvider.data_extents` and never read. As a destination, holes and all-zero
  blocks are left unwritten in the temporary file (sized with ``ftruncate``), so a copy of a
  sparse file stays sparse.
- a block device (a volume): its size from the device (``lseek(SEEK_END)``), ranged parallel
  reads as for a file (kind :data:`~mover.provider.DEVICE`). As a destination only with
  ``--to-device`` (checked by :func:`mover.transfer.check_destination`): written in place by
  :class:`DeviceWriter`, no temporary file, no rename; an abort cannot undo what was written.
- a pipe, a socket (connected to as a client), a character device, or a regular file that
  says 0 bytes yet yields some (``/proc``, ``sysfs`` and some FUSE files): size unknown (kind
  :data:`~mover.provider.STREAM`), read once to its end by the single-stream strategy; the job
  records the size read. As a destination: refused, with the way to do it
  (``mover copy SRC - > PIPE``): a rename over it would replace the pipe with a file.
- recursive listings take regular files only (and links to them), as today.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import stat as stat_mod
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

from mover import osio
from mover.digests import Digest
from mover.errors import (
    AccessDenied,
    BadLocation,
    ChunkFailed,
    KeyEscapesRoot,
    MoverError,
    NotEnoughSpace,
    NotWritable,
    ObjectNotFound,
    SourceChanged,
    TransferError,
    UsageError,
)
from mover.hostid import HOST_TAG, running
from mover.location import Location
from mover.osio import start_writeback
from mover.planning import human
from mover.provider import (
    DEVICE,
    IN_PLACE,
    STREAM,
    Capabilities,
    ChunkWriter,
    MiB,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    SourceCheck,
    StoreProvider,
    check_receipts,
    confirm_digest,
)
from mover.sparse import ZERO_BLOCK_BYTES, is_zero, nonzero_runs

T = TypeVar("T")

#: Objects up to this size are committed in groups inside a batch (see begin_batch).
BATCH_OBJECT_BYTES = 8 * MiB
#: A group is committed when it holds this many objects or bytes.
BATCH_MAX_OBJECTS = 1000
BATCH_MAX_BYTES = 256 * MiB
#: Objects from this size on get a free-space check of their own before they are written.
SPACE_CHECK_BYTES = 64 * MiB
#: Temporary files are named ``.<name>.mover-<host tag>-<pid>-<n>.part`` beside their
#: destination: the host tag and pid let a later process of the same host remove the file of a
#: writer that was killed (:meth:`PosixProvider.sweep_abandoned`).
TEMP_MARK = ".mover-"
TEMP_SUFFIX = ".part"


def _os_error(exc: OSError, what: str) -> MoverError:
    """Translate an OSError into the mover error a user can act on."""
    if exc.errno == errno.ENOENT:
        return ObjectNotFound(f"{what}: no such file or folder")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDenied(f"{what}: permission denied")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NotEnoughSpace(f"{what}: no space left on the device")
    if exc.errno == errno.EISDIR:
        return UsageError(f"{what} is a folder: use --recursive")
    retryable = exc.errno in (errno.EIO, errno.EAGAIN, errno.EINTR, errno.ESTALE, errno.ETIMEDOUT)
    return ChunkFailed(f"{what}: {exc.strerror or exc}", retryable=retryable)


class PosixProvider(StoreProvider):
    """A file-system root. Options: ``sync`` (bool, default true): fsync each file at commit."""

    scheme = "file"
    needs_store = False
    examples = ("file:///srv/images/centos.qcow2", "/var/backups/vol-1.img", "./data/")

    _CAPS = Capabilities(
        ranged_read=True,
        sequential_read=True,
        chunk_writer=PartLimits(
            min_part_bytes=1,
            max_part_bytes=1 << 40,
            max_parts=1 << 40,
            preferred_part_bytes=64 * MiB,
        ),
        write_at=True,
        streaming_write=True,
        local_path=True,
        sparse_write=True,
        checksum_algorithms=("xxh3_128", "crc32c", "sha256", "md5"),
    )

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        self.root = "/" + location.root.strip("/") if location.root else "/"
        self.sync = bool(self.options.get("sync", True))
        self._made: set[str] = set()  # folders known to exist (recursive copies)
        self._dirty: set[str] = set()  # folders whose renames await an fsync (see flush)
        self._lock = threading.Lock()
        self._names = itertools.count()
        self._batches = 0  # executors inside a batch: small commits are grouped
        self._pending: list[tuple[str, str]] = []  # (temp, final path) awaiting the group
        self._pending_bytes = 0

    @classmethod
    def open(cls, location: Location, options: dict[str, Any] | None = None) -> PosixProvider:
        if location.store not in ("", "localhost"):
            raise BadLocation(
                f"file URLs name a path on this host, not {location.store!r}: "
                "write file:///path or mount the share"
            )
        return cls(location, options)

    @property
    def capabilities(self) -> Capabilities:
        return self._CAPS

    def describe(self) -> str:
        return f"file://{self.root}"

    # -- paths ------------------------------------------------------------------------------

    def path(self, key: str) -> str:
        """The absolute path of ``key``, refusing one that leaves the root."""
        path = "/" + key.lstrip("/")
        if self.root != "/":
            real_root = os.path.realpath(self.root)
            # Resolve as much of the path as exists: a symlink anywhere in it may lead out.
            real = os.path.realpath(path)
            if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
                raise KeyEscapesRoot(f"{path} resolves outside the store root {self.root}")
        return path

    def local_path(self, key: str) -> str:
        return self.path(key)

    # -- reading ----------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        path = self.path(key)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        if stat_mod.S_ISDIR(st.st_mode):
            raise UsageError(f"{path} is a folder: use --recursive")
        return _info(key.lstrip("/"), path, st)

    def is_folder(self, key: str) -> bool:
        return os.path.isdir(self.path(key))

    def source_check(self, key: str, info: ObjectInfo, exact: bool = False) -> SourceCheck:
        """A file holds no digest of its bytes: what is held is its version (inode, mtime in
        nanoseconds and size, the ``etag`` of :meth:`stat`), compared again after the last chunk
        and before commit. A file rewritten in place during the copy changes its mtime (as any
        ``write`` does) and fails the object; one whose mtime was set back by hand is not seen.
        A block device's writes change nothing ``stat`` shows: it is read as it is (``live``),
        and the plan says to snapshot the volume first. A pipe is one read, consistent by
        itself."""
        path = self.path(key)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        if stat_mod.S_ISBLK(st.st_mode) or stat_mod.S_ISCHR(st.st_mode):
            return SourceCheck(size=info.size, live=True)
        if not stat_mod.S_ISREG(st.st_mode) or _info(key, path, st).kind == STREAM:
            return SourceCheck(size=info.size)  # a /proc file too: no version to compare
        now = _version(st)
        if info.etag is not None and now != info.etag:
            raise SourceChanged(
                f"source changed since the job was prepared: {path} (version {info.etag}, now "
                f"{now}); run the copy again"
            )
        return SourceCheck(size=info.size, version=now)

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        try:
            got = 0
            want = len(buf)
            while got < want:
                n = os.preadv(fd, [buf[got:]], offset + got)
                if n == 0:
                    break
                got += n
            return got
        except OSError as exc:
            raise _os_error(exc, f"reading {path} at {offset}") from exc
        finally:
            os.close(fd)

    def open_read(self, key: str) -> BinaryIO:
        """The path as one stream: a file, a pipe (this blocks until a writer opens it, as
        ``cat`` does), a character device, or a Unix socket, connected to as a client and read
        until the peer closes."""
        path = self.path(key)
        try:
            if stat_mod.S_ISSOCK(os.stat(path).st_mode):
                return _connect(path)
            return open(path, "rb")
        except OSError as exc:
            raise _os_error(exc, path) from exc

    def data_extents(self, key: str, offset: int, length: int) -> list[tuple[int, int]] | None:
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # the read that follows reports it
        try:
            if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                return None  # a device: all data (it has no holes to tell)
            return osio.data_extents(fd, offset, length)
        except OSError:
            return None
        finally:
            os.close(fd)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.path(prefix)
        if os.path.exists(base) and not os.path.isdir(base):  # a file, a device, a pipe
            yield self.stat(prefix)
            return
        if not os.path.isdir(base):
            raise ObjectNotFound(f"{base}: no such file or folder")
        yield from self._walk(base)

    def _walk(self, folder: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise _os_error(exc, folder) from exc
        for entry in entries:
            if TEMP_MARK in entry.name and entry.name.endswith(TEMP_SUFFIX):
                continue  # another transfer's temporary file
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from self._walk(entry.path)
                elif entry.is_file():
                    if entry.is_symlink():
                        self.path(entry.path)  # a link out of the root is refused
                    yield _info(entry.path.lstrip("/"), entry.path, entry.stat())
            except OSError as exc:
                raise _os_error(exc, entry.path) from exc

    # -- writing ----------------------------------------------------------------------------

    def check_writable(self, key: str, size: int | None) -> None:
        path = self.path(key)
        folder = os.path.dirname(path) or "/"
        if key.endswith("/"):
            raise UsageError(f"{path} is a folder: name the destination file")
        kind = _special(path)
        if kind == "block device":
            _check_device_free(path)
            return  # its size is checked against the source's when its writer opens
        if kind is not None:
            raise UsageError(
                f"{path} is a {kind}: mover writes files, volumes (--to-device) and standard "
                f"output; to feed it, write to standard output: mover copy SRC - > {path}"
            )
        if folder not in self._made:  # a folder this process made is known to be there
            if os.path.isdir(path):
                raise UsageError(f"{path} is a folder: name the destination file")
            if not os.path.isdir(folder):
                raise NotWritable(f"folder {folder} does not exist")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise NotWritable(f"folder {folder} is not writable")
        # Small objects skip the statvfs: a job's total was checked when it was prepared, and
        # a disk that fills meanwhile still fails cleanly (ENOSPC -> NotEnoughSpace).
        if size and size >= SPACE_CHECK_BYTES:
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
            if free < size:
                raise NotEnoughSpace(
                    f"not enough space in {folder}: {human(size)} needed, {human(free)} free"
                )

    def free_bytes(self, key: str) -> int | None:
        if _special(self.path(key)) == "block device":
            return self.stat(key).size  # a volume holds what its size says
        folder = os.path.dirname(self.path(key))
        while folder and not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        st = os.statvfs(folder or "/")
        return st.f_bavail * st.f_frsize

    def make_parents(self, key: str) -> None:
        self._make_folder(os.path.dirname(self.path(key)))

    def _make_folder(self, folder: str, again: bool = False) -> None:
        if folder in self._made and not again:
            return
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, folder) from exc
        self._made.add(folder)

    # -- batched commits ----------------------------------------------------------------------
    #
    # Committing a file durably costs an fdatasync (a journal commit on ext4) before its
    # rename. For thousands of small files that is most of the time. Inside a batch (an
    # executor's job), small objects are committed in groups instead: their data is flushed
    # by one syncfs for the group, then they are renamed, then their folders are fsynced once.
    # Data still reaches the disk before the name that points at it, as with one file.

    def begin_batch(self) -> None:
        with self._lock:
            self._batches += 1

    def end_batch(self) -> None:
        with self._lock:
            self._batches = max(0, self._batches - 1)
        self.flush()

    def groups(self, size: int) -> bool:
        """Whether an object of ``size`` bytes committed now joins a group (in a batch)."""
        return self._batches > 0 and size <= BATCH_OBJECT_BYTES

    def defer(self, temp: str, path: str, size: int) -> None:
        """Queue a small object's rename for the group commit (see :meth:`groups`)."""
        with self._lock:
            self._pending.append((temp, path))
            self._pending_bytes += size
            full = len(self._pending) >= BATCH_MAX_OBJECTS or self._pending_bytes >= BATCH_MAX_BYTES
        if full:
            self.flush()

    def flush(self) -> None:
        """Make every commit durable and visible: one syncfs per file system for the queued
        small objects, their renames, then one fsync per folder that received renames."""
        with self._lock:
            pending, self._pending, self._pending_bytes = self._pending, [], 0
        if pending:
            _syncfs_for(temp for temp, _ in pending)
            failed: list[str] = []
            for temp, path in pending:
                try:
                    os.replace(temp, path)
                except OSError as exc:
                    failed.append(f"{path}: {exc.strerror or exc}")
                    _unlink_quietly(temp)
            with self._lock:
                self._dirty.update(os.path.dirname(path) for _, path in pending)
            if failed:
                raise ChunkFailed(
                    f"{len(failed)} object(s) could not be committed; first: {failed[0]}"
                )
        with self._lock:
            folders, self._dirty = self._dirty, set()
        for folder in sorted(folders):
            _fsync_dir(folder)

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        path = self.path(key)
        kind = _special(path)
        if kind == "block device":
            return DeviceWriter.open(self, path, size)
        if kind is not None:
            self.check_writable(key, size)  # raises the error that says what to do
        folder, name = os.path.split(path)
        for attempt in range(3):
            # Unique without a random draw per file: this process's id and a counter
            # (O_EXCL refuses a clash with another process's file, and we pick again).
            tag = f"{HOST_TAG}-{os.getpid():x}-{next(self._names):x}"
            temp = os.path.join(folder, f".{name}{TEMP_MARK}{tag}{TEMP_SUFFIX}")
            try:
                # 0o666 less the umask, as the final file should have: never chmod-ed later.
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                continue
            except FileNotFoundError as exc:
                if attempt == 0 and folder in self._made:
                    # A folder made earlier in this process was removed since: make it again.
                    self._made.discard(folder)
                    self._make_folder(folder, again=True)
                    continue
                raise _os_error(exc, f"creating a temporary file in {folder}") from exc
            except OSError as exc:
                raise _os_error(exc, f"creating a temporary file in {folder}") from exc
            try:
                if size:
                    os.ftruncate(fd, size)
            except OSError as exc:
                os.close(fd)
                _unlink_quietly(temp)
                raise _os_error(exc, f"sizing a temporary file in {folder}") from exc
            os.close(fd)
            return FileWriter(self, path, temp)
        raise NotWritable(f"cannot create a temporary file in {folder}")

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        if "device" in state:
            return DeviceWriter(self, state["device"])
        return FileWriter(self, self.path(key), state["temp"])

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            os.unlink(path)
        except OSError as exc:
            raise _os_error(exc, path) from exc

    def sweep_abandoned(self, prefix: str) -> int:
        """Remove the temporary files under ``prefix`` whose writer was a process of this host
        that is gone (named by :data:`TEMP_MARK`, host tag and pid). A writer of another host,
        or one still running, keeps its file."""
        base = self.path(prefix)
        removed = 0
        for folder, _dirs, files in os.walk(base if os.path.isdir(base) else os.path.dirname(base)):
            for name in files:
                if not name.endswith(TEMP_SUFFIX) or TEMP_MARK not in name:
                    continue
                token = name[name.rindex(TEMP_MARK) + len(TEMP_MARK) : -len(TEMP_SUFFIX)]
                host, _, rest = token.partition("-")
                try:
                    pid = int(rest.partition("-")[0], 16)
                except ValueError:
                    continue  # an older name without a host: its writer cannot be judged
                if host == HOST_TAG and not running(pid):
                    _unlink_quietly(os.path.join(folder, name))
                    removed += 1
        return removed


class FileWriter(ChunkWriter):
    """Parts land with ``pwrite`` at their offsets in a temporary file; commit renames it."""

    def __init__(self, provider: PosixProvider, path: str, temp: str) -> None:
        self.provider = provider
        self.path = path
        self.temp = temp

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        stored = confirm_digest(data, expected, f"part {part} of {self.path}")
        # All-zero blocks are not written: the temporary file reads zeros there already (sized
        # with ftruncate, or extended at commit), so a sparse source's copy stays sparse. A
        # part written again holds the same bytes (a source that changed fails the job).
        runs = list(nonzero_runs(data))
        total = len(data)
        if runs:
            try:
                fd = os.open(self.temp, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise _os_error(exc, f"temporary file of {self.path}") from exc
            try:
                for start, end in runs:
                    _pwrite_all(fd, data[start:end], offset + start)
                if self.provider.sync:
                    start_writeback(fd, offset, total)
            except OSError as exc:
                raise _os_error(exc, f"writing {self.path} at {offset}") from exc
            finally:
                os.close(fd)
        return PartReceipt(part, offset, total, str(stored))

    def write_zeros(self, part: int, offset: int, length: int, expected: Digest) -> PartReceipt:
        """A hole: nothing is written. The range is punched where the file system can (one
        cheap call), so it reads as zeros whatever an earlier attempt left there."""
        what = f"punching a hole in {self.path} at {offset}"
        _on_fd(self.temp, os.O_WRONLY, what, lambda fd: osio.punch_hole(fd, offset, length))
        return PartReceipt(part, offset, length, str(expected))

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        check_receipts(receipts, size, self.path)
        provider = self.provider
        if not os.path.exists(self.temp) and os.path.exists(self.path):
            # A commit repeated after its rename (a takeover of an expired commit lease, a
            # resume after the committer died before recording it): the temporary file is the
            # destination now. Done only if the destination holds exactly the parts' bytes.
            return _committed_already(self.path, receipts, size)
        try:
            if provider.sync and provider.groups(size):
                # Grouped commit: the group's syncfs flushes the data, then renames it. No
                # descriptor needed here: a stat (and a truncate for a stream) will do, and
                # must come first: once queued, another thread may rename the file any time.
                st = os.stat(self.temp)
                if st.st_size != size:
                    os.truncate(self.temp, size)
                    st = os.stat(self.temp)
                provider.defer(self.temp, self.path, size)
            else:
                fd = os.open(self.temp, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    if os.fstat(fd).st_size != size:
                        os.ftruncate(fd, size)  # a stream, whose size was unknown at open
                    if provider.sync:
                        # Data first, then the rename: the new name never points at lost data.
                        os.fdatasync(fd)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                os.replace(self.temp, self.path)
                if provider.sync:
                    with provider._lock:
                        provider._dirty.add(os.path.dirname(self.path))
        except OSError as exc:
            raise _os_error(exc, f"committing {self.path}") from exc
        return ObjectInfo(
            key=self.path.lstrip("/"),
            size=st.st_size,
            etag=_version(st),
            mtime=st.st_mtime,
        )

    def abort(self) -> None:
        _unlink_quietly(self.temp)

    def state(self) -> dict[str, Any]:
        return {"temp": self.temp}

    def local_path(self) -> str | None:
        return self.temp


class DeviceWriter(ChunkWriter):
    """A block device written in place: parts land with ``pwrite`` at their offsets on the
    device itself; no temporary file, no rename (a device cannot be renamed over).

    Zero parts (a sparse source's holes, all-zero chunks) are written as zeros, since the
    device may hold old data there, but the device's fastest way (``fallocate`` ZERO_RANGE:
    WRITE ZEROES, or a hole in a loop device's file), falling back to writing zero blocks.
    Commit flushes the device. The device keeps its bytes past the source's end (as ``dd``).

    Abort cannot undo anything: the device holds part of the new data and part of the old.
    That is said in the job's error (the writer's state carries :data:`~mover.provider.IN_PLACE`)
    and in the README; only ``--to-device`` lets a copy start.
    """

    def __init__(self, provider: PosixProvider, path: str) -> None:
        self.provider = provider
        self.path = path

    @classmethod
    def open(cls, provider: PosixProvider, path: str, size: int | None) -> DeviceWriter:
        """A writer for the device at ``path``, refused when it is smaller than ``size``."""
        capacity = _on_fd(path, os.O_RDONLY, path, osio.device_size)
        if size is not None and size > capacity:
            raise NotEnoughSpace(
                f"{path} holds {human(capacity)} ({capacity} bytes), the source "
                f"{human(size)} ({size} bytes): restore to a volume at least that large"
            )
        return cls(provider, path)

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        stored = confirm_digest(data, expected, f"part {part} of {self.path}")
        if is_zero(data):
            return self.write_zeros(part, offset, len(data), expected)

        def write(fd: int) -> None:
            _pwrite_all(fd, data, offset, device=self.path)
            if self.provider.sync:
                start_writeback(fd, offset, len(data))

        _on_fd(self.path, os.O_WRONLY, f"writing {self.path} at {offset}", write)
        return PartReceipt(part, offset, len(data), str(stored))

    def write_zeros(self, part: int, offset: int, length: int, expected: Digest) -> PartReceipt:
        def zero(fd: int) -> None:
            if osio.zero_range(fd, offset, length):
                return
            zeros = memoryview(bytes(min(length, ZERO_BLOCK_BYTES)))
            for start in range(offset, offset + length, len(zeros)):
                _pwrite_all(fd, zeros[: offset + length - start], start, device=self.path)

        _on_fd(self.path, os.O_WRONLY, f"zeroing {self.path} at {offset}", zero)
        return PartReceipt(part, offset, length, str(expected))

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        check_receipts(receipts, size, self.path)
        _on_fd(self.path, os.O_WRONLY, f"flushing {self.path}", os.fsync)
        return ObjectInfo(key=self.path.lstrip("/"), size=size, kind=DEVICE)

    def abort(self) -> None:
        """Nothing to remove and nothing to restore: what was written stays written."""

    def state(self) -> dict[str, Any]:
        return {"device": self.path, IN_PLACE: self.path}


def _committed_already(path: str, receipts: list[PartReceipt], size: int) -> ObjectInfo:
    """The object of a commit that already renamed its file: check the destination part by
    part against the receipts' digests (in bounded slices) and return it, or refuse."""
    from mover.buffers import chunk_buffer
    from mover.digests import Hasher

    fd = _open_or_raise(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if st.st_size != size:
            raise TransferError(
                f"{path}: its temporary file is gone and it holds {st.st_size} bytes, not "
                f"{size}: run the copy again"
            )
        buf = chunk_buffer(min(size, 16 * MiB) or 1)
        for r in receipts:
            if not r.digest:
                continue
            want = Digest.parse(r.digest)
            h = Hasher(want.algorithm)
            pos = 0
            while pos < r.size:
                view = buf[: min(len(buf), r.size - pos)]
                got = os.preadv(fd, [view], r.offset + pos)
                if got != len(view):
                    raise TransferError(f"{path}: short read at {r.offset + pos}")
                h.update(view)
                pos += got
            if h.digest() != want:
                raise TransferError(
                    f"{path}: its temporary file is gone and part {r.part} differs from what "
                    "was written: run the copy again"
                )
    except OSError as exc:
        raise _os_error(exc, f"checking {path}") from exc
    finally:
        os.close(fd)
    return ObjectInfo(
        key=path.lstrip("/"),
        size=st.st_size,
        etag=f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}",
        mtime=st.st_mtime,
    )


def _open_or_raise(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error(exc, path) from exc


def _on_fd(path: str, flags: int, what: str, action: Callable[[int], T]) -> T:
    """Run ``action`` on ``path`` opened with ``flags``; an OSError becomes the mover error
    that names ``what``."""
    fd = _open_or_raise(path, flags)
    try:
        return action(fd)
    except OSError as exc:
        raise _os_error(exc, what) from exc
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: memoryview, offset: int, device: str | None = None) -> None:
    """Write all of ``data`` at ``offset``; past a device's end, ``NotEnoughSpace``."""
    done = 0
    while done < len(data):
        n = os.pwrite(fd, data[done:], offset + done)
        if n == 0:
            raise NotEnoughSpace(f"{device}: the device ends at {offset + done}")
        done += n


def _info(key: str, path: str, st: os.stat_result) -> ObjectInfo:
    """What a path is, from its ``stat`` and, where ``stat`` cannot tell, the path itself."""
    mode = st.st_mode
    mtime = st.st_mtime
    if stat_mod.S_ISBLK(mode):
        size = _on_fd(path, os.O_RDONLY, path, osio.device_size)
        etag = f"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"
        return ObjectInfo(key=key, size=size, etag=etag, mtime=mtime, kind=DEVICE)
    if not stat_mod.S_ISREG(mode) or (st.st_size == 0 and _yields_bytes(path)):
        # No etag: a pipe's mtime moves as it is written, and a stream is read once anyway,
        # so there is no "before and after" to compare.
        return ObjectInfo(key=key, size=None, mtime=mtime, kind=STREAM)
    etag = _version(st)
    allocated = st.st_blocks * 512
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=etag,
        mtime=mtime,
        allocated=allocated if allocated < st.st_size else None,
    )


def _yields_bytes(path: str) -> bool:
    """Whether a regular file that says 0 bytes has some (``/proc/self/status``): one read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # the copy's own open reports it
    try:
        return bool(os.read(fd, 1))
    except OSError:
        return False
    finally:
        os.close(fd)


_SPECIAL = (
    (stat_mod.S_ISBLK, "block device"),
    (stat_mod.S_ISFIFO, "named pipe"),
    (stat_mod.S_ISSOCK, "socket"),
    (stat_mod.S_ISCHR, "character device"),
)


def _special(path: str) -> str | None:
    """What kind of special file ``path`` is (links followed), or None for a file, a folder
    or nothing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((name for test, name in _SPECIAL if test(mode)), None)


def _check_device_free(path: str) -> None:
    """Refuse a device the kernel holds (mounted, a member of an array or volume group): an
    exclusive open says so without writing anything."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise NotWritable(
                f"{path} is in use (mounted, or held by the kernel): unmount or release it first"
            ) from exc
        raise _os_error(exc, path) from exc
    os.close(fd)


def _connect(path: str) -> BinaryIO:
    """A stream client of the Unix socket at ``path``, read until the peer closes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return sock.makefile("rb")  # type: ignore[return-value]
    finally:
        sock.close()  # the file object keeps the connection until it is closed


def _version(st: os.stat_result) -> str:
    """A file's version: inode, mtime (ns) and size, as ``stat`` sees them (its ETag)."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _syncfs_for(paths: Iterator[str]) -> None:
    """Flush the file systems holding ``paths`` to disk: syncfs(2) once per device (found by
    a stat of each distinct folder, not of each file), or sync(2) where the C library has no
    syncfs."""
    folders = {os.path.dirname(p) for p in paths}
    devices: dict[int, str] = {}
    for folder in folders:
        try:
            devices.setdefault(os.stat(folder).st_dev, folder)
        except OSError:
            continue
    for folder in devices.values():
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            os.sync()
            continue
        try:
            if not osio.syncfs(fd):
                os.sync()
        finally:
            os.close(fd)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
