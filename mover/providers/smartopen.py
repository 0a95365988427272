"""A generic fallback store for the schemes smart_open opens (``gs://``, ``azure://``,
``sftp://``, ``hdfs://``, ``webhdfs://`` ...): one sequential stream each way.

smart_open gives a file-like object for many storage systems and nothing more: no ranged reads
that are cheap everywhere, no parts written out of order, no listing, no delete. So this
provider advertises exactly that (``ranged_read`` false, a chunk writer that takes parts in
order with ``streaming_write``), which makes the single-stream strategy the one that moves its
objects. It is registered by entry point once per scheme, like every provider; a dedicated
provider for a scheme (S3 has one) simply takes the scheme instead.

Optional dependencies: smart_open's transports need extras (``smart_open[gcs]``,
``smart_open[azure]``, ``smart_open[ssh]``; ``hdfs://`` runs the Hadoop ``hdfs`` command). A
missing one is reported when the store is opened, before anything moves, as
:class:`~mover.errors.PluginLoadError` with the ``pip install`` line to run.

Writing: parts go, in order, into one ``smart_open.open(url, "wb")`` handle kept in this
process; ``commit`` closes it, which is when smart_open makes the object visible (S3, GCS and
Azure uploads; ``hdfs dfs -put``). ``abort`` calls the handle's ``terminate()`` where smart_open
has one (S3 multipart, Azure block blobs, HDFS: nothing becomes visible); a GCS resumable upload
is abandoned without being finalised (nothing becomes visible; GCS drops it later); transports
that write in place (SFTP, local files) show the partial object from the first byte, replace an
existing object as soon as the write begins, and abort deletes the partial object; WebHDFS
(also in place) cannot be cleaned through smart_open and keeps the partial file. A stream
cannot be resumed in another process or rewound: a failed copy starts again.

Parts must come in order. The single-stream strategy writes them so; a chunked strategy that
runs parts in parallel (the streaming strategy picks any destination with a chunk writer) is
served by making a part wait until its predecessors are written (at most ``order_wait_s``
seconds without progress), since the capabilities cannot yet say "parts in order only".

Options (a configured store's table):
    transport_params (table): passed to ``smart_open.open`` (a GCS or Azure client is built
        by smart_open from the environment; for SFTP e.g. ``user``, ``port``,
        ``connect_kwargs.key_filename``). Secrets never go here: a key ending in ``_env``
        names an environment variable that holds the value of the key without it
        (``password_env = "BOX_PASSWORD"`` gives ``password``); a literal ``password``,
        ``token``, ``secret`` or ``passphrase`` is refused.
    compression (str): ``"disable"`` (default: bytes as stored) or a smart_open compression
        (``"infer_from_extension"``, ``".gz"`` ...) to decompress when reading and compress
        when writing; the size is then unknown until the end.
    order_wait_s (float): how long a part may wait for its predecessor (default 120).
    connection_string_env (str): for ``azure://``, the environment variable that holds the
        storage account's connection string (default ``AZURE_STORAGE_CONNECTION_STRING``);
        smart_open needs a client object, which cannot be written in a configuration file.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, cast

import smart_open
import smart_open.transport

from mover.digests import Digest
from mover.errors import (
    AccessDenied,
    BadLocation,
    ChunkFailed,
    ConfigError,
    MoverError,
    ObjectNotFound,
    PluginLoadError,
    TransferError,
    UsageError,
)
from mover.location import Location
from mover.provider import (
    Capabilities,
    ChunkWriter,
    MiB,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    StoreProvider,
    check_receipts,
    confirm_digest,
)

#: smart_open's extra for each scheme, for the ``pip install`` hint.
EXTRAS = {
    "gs": "gcs",
    "gcs": "gcs",
    "azure": "azure",
    "sftp": "ssh",
    "ssh": "ssh",
    "scp": "ssh",
    "webhdfs": "webhdfs",
    "http": "http",
    "https": "http",
    "s3": "s3",
}
#: Schemes whose smart_open writer changes the object in place from the first byte.
IN_PLACE = frozenset({"sftp", "ssh", "scp", "file", "webhdfs"})
#: Schemes whose URLs may omit the host (``hdfs:///path`` uses the configured namenode).
PATH_LIKE = frozenset({"file", "hdfs", "viewfs"})
#: Seconds a part may wait for its predecessor before the write gives up.
ORDER_WAIT_S = 120.0

# Open write streams of this process, by token (ChunkWriter.state holds only the token).
_STREAMS: dict[str, _Stream] = {}
_STREAMS_LOCK = threading.Lock()


@dataclass
class _Stream:
    """One object being written: the smart_open handle and how far it got."""

    key: str
    shown: str
    handle: Any = None
    next_part: int = 0
    written: int = 0
    failed: str | None = None
    last_progress: float = field(default_factory=time.monotonic)
    cond: threading.Condition = field(default_factory=threading.Condition)


class SmartOpenProvider(StoreProvider):
    """Any scheme smart_open has a transport for, as one sequential stream each way."""

    scheme = "smart_open"
    examples = (
        "gs://bucket/templates/centos.qcow2",
        "azure://container/snapshots/vol-1.img",
        "sftp://backup-host/srv/images/x.raw",
        "hdfs://namenode:8020/backups/x.raw",
        "webhdfs://namenode:9870/backups/x.raw",
    )
    #: The smart_open transport to use; None means the location's own scheme.
    transport_scheme: ClassVar[str | None] = None
    #: Checked per scheme in :meth:`open`: ``hdfs:///path`` (the default namenode) is valid.
    needs_store: ClassVar[bool] = False

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        o = self.options
        self.transport = self.transport_scheme or location.scheme
        self.transport_params = _resolve_params(dict(o.get("transport_params") or {}))
        self.compression = str(o.get("compression", "disable"))
        self.order_wait_s = float(o.get("order_wait_s", ORDER_WAIT_S))
        self.connection_string_env = str(
            o.get("connection_string_env", "AZURE_STORAGE_CONNECTION_STRING")
        )
        self._client: Any = None
        self._caps = Capabilities(
            ranged_read=False,
            sequential_read=True,
            listing=False,
            chunk_writer=PartLimits(
                min_part_bytes=1,
                preferred_part_bytes=8 * MiB,
            ),
            streaming_write=True,
            ordered_parts=True,
            checksum_algorithms=("xxh3_128",),
        )

    @classmethod
    def open(cls, location: Location, options: dict[str, Any] | None = None) -> SmartOpenProvider:
        """Check, without I/O, that smart_open can serve the scheme here; say what to install."""
        scheme = cls.transport_scheme or location.scheme
        check_transport(scheme)
        if not (location.endpoint or location.store) and scheme not in PATH_LIKE:
            raise BadLocation(f"{location}: no bucket, container or host after {scheme}://")
        return cls(location, options)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    # -- URLs ----------------------------------------------------------------------------------

    def smart_url(self, key: str) -> str:
        """The URL smart_open is given for ``key`` (never shown: it is built for smart_open)."""
        host = self.location.endpoint or self.location.store
        return f"{self.transport}://{host}/{key.lstrip('/')}"

    def shown(self, key: str) -> str:
        """The URL of ``key`` for messages (locations never hold credentials)."""
        host = self.location.endpoint or self.location.store
        return f"{self.location.scheme}://{host}/{key.lstrip('/')}"

    # -- reading ----------------------------------------------------------------------------

    def _open(self, key: str, mode: str) -> Any:
        try:
            return smart_open.open(
                self.smart_url(key),
                mode,
                compression=self.compression,
                transport_params=self._params() or None,
            )
        except Exception as exc:
            raise translate(exc, self.shown(key), self.location.scheme) from None

    def _params(self) -> dict[str, Any]:
        """transport_params, with the client object a transport needs built from the
        environment (Azure: from a connection string; GCS builds its own)."""
        params = dict(self.transport_params)
        if self.transport == "azure" and "client" not in params:
            if self._client is None:
                text = os.environ.get(self.connection_string_env)
                if not text:
                    raise ConfigError(
                        f"{self.describe()}: set {self.connection_string_env} to the storage "
                        "account's connection string (or connection_string_env to another "
                        "variable)"
                    )
                from azure.storage.blob import BlobServiceClient

                self._client = BlobServiceClient.from_connection_string(text)
            params["client"] = self._client
        return params

    def stat(self, key: str) -> ObjectInfo:
        """Open the object to learn that it exists and, where the reader can seek, its size."""
        handle = self._open(key, "rb")
        size: int | None = None
        try:
            if self.compression == "disable" and handle.seekable():
                handle.seek(0, io.SEEK_END)  # paramiko's SFTPFile.seek returns None
                size = int(handle.tell())
        except (OSError, ValueError, io.UnsupportedOperation):
            size = None
        except Exception as exc:
            raise translate(exc, self.shown(key), self.location.scheme) from None
        finally:
            _close_quietly(handle)
        return ObjectInfo(key=key, size=size)

    def open_read(self, key: str) -> BinaryIO:
        raw = _Reader(self._open(key, "rb"), self.shown(key), self.location.scheme)
        # Buffered, so that read(n) returns n bytes unless the object ends (callers rely on it).
        return cast(BinaryIO, io.BufferedReader(raw, 256 * 1024))

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        raise UsageError(f"{self.shown(key)}: smart_open stores are read as one stream")

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """smart_open cannot list: the one object named (a folder is refused, never read as
        if it were an object)."""
        if not prefix or prefix.endswith("/"):
            raise UsageError(f"{self.shown(prefix)}: smart_open stores cannot list a folder")
        yield self.stat(prefix)

    def delete(self, key: str) -> None:
        if self.transport == "file":
            path = "/" + key.lstrip("/")
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise ObjectNotFound(f"{self.shown(key)}: no such object") from None
            except OSError as exc:
                raise translate(exc, self.shown(key), self.location.scheme) from None
            return
        raise UsageError(f"{self.shown(key)}: smart_open gives no way to delete objects")

    # -- writing ----------------------------------------------------------------------------

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        token = secrets.token_hex(8)
        with _STREAMS_LOCK:
            _STREAMS[token] = _Stream(key, self.shown(key))
        return SmartOpenWriter(self, key, token)

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        return SmartOpenWriter(self, key, str(state["token"]))


class SmartOpenWriter(ChunkWriter):
    """Parts in order into one smart_open write handle; commit closes it (the object appears)."""

    def __init__(self, provider: SmartOpenProvider, key: str, token: str) -> None:
        self.provider = provider
        self.key = key
        self.token = token

    def _stream(self) -> _Stream:
        with _STREAMS_LOCK:
            stream = _STREAMS.get(self.token)
        if stream is None:
            raise ChunkFailed(
                f"{self.provider.shown(self.key)}: this write stream is not open in this process "
                "(finished, aborted, or opened by another process); smart_open streams cannot "
                "be resumed: start the copy again",
                retryable=False,
            )
        return stream

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        stored = confirm_digest(data, expected, f"part {part} of {self.provider.shown(self.key)}")
        s = self._stream()
        with s.cond:
            self._wait_turn(s, part)
            if offset != s.written:
                raise ChunkFailed(
                    f"{s.shown}: part {part} starts at {offset}, the stream is at {s.written}",
                    retryable=False,
                )
            try:
                if s.handle is None:
                    s.handle = self.provider._open(s.key, "wb")
                _write_all(s.handle, data)
            except Exception as exc:
                s.failed = f"part {part} failed"
                s.cond.notify_all()
                err = translate(exc, s.shown, self.provider.location.scheme)
                # Bytes may have gone into the stream: it cannot be retried, only restarted.
                err.retryable = False
                raise err from None
            s.next_part += 1
            s.written += len(data)
            s.last_progress = time.monotonic()
            s.cond.notify_all()
        return PartReceipt(part, offset, len(data), str(stored))

    def _wait_turn(self, s: _Stream, part: int) -> None:
        """Block (lock released) until every earlier part is written; give up on no progress."""
        while s.failed is None and s.next_part < part:
            left = s.last_progress + self.provider.order_wait_s - time.monotonic()
            if left <= 0:
                raise ChunkFailed(
                    f"{s.shown}: part {part} waited {self.provider.order_wait_s:g} s for part "
                    f"{s.next_part}; smart_open stores take parts in order only",
                    retryable=False,
                )
            s.cond.wait(left)
        if s.failed is not None:
            raise ChunkFailed(f"{s.shown}: the write stream broke ({s.failed})", retryable=False)
        if part < s.next_part:
            raise ChunkFailed(
                f"{s.shown}: part {part} was already written; a stream cannot be rewritten",
                retryable=False,
            )

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        s = self._stream()
        with s.cond:
            check_receipts(receipts, size, s.shown)
            if s.written != size or s.failed is not None:
                raise TransferError(
                    f"{s.shown}: the stream holds {s.written} bytes, expected {size}"
                )
            try:
                if s.handle is None:  # an empty object: nothing was written yet
                    s.handle = self.provider._open(s.key, "wb")
                s.handle.close()
            except Exception as exc:
                s.failed = "commit failed"
                raise translate(exc, s.shown, self.provider.location.scheme) from None
            s.handle = None
        with _STREAMS_LOCK:
            _STREAMS.pop(self.token, None)
        return ObjectInfo(key=s.key, size=size)

    def abort(self) -> None:
        """Cancel what smart_open can cancel, delete a partial in-place object (module doc)."""
        with _STREAMS_LOCK:
            s = _STREAMS.pop(self.token, None)
        if s is None:
            return
        with s.cond:
            s.failed = s.failed or "aborted"
            s.cond.notify_all()
            handle, s.handle = s.handle, None
        if handle is None:
            return
        terminate = getattr(handle, "terminate", None)
        if callable(terminate):
            try:
                terminate()
            except Exception:
                _disarm(handle)
            return
        if self.provider.transport in IN_PLACE:
            _close_quietly(handle)
            self._remove_partial(s.key, handle)
            return
        # No way to cancel (a GCS resumable upload): never let close() finalise it, not even
        # from the garbage collector; the unfinished upload never becomes an object.
        _disarm(handle)

    def _remove_partial(self, key: str, handle: Any) -> None:
        try:
            sftp = getattr(handle, "sftp", None)
            if sftp is not None and getattr(handle, "name", None):
                sftp.remove(handle.name)
            elif self.provider.transport == "file":
                self.provider.delete(key)
        except Exception:  # best effort: the original failure is what matters
            pass

    def state(self) -> dict[str, Any]:
        return {"token": self.token}


class _Reader(io.RawIOBase):
    """A smart_open read handle whose errors are mover errors."""

    def __init__(self, handle: Any, shown: str, scheme: str) -> None:
        super().__init__()
        self._handle = handle
        self._shown = shown
        self._scheme = scheme

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            readinto = getattr(self._handle, "readinto", None)
            if readinto is not None:
                return int(readinto(b) or 0)
            piece = self._handle.read(len(b))
            b[: len(piece)] = piece
            return len(piece)
        except Exception as exc:
            err = translate(exc, self._shown, self._scheme)
            raise err from None

    def close(self) -> None:
        if not self.closed:
            _close_quietly(self._handle)
        super().close()


#: Words that mark a secret in transport_params keys (a literal value is refused).
_SECRET_WORDS = ("password", "passphrase", "secret", "token", "credential", "pkey", "sas")
_SECRET_OK = ("_env", "filename", "_file", "_path")


def _resolve_params(params: dict[str, Any], where: str = "transport_params") -> dict[str, Any]:
    """Copy ``params``, taking ``NAME_env`` keys from the environment; refuse literal secrets."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        low = key.lower()
        if isinstance(value, dict):
            out[key] = _resolve_params(value, f"{where}.{key}")
        elif low.endswith("_env"):
            name = str(value)
            if name not in os.environ:
                raise ConfigError(f"{where}.{key}: environment variable {name} is not set")
            out[key[: -len("_env")]] = os.environ[name]
        elif any(w in low for w in _SECRET_WORDS) and not low.endswith(_SECRET_OK):
            raise ConfigError(
                f"{where}.{key} looks like a secret: put it in the environment and name the "
                f"variable with {key}_env"
            )
        else:
            out[key] = value
    return out


