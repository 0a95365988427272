"""A small HTTP server for ``mover metrics`` and ``mover dashboard`` (the standard library's).

Why not a framework: two read-only surfaces with a handful of routes do not need one, and the
fewer dependencies a monitor has, the fewer it breaks with. What this adds to
``ThreadingHTTPServer``:

- **basic auth**, checked in constant time against ``USER:PASS[,USER:PASS]`` (the same form
  as ``mover flower``); a wrong or missing password gets 401, and nothing else is served;
- **routes**: a path maps to a function returning a :class:`Reply`;
- **quiet, secret-free access logs**: the method, path and status only, on the
  ``mover.monitor.http`` logger (never a header: the Authorization header holds a password).
"""

from __future__ import annotations

import base64
import hmac
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger("mover.monitor.http")

DEFAULT_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200
    headers: Mapping[str, str] | None = None


Route = Callable[[str], Reply]


def parse_credentials(value: str) -> list[tuple[bytes, bytes]]:
    """``USER:PASS[,USER:PASS...]`` as pairs; the caller validated the form
    (:func:`mover.cli.flower.check_credentials`)."""
    pairs = []
    for pair in value.split(","):
        user, _, password = pair.partition(":")
        pairs.append((user.encode(), password.encode()))
    return pairs


def authorized(header: str | None, credentials: list[tuple[bytes, bytes]]) -> bool:
    """Whether an ``Authorization: Basic ...`` header names one of ``credentials``. Every
    pair is compared, in constant time, whatever matched before."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).partition(b":")
    except ValueError:
        return False
    ok = False
    for want_user, want_password in credentials:
        same = hmac.compare_digest(user, want_user) & hmac.compare_digest(password, want_password)
        ok |= bool(sep) and same
    return ok


class _Handler(BaseHTTPRequestHandler):
    server: MonitorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # see log_request: the default would print to stderr

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s", self.command, urlsplit(self.path).path, code)

    def _send(self, reply: Reply, head_only: bool = False) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(reply.body)

    def do_GET(self, head_only: bool = False) -> None:
        server = self.server
        if server.credentials and not authorized(
            self.headers.get("Authorization"), server.credentials
        ):
            self._send(
                Reply(
                    b"authentication required\n",
                    status=401,
                    headers={"WWW-Authenticate": f'Basic realm="{server.realm}", charset="UTF-8"'},
                ),
                head_only,
            )
            return
        path = urlsplit(self.path).path
        route = server.routes.get(path)
        if route is None:
            below = [p for p in server.routes if p != "/" and p.endswith("/")]
            prefix = max((p for p in below if path.startswith(p)), key=len, default=None)
            route = server.routes.get(prefix) if prefix else None
        if route is None:
            self._send(Reply(b"not found\n", status=404), head_only)
            return
        try:
            reply = route(path)
        except Exception:
            log.exception("error serving %s", path)
            reply = Reply(b"internal error\n", status=500)
        self._send(reply, head_only)

    def do_HEAD(self) -> None:
        self.do_GET(head_only=True)


class MonitorServer(ThreadingHTTPServer):
    """A threading HTTP server with routes and optional basic auth.

    Parameters:
        address, port: where to listen (port 0: a free one, see :attr:`port`).
        routes: path -> function; a path ending in ``/`` (but ``/`` itself) also serves what
            lies below it.
        credentials: ``USER:PASS[,USER:PASS]``; None serves without authentication.
        realm: shown by browsers in the password prompt.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: str,
        port: int,
        routes: Mapping[str, Route],
        credentials: str | None = None,
        realm: str = "mover",
    ) -> None:
        self.routes = dict(routes)
        self.credentials = parse_credentials(credentials) if credentials else []
        self.realm = realm
        if ":" in address:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((address, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (the controller serves metrics beside its loop)."""
        thread = threading.Thread(target=self.serve_forever, name="mover-monitor-http", daemon=True)
        thread.start()
        return thread
