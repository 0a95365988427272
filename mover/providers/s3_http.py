"""S3 requests on the standard library: signed with SigV4 here, sent by :mod:`~.wire`.

Why (issue 10): a request engine's start-up is paid by every command. awscrt's native module
costs about 30 ms of CPU at import whatever is asked of it (s2n seeds its entropy pool and
loads the system CA store) and 10 ms more for its client and credentials chain; boto3 costs
0.3 s. A socket is a few milliseconds, and a request signed here costs about 0.66 M
instructions (awscrt 0.51 M, botocore 4.5 M; callgrind, PutObject and GetObject of 16 KiB).
Measured here on 300 and 2,000 objects of 16 KiB with 32 streams, this client moved them with
less CPU and less wall time than the awscrt engine in both directions (awscrt's hand-off of
every request to its event-loop threads costs more system time than its C saves), so it is
the default for small requests, and it serves every ranged GET: ``readinto`` lands the body in
the caller's buffer straight from the socket, the cheapest path per GiB measured
(benchmarks/spike/RESULTS.md), without botocore's per-request pipeline.

What the store promises is kept: the caller's crc32c goes as ``x-amz-checksum-crc32c`` (signed,
checked by the server), no payload hash is computed (``UNSIGNED-PAYLOAD``, as the other engines
are configured), ``If-Match`` pins reads. Transient failures (no connection, a reset, a read
time-out, 5xx, throttling) are retried here, ``max_attempts`` in all as botocore counts them;
the final error goes to the store as an :class:`~mover.providers.s3_crt.EngineError`, which the
store classifies once, by the same rules as the other engines' errors.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from mover.providers import s3_crt, wire
from mover.providers.s3_crt import (
    NO_CREDENTIALS,
    Answer,
    Call,
    EngineError,
    Lean,
    Settings,
    error_fields,
)

#: The payload hash SigV4 signs when the body is not hashed (its crc32c header proves it).
UNSIGNED = "UNSIGNED-PAYLOAD"
#: Idle connections kept per client (one per stream is enough; more are closed after use).
MAX_IDLE = 64
#: Largest back-off between attempts (seconds), and the first one's scale.
MAX_BACKOFF_S = 20.0
BACKOFF_BASE_S = 0.1
#: Refresh credentials that expire within this many seconds.
CREDENTIALS_MARGIN_S = 300.0

#: HTTP statuses and S3 error codes worth another attempt (botocore's standard mode's list).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "OperationAborted",
    }
)
#: Errors of the connection itself: another attempt on a new connection may succeed.
_TRANSPORT = (OSError,)  # wire's errors are OSErrors too


def is_transient(status: int, code: str) -> bool:
    """Whether an S3 error answer is worth another attempt (the store uses the same test to
    mark the final error ``retryable``)."""
    return status in RETRY_STATUSES or code in RETRY_CODES or status >= 500


class Credentials(NamedTuple):
    """Keys to sign with; ``expires`` is a ``time.time()`` or None (static keys)."""

    access_key: str
    secret_key: str
    token: str | None = None
    expires: float | None = None


class Signer:
    """AWS Signature Version 4 for S3, headers only, unsigned payload.

    The canonical request is method, path (encoded once, as sent: S3 does not normalise it),
    the query's pairs sorted, the signed headers (lower-case names, sorted, values trimmed),
    their names, and the payload hash; the key is derived from the secret by date, region and
    service, and cached for the day.
    """

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._key: tuple[str, str, bytes] | None = None  # (secret, date, key)

    def headers(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        creds: Credentials,
        now: float | None = None,
    ) -> list[tuple[str, str]]:
        """The headers to send: ``headers`` plus Host, X-Amz-Date, X-Amz-Content-SHA256,
        the session token if any, and Authorization. ``query`` is already URI-encoded
        (``name=value`` pairs joined by ``&``)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = stamp[:8]
        signed: dict[str, str] = {k.lower(): " ".join(str(v).split()) for k, v in headers}
        signed["host"] = host
        signed["x-amz-date"] = stamp
        signed["x-amz-content-sha256"] = UNSIGNED
        if creds.token:
            signed["x-amz-security-token"] = creds.token
        names = sorted(signed)
        canonical = "\n".join(
            (
                method,
                path,
                canonical_query(query),
                "".join(f"{n}:{signed[n]}\n" for n in names),
                ";".join(names),
                UNSIGNED,
            )
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(), "sha256")
        auth = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature.hexdigest()}"
        )
        return [*((n, signed[n]) for n in names), ("Authorization", auth)]

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = ("AWS4" + secret).encode()
        for part in (day, self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), "sha256").digest()
        self._key = (secret, day, key)
        return key