def check_transport(scheme: str) -> None:
    """Raise PluginLoadError (with the pip line) if smart_open cannot serve ``scheme`` here."""
    try:
        smart_open.transport.get_transport(scheme)
    except ImportError:
        extra = EXTRAS.get(scheme) or smart_open.transport._ERRORS.get(scheme, scheme)
        raise PluginLoadError(
            f"provider {scheme!r} (smart_open) needs smart_open's {extra} extra: "
            f"pip install 'smart_open[{extra}]'"
        ) from None
    except NotImplementedError:
        known = ", ".join(s for s in smart_open.transport.SUPPORTED_SCHEMES if s)
        raise PluginLoadError(
            f"provider {scheme!r}: smart_open has no transport for {scheme}:// (it has: {known})"
        ) from None
    if scheme in ("hdfs", "viewfs") and shutil.which("hdfs") is None:
        raise PluginLoadError(
            f"provider {scheme!r} (smart_open) runs the Hadoop 'hdfs' command, which is not on "
            "PATH: install a Hadoop client, or use webhdfs://"
        )


#: Vendor exception class names (no vendor import) and what they mean.
_NOT_FOUND = ("NotFound", "NoSuchKey", "NoSuchBucket", "ResourceNotFound", "FileNotFound")
_DENIED = (
    "Forbidden",
    "Unauthorized",
    "AccessDenied",
    "PermissionDenied",
    "AuthenticationException",
    "ClientAuthenticationError",
    "PermissionError",
)
_RETRYABLE = (
    "Timeout",
    "ServiceUnavailable",
    "TooManyRequests",
    "InternalServerError",
    "ServerError",
    "ConnectionError",
    "SSHException",
)


