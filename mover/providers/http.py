"""HTTP(S) sources (``http://host/path``, ``https://host/path?query``): read-only.

A web server is a source only: it has no listing, no writes and no deletes. Objects are read
with ranged ``GET`` requests straight into the caller's buffer when the server answers
``Accept-Ranges: bytes``, so chunks can be fetched in parallel; otherwise the single-stream
strategy reads the whole response body once, in order (:meth:`HttpProvider.open_read`).

Why range support is decided per store, lazily: :class:`~mover.provider.Capabilities` belong to a
store (here one host), but only a request shows whether a server honours ranges. The first
:meth:`~HttpProvider.stat` decides it and the answer is cached for the store; a later ``stat``
that finds an object without ranges turns ranged reads off for the store for good (never back
on), so a strategy chosen after a stat never plans ranges the object cannot give.
``mover.transfer.prepare`` stats the source before any strategy is chosen. A store whose
capabilities are asked before any stat (another process that re-opened it) probes its own
location once. :meth:`~HttpProvider.read_into` still refuses a ``200`` answer to a ranged
request, so a server that claims ranges and ignores them cannot corrupt a copy.

Bytes are moved as the server sends them (``Accept-Encoding: identity`` is asked for and any
``Content-Encoding`` is *not* decoded): ranges address the encoded bytes and ``Content-Length``
counts them, so the ranged and the single-stream paths, and the size from ``stat``, agree.

Connections: one :class:`requests.Session` per thread (sessions are not thread-safe), each with
its own connection pool, so that streams never wait for each other's connections. Retries are
left to :mod:`mover.retry` (the adapter retries nothing), which reads ``retryable``.

Options (a configured store's table, ``[stores.NAME] url = "https://host/prefix/"``):
    credentials_env (str): basic authentication from ``<NAME>_USERNAME`` and
        ``<NAME>_PASSWORD`` in the environment (never in the configuration file).
    connect_timeout_s (float): seconds to open a connection (default 10).
    read_timeout_s (float): seconds to wait for the next bytes (default 60).
    verify (bool | str): check TLS certificates (default true), or a CA bundle path.
    if_match (bool): send the ETag from ``stat`` with every ranged read (default true), so
        that an object replaced during a copy fails it instead of mixing two versions; turn
        it off for servers whose backends give one file different ETags (Apache's inode
        ETags behind a load balancer answer 412 to a correct request).

Messages name the URL without its query (which may hold a signature) and never a credential
(``mover.location`` refuses URLs with user information).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import io
import os
import re
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from mover.digests import ALGORITHMS
from mover.errors import (
    AccessDenied,
    BadLocation,
    ChunkFailed,
    ConfigError,
    MoverError,
    ObjectNotFound,
    SourceChanged,
    TransferError,
    UsageError,
)
from mover.location import Location
from mover.provider import COMBINE_ONE, Capabilities, ObjectInfo, SourceCheck, StoreProvider

#: Seconds to open a connection, unless a store's ``connect_timeout_s`` says otherwise.
CONNECT_TIMEOUT_S = 10.0
#: Seconds to wait for the next bytes of an answer, unless ``read_timeout_s`` says otherwise.
READ_TIMEOUT_S = 60.0
#: Connections each thread's pool keeps per host (a thread has one request in flight at once,
#: plus one for a redirect target).
POOL_PER_THREAD = 2
#: Read-ahead of a whole-object stream (reads larger than this bypass it).
STREAM_BUFFER_BYTES = 256 * 1024
#: How many objects' ETags and sizes a store remembers for its ranged reads.
_REMEMBER_KEYS = 4096
#: HEAD answers after which a ranged GET of the first byte is tried instead.
_HEAD_REFUSED = frozenset({400, 403, 405, 501})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
#: Headers sent with every request: the bytes as stored, no compression on the way.
_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "mover"}
#: What a request or a body read raises when the connection fails (refused, reset, timed out).
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)


class HttpProvider(StoreProvider):
    """One web server (scheme and host:port), read-only.

    Keys are the URL's path (and, after ``?``, its query) as :mod:`mover.location` parsed them;
    the URL is rebuilt from the location's endpoint and the key.
    """

    scheme = "http"
    examples = (
        "https://cloud-images.example.org/centos/9/centos-9.qcow2",
        "http://10.0.0.5:8080/templates/tiny.raw",
    )

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        o = self.options
        self.base = f"{location.scheme}://{location.endpoint or location.store}"
        self.timeout = (
            float(o.get("connect_timeout_s", CONNECT_TIMEOUT_S)),
            float(o.get("read_timeout_s", READ_TIMEOUT_S)),
        )
        self.verify: bool | str = o.get("verify", True)
        self.auth: tuple[str, str] | None = _credentials(o.get("credentials_env"))
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        #: None until a stat (or the probe) has seen the server; then sticky once False.
        self._ranges: bool | None = None
        #: Strong ETags seen by stat, per key: ranged reads send ``If-Match`` with them.
        self._etags: dict[str, str] = {}
        self.if_match = bool(o.get("if_match", True))
        #: Sizes seen by stat, per key: a ranged answer for another total size is refused.
        self._sizes: dict[str, int] = {}
        self._probed: tuple[str, ObjectInfo] | None = None

    @classmethod
    def open(cls, location: Location, options: dict[str, Any] | None = None) -> HttpProvider:
        if location.scheme not in ("http", "https"):
            raise BadLocation(f"{location.scheme}:// is not an HTTP URL")
        if not (location.endpoint or location.store):
            raise BadLocation(f"{location}: no host after {location.scheme}://")
        return cls(location, options)

    # -- what it can do ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Read-only; ``ranged_read`` as the server showed it (see the module docstring)."""
        if self._ranges is None:
            self._probe()
        return Capabilities(
            ranged_read=bool(self._ranges), sequential_read=True, listing=False, writable=False
        )

    def _probe(self) -> None:
        """Learn range support from this store's own location, once, when no stat did yet.

        Errors are not raised here (a property should not fail): the stat that follows reports
        them, and the answer stays unknown (no ranges) until a stat succeeds.
        """
        with self._lock:
            if self._ranges is not None:
                return
        key = self.location.full_key
        try:
            info = self.stat(key)
        except MoverError:
            return
        # The stat that usually follows at once (mover.transfer.prepare) takes this answer
        # instead of asking the server again.
        self._probed = (key, info)

    def describe(self) -> str:
        return self.base

    # -- URLs ----------------------------------------------------------------------------------

    def url(self, key: str) -> str:
        """The full URL of ``key``, query included (for requests only, never for messages)."""
        path, sep, query = key.partition("?")
        url = f"{self.base}/{quote(path, safe='/~:@!$&()*+,;=-._')}"
        if sep:
            url += "?" + _quote_query(query)
        return url

    def shown(self, key: str) -> str:
        """The URL of ``key`` for messages: no query, since it may hold a signature."""
        path, sep, _ = key.partition("?")
        return f"{self.base}/{quote(path, safe='/~:@!$&()*+,;=-._')}" + ("?…" if sep else "")

    # -- requests ----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        """This thread's session (created on first use): sessions are not thread-safe."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(
                pool_connections=POOL_PER_THREAD, pool_maxsize=POOL_PER_THREAD, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(_HEADERS)
            session.verify = self.verify
            session.trust_env = True
            if self.auth is not None:
                session.auth = self.auth
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _request(
        self, method: str, key: str, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """Send one request, the body left unread; connection failures become mover errors."""
        try:
            return self._session().request(
                method,
                self.url(key),
                headers=headers,
                stream=True,
                allow_redirects=True,
                timeout=self.timeout,
                # Per request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
                verify=None if self.verify is True else self.verify,
            )
        except requests.RequestException as exc:
            raise self._connection_error(exc, key) from None

    def _connection_error(self, exc: BaseException, key: str) -> MoverError:
        """Why a request got no answer, naming the endpoint (str(exc) would show the query)."""
        where = self.base
        if isinstance(exc, requests.exceptions.SSLError):
            return TransferError(f"{where}: TLS handshake failed (certificate or protocol)")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return TransferError(
                f"{where}: connection timed out after {self.timeout[0]:g} s", retryable=True
            )
        if isinstance(exc, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
            return ChunkFailed(
                f"{self.shown(key)}: no answer from {where} within {self.timeout[1]:g} s",
                retryable=True,
            )
        if isinstance(exc, requests.exceptions.TooManyRedirects):
            return TransferError(f"{self.shown(key)}: too many redirects")
        if isinstance(exc, requests.exceptions.ConnectionError):
            reason = _root_cause(exc)
            return TransferError(f"cannot connect to {where}: {reason}", retryable=True)
        return TransferError(f"{self.shown(key)}: request failed ({type(exc).__name__})")

    def _status_error(self, resp: requests.Response, key: str) -> MoverError:
        """A clear error for an HTTP status that is not an answer we can use."""
        url = self.shown(key)
        code = resp.status_code
        if code == 401:
            hint = (
                "the credentials were refused"
                if self.auth is not None
                else "configure them for the store (credentials_env)"
            )
            return AccessDenied(f"{url}: the server asks for credentials (HTTP 401); {hint}")
        if code == 403:
            return AccessDenied(f"{url}: access denied (HTTP 403)")
        if code in (404, 410):
            return ObjectNotFound(f"{url}: no such object (HTTP {code})")
        if code == 412:
            return SourceChanged(
                f"source changed during the copy: {url} (its ETag no longer matches, HTTP "
                "412); run the copy again. If it did not change, the server's backends disagree "
                "on ETags: set if_match = false for the store"
            )
        if code == 429 or code >= 500:
            return ChunkFailed(f"{url}: server error (HTTP {code} {resp.reason})", retryable=True)
        return TransferError(f"{url}: unexpected answer HTTP {code} {resp.reason}")

    # -- reading ----------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        """HEAD (or, where HEAD is refused, a GET of the first byte): size, ETag, mtime, ranges."""
        probed, self._probed = self._probed, None
        if probed is not None and probed[0] == key:
            return probed[1]
        resp = self._request("HEAD", key)
        _finish(resp)
        if resp.status_code in _HEAD_REFUSED or (
            resp.status_code == 200 and "Content-Length" not in resp.headers
        ):
            return self._stat_by_get(key)
        if resp.status_code != 200:
            raise self._status_error(resp, key)
        size = _int(resp.headers.get("Content-Length"))
        ranges = "bytes" in resp.headers.get("Accept-Ranges", "").lower()
        return self._info(key, resp, size, ranges)

    def _stat_by_get(self, key: str) -> ObjectInfo:
        resp = self._request("GET", key, {"Range": "bytes=0-0"})
        try:
            if resp.status_code != 200:  # a 200 here is the whole object: never read it
                _finish(resp)
            if resp.status_code == 206:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                size = int(m.group(3)) if m and m.group(3) != "*" else None
                return self._info(key, resp, size, size is not None)
            if resp.status_code == 416:  # an empty object has no first byte
                m = re.match(r"^\s*bytes\s+\*/(\d+)", resp.headers.get("Content-Range", ""))
                size = int(m.group(1)) if m else 0
                return self._info(key, resp, size, True)
            if resp.status_code == 200:
                return self._info(key, resp, _int(resp.headers.get("Content-Length")), False)
            raise self._status_error(resp, key)
        finally:
            resp.close()

    def _info(
        self, key: str, resp: requests.Response, size: int | None, ranges: bool
    ) -> ObjectInfo:
        """Record what a stat learnt (range support, ETag) and build its ObjectInfo."""
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if size is None:
            ranges = False
        with self._lock:
            if not ranges:
                self._ranges = False
            elif self._ranges is None:
                self._ranges = True
        etag = resp.headers.get("ETag")
        if len(self._etags) > _REMEMBER_KEYS or len(self._sizes) > _REMEMBER_KEYS:
            # A long-lived worker stats many URLs of one host: forget (checks only weaken).
            self._etags.clear()
            self._sizes.clear()
        if etag and not etag.startswith("W/") and not encoded:
            self._etags[key] = etag
        if size is not None:
            self._sizes[key] = size
        mtime = None
        if resp.headers.get("Last-Modified"):
            try:
                mtime = email.utils.parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp()
            except (TypeError, ValueError):
                mtime = None
        whole = resp.status_code == 200 and not encoded  # not the digest of a range
        checksum = _sent_digest(resp.headers) if whole else None
        return ObjectInfo(key=key, size=size, etag=etag, checksum=checksum, mtime=mtime)

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        """One ranged GET of ``len(buf)`` bytes from ``offset``, read straight into ``buf``.

        A ``200`` answer (the server ignored the range) is refused unless it is exactly the
        whole object from offset 0 and fits the buffer; ``416`` means the object ends before
        ``offset`` (0 bytes). ``If-Match`` with the ETag from ``stat`` makes a changed object
        fail instead of mixing two versions.
        """
        return self._read(key, offset, buf, self._etags.get(key) if self.if_match else None)

    def read_version_into(self, key: str, version: str, offset: int, buf: memoryview) -> int:
        """:meth:`read_into` with ``If-Match: <version>`` (the ETag recorded when the job was
        prepared, also on a worker that never stat'ed the object)."""
        return self._read(key, offset, buf, version if self.if_match else None)

    def _read(self, key: str, offset: int, buf: memoryview, etag: str | None) -> int:
        want = len(buf)
        if want == 0:
            return 0
        headers = {"Range": f"bytes={offset}-{offset + want - 1}"}
        if etag:
            headers["If-Match"] = etag
        resp = self._request("GET", key, headers)
        try:
            code = resp.status_code
            if code == 416 and etag:  # the version held reaches past offset: it changed
                raise SourceChanged(
                    f"source changed during the copy: {self.shown(key)} ends before {offset} "
                    "(HTTP 416); run the copy again"
                )
            if code == 416:
                return 0
            if code == 206:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if m is None or int(m.group(1)) != offset:
                    raise ChunkFailed(
                        f"{self.shown(key)}: asked for bytes from {offset}, the server sent "
                        f"{resp.headers.get('Content-Range') or 'no Content-Range'}"
                    )
                known = self._sizes.get(key)
                if known is not None and m.group(3) != "*" and int(m.group(3)) != known:
                    raise ChunkFailed(
                        f"{self.shown(key)}: the object changed during the copy "
                        f"({known} bytes at stat, {m.group(3)} now)"
                    )
                limit = min(want, int(m.group(2)) - offset + 1)
            elif code == 200:
                length = _int(resp.headers.get("Content-Length"))
                if offset != 0 or length is None or length > want:
                    raise ChunkFailed(
                        f"{self.shown(key)}: the server ignored the byte range "
                        f"(HTTP 200 instead of 206); it cannot be read in parallel chunks"
                    )
                limit = length
            else:
                _finish(resp)
                raise self._status_error(resp, key)
            return self._read_body(resp, key, buf[:limit])
        finally:
            resp.close()

    def _read_body(self, resp: requests.Response, key: str, buf: memoryview) -> int:
        """Read the body into ``buf`` until it is full or the body ends."""
        raw = resp.raw
        raw.decode_content = False
        got = 0
        try:
            while got < len(buf):
                n = raw.readinto(buf[got:])
                if not n:
                    break
                got += n
        except _NETWORK_ERRORS as exc:
            raise self._body_error(exc, key, got) from None
        return got

    def _body_error(self, exc: BaseException, key: str, got: int) -> MoverError:
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return ChunkFailed(
                f"{self.shown(key)}: {self.base} stopped sending for {self.timeout[1]:g} s",
                retryable=True,
            )
        return ChunkFailed(
            f"{self.shown(key)}: the connection to {self.base} broke after {got} bytes "
            f"({_root_cause(exc)})",
            retryable=True,
        )

    def source_check(self, key: str, info: ObjectInfo, exact: bool = False) -> SourceCheck:
        """The digest the server sent with the object (``Content-MD5``, ``Digest``, or
        ``Repr-Digest``, seen by :meth:`stat` as ``info.checksum``), checked over the whole
        object; and its ETag, sent as ``If-Match`` with every ranged read when it is strong
        (``pinned``), else compared again before commit. No request. A server without an ETag
        is held to the object's size only; ``if_match = false`` holds nothing to the ETag."""
        etag = info.etag if self.if_match else None
        pinned = bool(etag) and not str(etag).startswith("W/")
        algorithm, _, value = (info.checksum or "").partition(":")
        if algorithm not in ALGORITHMS or not value:
            return SourceCheck(size=info.size, version=etag, pinned=pinned)
        return SourceCheck(
            size=info.size,
            version=etag,
            pinned=pinned,
            algorithm=algorithm,
            combine=COMBINE_ONE,
            whole=value,
            what=f"the {algorithm} the server sent with the object",
        )

    def open_read(self, key: str) -> BinaryIO:
        """The whole body as a stream, bytes as sent (for servers without ranges)."""
        resp = self._request("GET", key)
        if resp.status_code != 200:
            resp.close()
            raise self._status_error(resp, key)
        resp.raw.decode_content = False
        # Buffered, so that read(n) returns n bytes unless the body ends (callers rely on it);
        # large reads still go straight into the caller's buffer.
        return cast(BinaryIO, io.BufferedReader(_Body(self, key, resp), STREAM_BUFFER_BYTES))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """HTTP has no listing: the one object the URL names."""
        yield self.stat(prefix)

    def delete(self, key: str) -> None:
        raise UsageError(f"HTTP sources are read-only: {self.shown(key)} cannot be deleted")

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


class _Body(io.RawIOBase):
    """A response body as a raw binary stream; closing it releases the connection."""

    def __init__(self, provider: HttpProvider, key: str, resp: requests.Response) -> None:
        super().__init__()
        self._provider = provider
        self._key = key
        self._resp = resp
        self._got = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            n = self._resp.raw.readinto(b)
        except _NETWORK_ERRORS as exc:
            raise self._provider._body_error(exc, self._key, self._got) from None
        self._got += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


def _quote_query(query: str) -> str:
    """Percent-encode a query for the wire, keeping escapes it already holds.

    mover.location hands the query over decoded today; if it ever keeps it encoded, the
    ``%XX`` escapes pass through untouched. A '+' is encoded: decoded, it was a literal plus
    (``%2B``, as in a base64 signature), and a bare '+' would reach the server as a space.
    """
    query = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", query)
    return quote(query, safe="=&/~:@!$()*,;-._%")


def _finish(resp: requests.Response, limit: int = 64 * 1024) -> None:
    """Read a short rest of the body so the connection goes back to the pool; else close it.

    Closing a response whose body was not read to the end closes its connection, and the next
    request pays for a new one (a TLS handshake over https).
    """
    length = 0 if resp.request.method == "HEAD" else _int(resp.headers.get("Content-Length"))
    if length is not None and length <= limit:
        with contextlib.suppress(*_NETWORK_ERRORS):
            _ = resp.content
    resp.close()


def _credentials(env: str | None) -> tuple[str, str] | None:
    """Basic-auth user and password from ``<ENV>_USERNAME`` / ``<ENV>_PASSWORD``."""
    if not env:
        return None
    user = os.environ.get(f"{env}_USERNAME")
    password = os.environ.get(f"{env}_PASSWORD")
    if user is None or password is None:
        raise ConfigError(
            f"credentials_env = {env!r}: set {env}_USERNAME and {env}_PASSWORD in the environment"
        )
    return user, password


#: Digest names in ``Digest`` (RFC 3230) and ``Repr-Digest`` (RFC 9530) -> mover's names.
_DIGEST_NAMES = {"md5": "md5", "sha-256": "sha256", "sha": "sha1"}


def _sent_digest(headers: Any) -> str | None:
    """``algorithm:hex`` of the object as the server states it, or None: ``Content-MD5``
    (RFC 1864), ``Repr-Digest: sha-256=:B64:`` (RFC 9530) or ``Digest: MD5=B64`` (RFC 3230);
    md5 first (the cheapest that servers send)."""
    found: dict[str, str] = {}
    if headers.get("Content-MD5"):
        found["md5"] = headers["Content-MD5"]
    for header in ("Repr-Digest", "Digest"):
        for item in str(headers.get(header) or "").split(","):
            name, sep, value = item.strip().partition("=")
            algorithm = _DIGEST_NAMES.get(name.strip().lower())
            if sep and algorithm:
                found.setdefault(algorithm, value.strip().strip(":"))
    for algorithm in ("md5", "sha256", "sha1"):
        if algorithm in found:
            try:
                return f"{algorithm}:{base64.b64decode(found[algorithm], validate=True).hex()}"
            except ValueError:
                continue
    return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _root_cause(exc: BaseException) -> str:
    """The innermost OS-level reason (``Connection refused``), without any URL in it."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    last: BaseException = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        last = cur
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror
        nxt = cur.__cause__ or cur.__context__
        if nxt is None and cur.args and isinstance(cur.args[0], BaseException):
            nxt = cur.args[0]
        if nxt is None:
            reason = getattr(cur, "reason", None)
            nxt = reason if isinstance(reason, BaseException) else None
        cur = nxt
    text = str(last)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "NameResolution" in type(last).__name__:
        return "host name not found"
    return type(last).__name__
