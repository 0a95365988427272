"""A small, real HTTP server for tests of the HTTP source: files from a folder, on loopback.

Real sockets and a real HTTP/1.1 server (keep-alive, ranged answers), so the provider's
requests go over the wire as they would to nginx; switches shape it like the servers mover
must cope with:

    ranges (bool): answer ``Range`` with ``206`` and advertise ``Accept-Ranges: bytes``
        (default true); off, ranges are ignored and every GET answers ``200`` with the whole
        file, like a server or proxy without range support.
    claims_ranges (bool): with ``ranges`` off, still send ``Accept-Ranges: bytes`` (a server
        that says it can and then answers ``200``: the provider must refuse it).
    head (bool): answer HEAD (default true); off, HEAD gets ``405`` (some object stores and
        presigned URLs refuse HEAD).
    auth (tuple[str, str] | None): require basic authentication (``401`` otherwise).
    forbidden (tuple[str, ...]): path prefixes answered with ``403``.
    truncate_after (int | None): full-body GETs send only this many bytes, then drop the
        connection (a broken transfer).
    gone_after (int | None): ranged GETs starting at or beyond this offset answer ``404``
        (the object vanished in the middle of a copy).
    tls (tuple[str, str] | None): serve HTTPS with this certificate and key file
        (:func:`make_certificate` makes a self-signed pair for ``127.0.0.1``).
    digest (str | None): state the whole file's digest on HEAD and ``200`` answers, as
        ``"content-md5"`` (``Content-MD5``, RFC 1864) or ``"repr-digest"``
        (``Repr-Digest: sha-256=:...:``, RFC 9530).

Use it as a context manager; the server is stopped (and its port released) on exit::

    with HttpServer(folder, ranges=False) as server:
        url = server.url("a/b.bin")
"""

from __future__ import annotations

import base64
import email.utils
import os
import re
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: Bytes per write when sending a file.
_SEND_BYTES = 1 << 20


class HttpServer:
    """Serves ``root`` on ``127.0.0.1`` at a free port, in a background thread."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        ranges: bool = True,
        claims_ranges: bool = False,
        head: bool = True,
        auth: tuple[str, str] | None = None,
        forbidden: tuple[str, ...] = (),
        truncate_after: int | None = None,
        gone_after: int | None = None,
        tls: tuple[str, str] | None = None,
        digest: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.digest = digest
        self.ranges = ranges
        self.claims_ranges = claims_ranges
        self.head = head
        self.auth = auth
        self.forbidden = forbidden
        self.truncate_after = truncate_after
        self.gone_after = gone_after
        self.tls = tls
        #: Every request seen, as ``(method, path, Range header or None)``.
        self.requests: list[tuple[str, str, str | None]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> HttpServer:
        handler = type("Handler", (_Handler,), {"server_config": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens (or, once stopped, listened) on."""
        assert self._port is not None, "server not started"
        return self._port

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.endpoint}/{path.lstrip('/')}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_config: HttpServer

    def log_message(self, format: str, *args: object) -> None:  # quiet in tests
        pass

    # -- methods ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        if not self.server_config.head:
            self._status(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET"})
            return
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    # -- serving ------------------------------------------------------------------------------

    def _serve(self, body: bool) -> None:
        cfg = self.server_config
        path = unquote(urlsplit(self.path).path).lstrip("/")
        cfg.requests.append((self.command, self.path, self.headers.get("Range")))
        if cfg.auth is not None and not self._authorized(cfg.auth):
            self._status(HTTPStatus.UNAUTHORIZED, {"WWW-Authenticate": 'Basic realm="mover"'})
            return
        if any(path.startswith(p) for p in cfg.forbidden):
            self._status(HTTPStatus.FORBIDDEN)
            return
        file = (cfg.root / path).resolve()
        if not file.is_relative_to(cfg.root) or not file.is_file():
            self._status(HTTPStatus.NOT_FOUND)
            return
        st = file.stat()
        size = st.st_size
        etag = f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"'
        headers = {
            "ETag": etag,
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
            "Content-Type": "application/octet-stream",
        }
        if cfg.ranges or cfg.claims_ranges:
            headers["Accept-Ranges"] = "bytes"
        start, end = 0, size - 1
        status = HTTPStatus.OK
        wanted = self.headers.get("Range")
        if cfg.ranges and wanted and self.command == "GET":
            match = self.headers.get("If-Match")
            if match and match != etag and match != "*":
                self._status(HTTPStatus.PRECONDITION_FAILED)
                return
            span = _parse_range(wanted, size)
            if span is None:
                self._status(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"}
                )
                return
            start, end = span
            if cfg.gone_after is not None and start >= cfg.gone_after:
                self._status(HTTPStatus.NOT_FOUND)
                return
            status = HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if cfg.digest and status == HTTPStatus.OK:
            headers.update(_digest_header(cfg.digest, file))
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not body or length == 0:
            return
        limit = length
        if status == HTTPStatus.OK and cfg.truncate_after is not None:
            limit = min(length, cfg.truncate_after)
        with open(file, "rb") as f:
            f.seek(start)
            left = limit
            while left > 0:
                piece = f.read(min(_SEND_BYTES, left))
                if not piece:
                    break
                try:
                    self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                left -= len(piece)
        if limit < length:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

    def _authorized(self, auth: tuple[str, str]) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == auth

    def _status(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _digest_header(kind: str, file: Path) -> dict[str, str]:
    """The whole file's digest as a server states it (computed here with hashlib)."""
    import hashlib

    name = "md5" if kind == "content-md5" else "sha256"
    h = hashlib.new(name)
    with open(file, "rb") as f:
        while block := f.read(_SEND_BYTES):
            h.update(block)
    value = base64.b64encode(h.digest()).decode()
    if kind == "content-md5":
        return {"Content-MD5": value}
    return {"Repr-Digest": f"sha-256=:{value}:"}


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range, clipped; None if unsatisfiable."""
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def make_certificate(folder: str | os.PathLike[str]) -> tuple[str, str]:
    """A self-signed certificate for ``127.0.0.1`` (needs ``cryptography``): (cert, key) paths.

    The certificate is its own CA, so a client trusts it by ``verify=<cert path>``.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mover test server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(folder, "server.crt")
    key_path = os.path.join(folder, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path