def translate(exc: BaseException, shown: str, scheme: str) -> MoverError:
    """A vendor exception from smart_open as a mover error; its text is not copied (it may
    hold a URL with credentials), only its class and an OS reason."""
    if isinstance(exc, MoverError):
        return exc
    if isinstance(exc, ImportError):
        try:
            check_transport(scheme)
        except PluginLoadError as err:
            return err
        return PluginLoadError(f"provider {scheme!r}: {exc.name or 'a dependency'} is missing")
    names = [c.__name__ for c in type(exc).__mro__]
    kind = type(exc).__name__
    if isinstance(exc, FileNotFoundError) or any(n in k for k in names for n in _NOT_FOUND):
        return ObjectNotFound(f"{shown}: no such object ({kind})")
    if isinstance(exc, PermissionError) or any(n in k for k in names for n in _DENIED):
        return AccessDenied(f"{shown}: access denied ({kind})")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{shown} is a folder: smart_open stores copy one object at a time")
    retryable = isinstance(exc, TimeoutError | ConnectionError) or any(
        n in k for k in names for n in _RETRYABLE
    )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else kind
    return TransferError(f"{shown}: {reason}", retryable=retryable)


def _write_all(handle: Any, data: memoryview) -> None:
    view = data
    while len(view):
        n = handle.write(view)
        if n is None or n >= len(view):
            return
        if n == 0:
            raise OSError("the write stream accepted no bytes")
        view = view[n:]


def _close_quietly(handle: Any) -> None:
    with contextlib.suppress(Exception):
        handle.close()


def _disarm(handle: Any) -> None:
    """Make ``close`` a no-op on this handle, so that nothing (not even ``__del__``) commits."""
    with contextlib.suppress(AttributeError, TypeError):
        handle.close = lambda: None
