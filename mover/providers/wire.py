"""HTTP/1.1 on one socket, for the S3 client (:mod:`mover.providers.s3_http`).

Why not ``http.client``: it parses every answer's headers with the ``email`` package, about
0.2 ms of CPU per request (a quarter of a 16 KiB PutObject's client CPU measured here, on two
cores the server shares), and its import (``email.parser``, ``ssl``) costs about 25 ms per
command. An S3 answer needs far less: a status line, ``name: value`` lines, and a body framed
by ``Content-Length``, ``Transfer-Encoding: chunked`` or the connection's end.

What is kept from ``http.client``: answers read through one buffered reader per connection
(``readinto`` lands a large body straight in the caller's buffer), interim 1xx answers skipped,
bodiless answers (HEAD, 204, 304), keep-alive unless the server says ``close`` or speaks
HTTP/1.0, line and header-count limits, header values refused when they hold a line break (no
header injection through a key or a token), ``TCP_NODELAY`` so that a request sent in two
writes (headers, then a large body) is not held back by Nagle's algorithm.

Errors are :class:`OSError` subclasses, as the caller's retry rules expect of a transport: a
connection the server closed before answering is :class:`RemoteDisconnected` (a
``ConnectionResetError``: a reused keep-alive connection that went stale), a malformed answer
or a body cut short is :class:`WireError`.
"""

from __future__ import annotations

import socket
from typing import Any

#: Longest status, header or chunk-size line accepted.
MAX_LINE = 65536
#: Most header lines accepted in one answer.
MAX_HEADERS = 100
#: A body up to this size goes out in the same write as the headers (one segment).
COALESCE_BYTES = 64 * 1024


class WireError(OSError):
    """An answer that breaks HTTP/1.1 framing (bad status line, bad chunk size, too long a
    line) or a body shorter than announced."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without a status line (a stale keep-alive)."""


