"""The file store: POSIX file systems, local disks and NFS exports (``file://`` and paths).

Reads are ``os.preadv`` straight into the caller's buffer. Writes go with ``os.pwrite`` at their
offsets into a temporary file beside the destination (same directory, so the final rename is
atomic and never crosses a file system), which is flushed with ``fsync`` and renamed over the
destination at commit. Until then an existing destination is untouched; abort only removes the
temporary file.

A store with a root (``[stores.NAME] url = "file:///srv/images/"``) refuses any key that
resolves outside it, by ``..`` or through a symbolic link.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import itertools
import os
import stat as stat_mod
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

from mover.digests import Digest, digest
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
    VerificationFailed,
)
from mover.location import Location
from mover.osio import start_writeback
from mover.planning import human
from mover.store import (
    Capabilities,
    ChunkWriter,
    MiB,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    SourceCheck,
    StoreProvider,
)

#: Objects up to this size are committed in groups inside a batch (see begin_batch).
BATCH_OBJECT_BYTES = 8 * MiB
#: A group is committed when it holds this many objects or bytes.
BATCH_MAX_OBJECTS = 1000
BATCH_MAX_BYTES = 256 * MiB
#: Objects from this size on get a free-space check of their own before they are written.
SPACE_CHECK_BYTES = 64 * MiB
#: Temporary files are named ``.<name>.mover-<token>.part`` beside their destination.
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
        chunk_writer=PartLimits(
            min_part_bytes=1,
            max_part_bytes=1 << 40,
            max_parts=1 << 40,
            preferred_part_bytes=64 * MiB,
            preferred_streams=4,
        ),
        write_at=True,
        streaming_write=True,
        local_path=True,
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
        return ObjectInfo(
            key=key.lstrip("/"),
            size=st.st_size,
            etag=_version(st),
            mtime=st.st_mtime,
        )

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
        if not stat_mod.S_ISREG(st.st_mode):
            return SourceCheck(size=info.size)
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
        path = self.path(key)
        try:
            return open(path, "rb")
        except OSError as exc:
            raise _os_error(exc, path) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.path(prefix)
        if os.path.isfile(base):
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
                    st = entry.stat()
                    yield ObjectInfo(
                        key=entry.path.lstrip("/"),
                        size=st.st_size,
                        etag=_version(st),
                        mtime=st.st_mtime,
                    )
            except OSError as exc:
                raise _os_error(exc, entry.path) from exc

    # -- writing ----------------------------------------------------------------------------

    def check_writable(self, key: str, size: int | None) -> None:
        path = self.path(key)
        folder = os.path.dirname(path) or "/"
        if key.endswith("/"):
            raise UsageError(f"{path} is a folder: name the destination file")
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

    def open_writer(self, key: str, size: int | None, part_size: int) -> ChunkWriter:
        path = self.path(key)
        folder, name = os.path.split(path)
        for attempt in range(3):
            # Unique without a random draw per file: this process's id and a counter
            # (O_EXCL refuses a clash with another process's file, and we pick again).
            tag = f"{os.getpid():x}-{next(self._names):x}"
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
        return FileWriter(self, self.path(key), state["temp"])

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            os.unlink(path)
        except OSError as exc:
            raise _os_error(exc, path) from exc


class FileWriter(ChunkWriter):
    """Parts land with ``pwrite`` at their offsets in a temporary file; commit renames it."""

    def __init__(self, provider: PosixProvider, path: str, temp: str) -> None:
        self.provider = provider
        self.path = path
        self.temp = temp

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        # The digest of exactly the bytes handed to the kernel: if they differ from what was
        # read (a flipped bit in between), the part is refused before it is written.
        stored = digest(expected.algorithm, data)
        if stored != expected:
            raise VerificationFailed(
                f"part {part} of {self.path}: read {expected}, would store {stored}",
                retryable=True,
            )
        try:
            fd = os.open(self.temp, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, f"temporary file of {self.path}") from exc
        try:
            done = 0
            total = len(data)
            while done < total:
                done += os.pwrite(fd, data[done:], offset + done)
            if self.provider.sync and total:
                start_writeback(fd, offset, total)
        except OSError as exc:
            raise _os_error(exc, f"writing {self.path} at {offset}") from exc
        finally:
            os.close(fd)
        return PartReceipt(part, offset, total, str(stored))

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        expect = 0
        for r in sorted(receipts, key=lambda r: r.offset):
            if r.offset != expect:
                raise TransferError(f"{self.path}: parts do not cover the object at {expect}")
            expect += r.size
        if expect != size:
            raise TransferError(f"{self.path}: parts hold {expect} bytes, expected {size}")
        provider = self.provider
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
            if _LIBC is None or _LIBC.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


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