def canonical_query(query: str) -> str:
    """``query`` (encoded pairs, ``&``-joined; a bare name means an empty value) sorted as
    SigV4 wants it."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((name, value))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


class _Stale(Exception):
    """A reused connection turned out closed by the server before it answered."""


class Client(Lean):
    """One endpoint's requests over a pool of keep-alive connections (thread-safe).

    ``credentials`` is called before every request; it returns cached keys and refreshes them
    itself when they near their expiry.
    """

    def __init__(self, s: Settings, credentials: Callable[[], Credentials]) -> None:
        super().__init__(s)
        parts = urlsplit(s.endpoint_url)
        self._https = parts.scheme == "https"
        self._hostname = parts.hostname or ""
        self._port = parts.port
        self._credentials = credentials
        self._signer = Signer(s.region)
        self._idle: list[wire.Connection] = []
        self._lock = threading.Lock()
        self._tls: Any = None
        #: requests in flight now, and the most seen at once (``peak`` may be reset by a
        #: caller that watches a stretch of work)
        self.in_flight = 0
        self.peak = 0
        _LIVE.add(self)

    def _after_fork(self) -> None:
        """In a forked child (a prefork worker): the parent's connections are its own, never
        to be shared; the lock may have been held by a thread that does not exist here."""
        self._lock = threading.Lock()
        self._idle = []
        self.in_flight = 0

    # -- connections ------------------------------------------------------------------------

    def _connection(self) -> tuple[wire.Connection, bool]:
        """An idle connection (True: reused) or a new one (False)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        tls = self._context() if self._https else None
        timeout = self.settings.connect_timeout_s
        return wire.Connection(self._hostname, self._port, timeout, tls), False

    def _context(self) -> Any:
        if self._tls is None:
            import ssl

            self._tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
        return self._tls

    def _release(self, conn: wire.Connection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- requests ---------------------------------------------------------------------------

    def _send(self, call: Call) -> Answer:
        """Send with retries: ``max_attempts`` in all, for transient failures only."""
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            attempts = self.settings.max_attempts
            attempt = stale = 0
            while True:
                try:
                    answer = self._once(call)
                    sent = attempt + stale + 1  # the server may have seen every one of them
                    return answer._replace(attempts=sent) if sent > 1 else answer
                except _Stale:
                    stale += 1  # the server closed an idle connection: not counted as a try
                    continue
                except EngineError as exc:
                    attempt += 1
                    if not _retry(exc) or attempt >= attempts:
                        raise
                    pause = min(MAX_BACKOFF_S, BACKOFF_BASE_S * 2**attempt)
                    time.sleep(random.uniform(0, pause))
        finally:
            with self._lock:
                self.in_flight -= 1

    def _once(self, call: Call) -> Answer:
        method, path, query, body = call.method, call.path, call.query, call.body
        try:
            creds = self._credentials()
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(0, NO_CREDENTIALS, str(exc)) from exc
        sent = self._signer.headers(method, self.host, path, query, call.headers, creds)
        if body is not None or method in ("PUT", "POST"):
            sent.append(("Content-Length", str(len(body) if body is not None else 0)))
        url = path + ("?" + query if query else "")
        conn, reused = self._connection()
        answered = False
        try:
            if conn.sock is None:
                conn.connect()  # the connect time-out; then every read gets the read time-out
                assert conn.sock is not None
                conn.sock.settimeout(self.settings.request_timeout_s)
            conn.request(method, url, sent, body)
            response = conn.response(method)
            answered = True
            answer = self._answer(response, call.into)
        except EngineError as exc:
            if exc.status and not response.will_close:
                self._release(conn)  # an error answer read whole: the connection is good
            else:
                conn.close()
            raise
        except _TRANSPORT as exc:
            connecting = conn.sock is None
            conn.close()
            if reused and not answered and isinstance(exc, _STALE_ERRORS):
                raise _Stale() from exc
            raise _transport_error(exc, connecting) from exc
        except BaseException:
            conn.close()  # in an unknown state: never back to the pool
            raise
        if response.will_close:
            conn.close()
        else:
            self._release(conn)
        return answer

    def _answer(self, response: wire.Response, into: memoryview | None) -> Answer:
        status = response.status
        headers = response.headers  # names lower-case already
        if status >= 300:
            body = response.read()
            code, message = error_fields(body)
            raise EngineError(status, code or str(status), message)
        if into is None:
            data = response.read()
            if b"<Error>" in data[:512]:
                # CompleteMultipartUpload (and copies) may fail after a 200: the error is in
                # the body. As botocore does, it counts as a server error (retried).
                code, message = error_fields(data)
                raise EngineError(500, code or "InternalError", message)
            return Answer(status, headers, data, len(data))
        length = response.length
        if length is not None and length > len(into):
            raise EngineError(
                0, "BodyTooLong", f"the answer holds {length} bytes, {len(into)} asked"
            )
        got = 0
        want = len(into) if length is None else length
        while got < want:
            n = response.readinto(into[got:want])
            if not n:
                break
            got += n
        if length is None and response.read(1):
            raise EngineError(0, "BodyTooLong", f"the answer holds more than {len(into)} bytes")
        if length is not None and got < length:
            raise EngineError(
                0, "IncompleteBody", f"the connection closed after {got} of {length} bytes"
            )
        return Answer(status, headers, b"", got)


#: Failures that mean a reused keep-alive connection was closed by the server meanwhile.
_STALE_ERRORS = (
    wire.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


def _retry(exc: EngineError) -> bool:
    if exc.status:
        return is_transient(exc.status, exc.code)
    return exc.code not in ("BodyTooLong", NO_CREDENTIALS)


def _transport_error(exc: BaseException, connecting: bool) -> EngineError:
    """A socket or HTTP failure as an EngineError: ``connect`` when no connection was made
    (refused, unresolvable, connect time-out)."""
    connect = connecting or isinstance(exc, (ConnectionRefusedError, socket.gaierror))
    name = "RequestTimeout" if isinstance(exc, TimeoutError) else type(exc).__name__
    return EngineError(0, name, str(exc) or name, connect=connect)


def credentials_for(s: Settings) -> Callable[[], Credentials]:
    """What a client calls for its keys: the static keys of ``s`` as they are, else
    :class:`ChainCredentials` (awscrt imported only then)."""
    if s.static is not None:
        fixed = Credentials(*s.static)
        return lambda: fixed
    return ChainCredentials(s)


class ChainCredentials:
    """Credentials from awscrt's provider for ``s`` (a profile with a role, SSO or a process;
    the default chain's web identity, container or instance role): asked on first use, and
    again only when they come within ``CREDENTIALS_MARGIN_S`` of their expiry."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self._lock = threading.Lock()
        self._held: Credentials | None = None
        self._provider: Any = None

    def __call__(self) -> Credentials:
        with self._lock:
            held = self._held
            if held is not None and (
                held.expires is None or held.expires - time.time() > CREDENTIALS_MARGIN_S
            ):
                return held
            if self._provider is None:
                from awscrt import io

                loop = io.EventLoopGroup(1)
                bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
                self._provider = s3_crt.provider(self.settings, bootstrap)
            try:
                got = self._provider.get_credentials().result(
                    timeout=self.settings.request_timeout_s
                )
            except Exception as exc:
                raise EngineError(0, NO_CREDENTIALS, str(exc) or type(exc).__name__) from exc
            expires = got.expiration
            self._held = Credentials(
                got.access_key_id,
                got.secret_access_key,
                got.session_token or None,
                expires.timestamp() if expires is not None else None,
            )
            return self._held


_CLIENTS: dict[Settings, Client] = {}
_CLIENTS_LOCK = threading.Lock()
_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _CLIENTS_LOCK
    _CLIENTS_LOCK = threading.Lock()
    for client in list(_LIVE):
        client._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def client_for(s: Settings) -> Client:
    """One client per distinct settings for the process, as for the awscrt engines: S3 to S3
    opens two stores on one endpoint, a recursive copy a store per object."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(s)
        if client is None:
            if len(_CLIENTS) > 16:  # environments come and go (tests): keep a few
                for old in _CLIENTS.values():
                    old.close()
                _CLIENTS.clear()
            client = _CLIENTS[s] = Client(s, credentials_for(s))
        return client