class Response:
    """One answer: ``status``, ``headers`` (lower-case names), ``length`` (the body's size if
    framed by ``Content-Length``, else None), ``will_close``; the body is read with
    :meth:`readinto` or :meth:`read`, and must be read whole before the connection is reused."""

    def __init__(
        self, fp: Any, status: int, headers: dict[str, str], method: str, http10: bool
    ) -> None:
        self._fp = fp
        self.status = status
        self.headers = headers
        connection = headers.get("connection", "").lower()
        self.will_close = "close" in connection or (http10 and "keep-alive" not in connection)
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.length: int | None
        if method == "HEAD" or status in (204, 304):
            self.length = 0
            self.chunked = False
        elif self.chunked:
            self.length = None
        else:
            declared = headers.get("content-length")
            if declared is None:
                self.length = None  # the body ends with the connection
                self.will_close = True
            else:
                try:
                    self.length = int(declared)
                except ValueError:
                    raise WireError(f"bad Content-Length {declared[:40]!r}") from None
                if self.length < 0:
                    raise WireError(f"negative Content-Length {declared[:40]!r}")
        self._left = self.length  # body bytes not read yet (None: unknown)
        self._chunk_left = 0
        self.done = self.length == 0

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` body bytes into ``view``; 0 at the body's end. A body cut
        short by the connection's end returns what came (the caller compares with ``length``)."""
        if self.done or not len(view):
            return 0
        if self.chunked:
            return self._readinto_chunked(view)
        if self._left is not None:
            view = view[: self._left]
        n = self._fp.readinto(view) or 0
        if self._left is not None:
            self._left -= n
            if self._left == 0:
                self.done = True
        if n == 0:
            self.done = True
        return n

    def read(self, amount: int | None = None) -> bytes:
        """The rest of the body (or at most ``amount`` bytes of it); raises
        :class:`WireError` when a body framed by its length or chunks is cut short."""
        if self.done:
            return b""
        if amount is None and not self.chunked and self._left is None:
            data = self._fp.read()
            self.done = True
            return data
        want = self._left if amount is None else amount
        if want is None:  # chunked, whole
            pieces = []
            piece = bytearray(64 * 1024)
            while n := self.readinto(memoryview(piece)):
                pieces.append(bytes(piece[:n]))
            return b"".join(pieces)
        if self._left is not None:
            want = min(want, self._left)
        out = bytearray(want)
        got = 0
        while got < want:
            n = self.readinto(memoryview(out)[got:])
            if not n:
                break
            got += n
        if got < want and amount is None:
            raise WireError(f"the connection closed after {got} of {want} body bytes")
        return bytes(out[:got])

    def _readinto_chunked(self, view: memoryview) -> int:
        fp = self._fp
        total = 0
        while total < len(view):
            if self._chunk_left == 0:
                size = self._next_chunk()
                if size == 0:
                    break
            step = min(self._chunk_left, len(view) - total)
            n = fp.readinto(view[total : total + step]) or 0
            if n == 0:
                raise WireError("the connection closed inside a chunk")
            total += n
            self._chunk_left -= n
            if self._chunk_left == 0 and fp.read(2) != b"\r\n":
                raise WireError("a chunk does not end with CRLF")
        return total

    def _next_chunk(self) -> int:
        """Read the next chunk's size line; at the last (size 0) read the trailers."""
        line = self._fp.readline(MAX_LINE + 1)
        if not line:
            raise WireError("the connection closed before the next chunk")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise WireError(f"bad chunk size line {line[:40]!r}") from None
        if size < 0:
            raise WireError(f"bad chunk size line {line[:40]!r}")
        if size == 0:
            _read_headers(self._fp)  # trailers, ignored
            self.done = True
            return 0
        self._chunk_left = size
        return size


class Connection:
    """One keep-alive connection to ``host:port`` (TLS when ``tls``, an ``ssl.SSLContext``).
    ``timeout`` applies to connecting; :attr:`sock` may be given another for reads."""

    def __init__(self, host: str, port: int | None, timeout: float, tls: Any = None) -> None:
        self.host = host
        self.port = port or (443 if tls is not None else 80)
        self.timeout = timeout
        self.tls = tls
        self.sock: socket.socket | None = None
        self._fp: Any = None

    def connect(self) -> None:
        """Connect (the connect time-out), then the TLS handshake. A handshake that fails
        leaves :attr:`sock` set, so the caller tells a refused certificate from a server that
        is not there (as ``http.client`` does); :meth:`close` closes it."""
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        self._fp = sock.makefile("rb")

    def close(self) -> None:
        fp, sock = self._fp, self.sock
        self._fp = self.sock = None
        if fp is not None:
            fp.close()
        if sock is not None:
            sock.close()

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: memoryview | bytes | None = None,
    ) -> None:
        """Send a request: ``target`` is the path and query as they go on the wire (encoded);
        ``headers`` must hold Host (and Content-Length when there is a body)."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1"]
        for name, value in headers:
            value = str(value)
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} holds a line break or a colon in its name")
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is not None and 0 < len(body) <= COALESCE_BYTES:
            self.sock.sendall(head + bytes(body))
            return
        self.sock.sendall(head)
        if body is not None and len(body):
            self.sock.sendall(body)

    def response(self, method: str) -> Response:
        """Read the answer's status line and headers (1xx interim answers skipped)."""
        fp = self._fp
        if fp is None:
            raise WireError("no request was sent on this connection")
        while True:
            line = fp.readline(MAX_LINE + 1)
            if not line:
                raise RemoteDisconnected("the server closed the connection without an answer")
            if len(line) > MAX_LINE:
                raise WireError("the status line is too long")
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise WireError(f"bad status line {line[:80]!r}")
            try:
                status = int(parts[1])
            except ValueError:
                raise WireError(f"bad status line {line[:80]!r}") from None
            headers = _read_headers(fp)
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and other interim answers
            return Response(fp, status, headers, method, parts[0] == b"HTTP/1.0")


def _read_headers(fp: Any) -> dict[str, str]:
    """``name: value`` lines up to the empty line; names lower-cased, repeated names joined
    with ", " (as HTTP allows), continuation lines refused."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = fp.readline(MAX_LINE + 1)
        if not line:
            raise WireError("the connection closed inside the headers")
        if len(line) > MAX_LINE:
            raise WireError("a header line is too long")
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise WireError(f"bad header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise WireError(f"more than {MAX_HEADERS} header lines")
