"""A fault-injecting HTTP reverse proxy for tests: real sockets between a real client (boto3,
swiftclient, requests, mover) and a real server (SeaweedFS, Swift, the test HTTP server).

The proxy listens on a free loopback port and forwards every request to one upstream, with
the ``Host`` header unchanged (so SigV4 signatures still verify at the server). Rules decide
which requests get a fault:

    flip_response   one byte of the response body is inverted (a corrupted download)
    flip_request    one byte of the request body is inverted (a corrupted upload)
    status          the request never reaches the server; the client gets ``status`` (503
                    SlowDown, 500 InternalError, ...) with an S3-style XML error body
    reset           the response's headers and part of its body are sent, then the connection
                    is reset (RST): a download broken mid-body
    reset_request   the connection is reset before the request reaches the server
    stall           the response waits ``stall_s`` seconds before its first byte (the server
                    has already acted on the request: a slow answer)
    hold            the request waits ``stall_s`` seconds before it is forwarded (the server
                    has not seen it yet: a slow request); dropped if the client left meanwhile

A rule matches on method, a regular expression over the path (with its query) and optionally
a header's presence; it skips its first ``after`` matches, then fires ``times`` times (or with
probability ``probability`` from a seeded generator, so that a run can be replayed). Every
fired fault is recorded in :attr:`FaultProxy.fired`, and every answer the server gave in
:attr:`FaultProxy.answers` (method, path, status), so that a test can tell which requests
reached the server and how they ended (a 401 of an expired token, say).

Use::

    with FaultProxy("127.0.0.1", s3_port, seed=7) as proxy:
        rule = proxy.add(Rule("flip_response", method="GET", header="Range"))
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        ...
        assert rule.fired == 1
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

#: Bytes relayed per read.
_PIECE = 1 << 20
#: Headers that describe one hop, not the message: never copied through.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
}
ACTIONS = ("flip_response", "flip_request", "status", "reset", "reset_request", "stall", "hold")


@dataclass
class Rule:
    """One kind of fault and the requests it applies to.

    Attributes:
        action: one of :data:`ACTIONS`.
        method: HTTP method to match (None: any).
        path: regular expression searched in the request path with its query (None: any).
        header: a request header that must be present (e.g. ``Range``), case-insensitive.
        after: matching requests to let through untouched before the rule fires.
        times: how many times the rule fires (None: every match).
        probability: with ``times`` None, fire on a match with this probability (seeded).
        status: for ``status``, the HTTP status to answer; ``code`` the S3 error code.
        stall_s: for ``stall``, seconds to wait before answering; for ``hold``, before
            forwarding.
        min_body: only fire on messages whose body is at least this many bytes (so a flip has
            a byte to land on).
    """

    action: str
    method: str | None = None
    path: str | None = None
    header: str | None = None
    after: int = 0
    times: int | None = 1
    probability: float = 1.0
    status: int = 503
    code: str = "SlowDown"
    stall_s: float = 5.0
    min_body: int = 1
    seen: int = 0
    fired: int = 0
    _re: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r} (known: {', '.join(ACTIONS)})")
        self._re = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str, headers: http.client.HTTPMessage) -> bool:
        if self.method and method != self.method:
            return False
        if self._re is not None and not self._re.search(path):
            return False
        return not (self.header and self.header not in headers)


@dataclass(frozen=True)
class Fired:
    """A fault that happened: which rule, on which request, and where a flip landed."""

    action: str
    method: str
    path: str
    offset: int | None = None


class FaultProxy:
    """A reverse proxy to ``upstream_host:upstream_port`` on ``127.0.0.1`` at a free port."""

    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules: list[Rule] = []
        self.fired: list[Fired] = []
        self.answers: list[tuple[str, str, int]] = []
        self.requests = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def reseed(self, seed: int) -> None:
        """Forget rules, fired faults and answers and restart the generator: a proxy shared
        by many tests then draws for each one as a fresh proxy with ``seed`` would."""
        with self._lock:
            self.rules.clear()
            self.fired.clear()
            self.answers.clear()
            self.requests = 0
            self._random = random.Random(seed)

    def _pick(
        self,
        method: str,
        path: str,
        headers: http.client.HTTPMessage,
        size: int | None,
        request_side: bool,
    ) -> tuple[Rule | None, float]:
        """The rule that fires for this request (at most one), and a draw for the offset."""
        with self._lock:
            for rule in self.rules:
                if (rule.action == "flip_request") != request_side:
                    continue
                if not rule.matches(method, path, headers):
                    continue
                if request_side and (size is None or size < rule.min_body):
                    continue  # no body to flip a byte of (a response's size is checked later)
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.times is not None:
                    if rule.fired >= rule.times:
                        continue
                elif self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule, self._random.random()
        return None, 0.0

    def _record(self, fired: Fired) -> None:
        with self._lock:
            self.fired.append(fired)

    def _answer(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.answers.append((method, path, status))

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up on a faulty answer close their end: not worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end (a peek that finds end-of-file or a reset)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        return

    def _read_request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # Decode the framing (aws-chunked bodies stay intact inside it) and re-send with a
            # length: the server sees the same bytes.
            out = bytearray()
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=300)
        return self._upstream

    def _handle(self) -> None:
        proxy = self.owner
        with proxy._lock:
            proxy.requests += 1
        method, path = self.command, self.path
        body = self._read_request_body()

        rule, draw = proxy._pick(method, path, self.headers, len(body), request_side=True)
        if rule is not None:  # flip_request
            at = int(draw * len(body))
            body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1 :]
            proxy._record(Fired(rule.action, method, path, at))

        rule, draw = proxy._pick(method, path, self.headers, None, request_side=False)
        if rule is not None and rule.action == "reset_request":
            proxy._record(Fired(rule.action, method, path))
            self.close_connection = True
            _reset(self.connection)
            return
        if rule is not None and rule.action == "status":
            proxy._record(Fired(rule.action, method, path))
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{rule.code}</Code>'
                f"<Message>injected by the test fault proxy</Message></Error>"
            ).encode()
            self.send_response(rule.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(xml)
            return
        if rule is not None and rule.action == "hold":
            proxy._record(Fired(rule.action, method, path))
            time.sleep(rule.stall_s)
            rule = None
            if _client_gone(self.connection):
                # A client that gave up (or died) during the hold: the request never
                # reaches the server, as a request lost on the way would not.
                self.close_connection = True
                return

        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers["Content-Length"] = str(len(body))
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._upstream = None
            proxy._answer(method, path, 502)
            self.send_error(502, "upstream unreachable")
            return
        proxy._answer(method, path, resp.status)

        length = resp.getheader("Content-Length")
        size = int(length) if length is not None else None
        if rule is None or rule.action == "stall":
            pass
        elif rule.action in ("flip_response", "reset") and (
            size is None or size < rule.min_body or method == "HEAD"
        ):
            # Nothing to corrupt in this answer: give the fault back for the next match.
            with proxy._lock:
                rule.fired -= 1
            rule = None
        if rule is not None and rule.action == "stall":
            proxy._record(Fired(rule.action, method, path))
            time.sleep(rule.stall_s)

        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP:
                self.send_header(k, v)
        chunked = size is None and method != "HEAD" and resp.status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        flip_at = reset_at = None
        if rule is not None and rule.action == "flip_response" and size:
            flip_at = int(draw * size)
            proxy._record(Fired(rule.action, method, path, flip_at))
        if rule is not None and rule.action == "reset" and size:
            reset_at = int(draw * size)
            proxy._record(Fired(rule.action, method, path, reset_at))

        sent = 0
        while True:
            piece = resp.read(_PIECE)
            if not piece:
                break
            if reset_at is not None and sent + len(piece) > reset_at:
                self.wfile.write(piece[: reset_at - sent])
                self.wfile.flush()
                resp.close()
                conn.close()
                self._upstream = None
                self.close_connection = True
                _reset(self.connection)
                return
            if flip_at is not None and sent <= flip_at < sent + len(piece):
                i = flip_at - sent
                piece = piece[:i] + bytes([piece[i] ^ 0xFF]) + piece[i + 1 :]
            if chunked:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                self.wfile.write(piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if resp.will_close:
            conn.close()
            self._upstream = None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_COPY = _handle
