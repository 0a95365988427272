"""HTTP/1.1 framing of :mod:`mover.providers.wire` against a socket server that answers with
canned bytes: every way an S3 server may frame an answer, and the ways one may break it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from mover.providers import wire


class Canned:
    """A server on a free port: for each request it reads (headers and Content-Length body)
    it sends the next canned answer; ``close_after`` answers, it closes the connection."""

    def __init__(self, answers: list[bytes], close_after: int | None = None) -> None:
        self.answers = answers
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            data = b""
            for n, answer in enumerate(self.answers):
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    data += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + data[:length])
                data = data[length:]
                conn.sendall(answer)
                if self.close_after is not None and n + 1 >= self.close_after:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[Canned] = []

    def start(answers: list[bytes], close_after: int | None = None) -> wire.Connection:
        server = Canned(answers, close_after)
        servers.append(server)
        conn = wire.Connection("127.0.0.1", server.port, 5.0)
        conn.connect()
        return conn

    yield start
    for s in servers:
        s.close()


HOST = [("Host", "127.0.0.1")]


def test_length_framed_bodies_on_one_keep_alive_connection(serve) -> None:
    conn = serve(
        [
            b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "a"\r\n\r\nhello',
            b"HTTP/1.1 206 Partial\r\nContent-Length: 3\r\n\r\nabc",
        ]
    )
    conn.request("GET", "/b/k", HOST)
    r = conn.response("GET")
    assert (r.status, r.length, r.headers["etag"], r.will_close) == (200, 5, '"a"', False)
    assert r.read() == b"hello"
    conn.request("PUT", "/b/k?x=1", [*HOST, ("Content-Length", "4")], memoryview(b"data"))
    r = conn.response("PUT")
    buf = bytearray(10)
    assert r.readinto(memoryview(buf)) == 3 and bytes(buf[:3]) == b"abc"
    assert r.readinto(memoryview(buf)) == 0


def test_chunked_body_with_extensions_and_trailers(serve) -> None:
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    conn = serve([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body] * 2)
    conn.request("GET", "/", HOST)
    r = conn.response("GET")
    assert r.length is None and r.read() == b"Wikipedia"
    conn.request("GET", "/", HOST)  # the connection is still in step
    r = conn.response("GET")
    view = memoryview(bytearray(6))
    assert r.readinto(view) == 6 and bytes(view) == b"Wikipe"
    assert r.read(1) == b"d" and r.read() == b"ia" and r.done


def test_bodiless_answers_and_interim_continue(serve) -> None:
    conn = serve(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",  # HEAD: no body follows
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        ]
    )
    conn.request("HEAD", "/", HOST)
    r = conn.response("HEAD")
    assert r.headers["content-length"] == "1234" and r.read() == b""
    conn.request("DELETE", "/", HOST)
    r = conn.response("DELETE")
    assert r.status == 204 and r.read() == b""


def test_close_http10_and_a_body_to_the_end_of_the_connection(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"])
    conn.request("GET", "/", HOST)
    assert conn.response("GET").will_close
    conn = serve([b"HTTP/1.0 200 OK\r\n\r\nuntil the end"], close_after=1)
    conn.request("GET", "/", HOST)
    r = conn.response("GET")
    assert r.will_close and r.length is None and r.read() == b"until the end"


def test_a_body_cut_short_and_a_stale_connection(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], close_after=1)
    conn.request("GET", "/", HOST)
    with pytest.raises(wire.WireError, match="after 5 of 10"):
        conn.response("GET").read()
    conn = serve([], close_after=0)  # closes without answering: a stale keep-alive
    conn.request("GET", "/", HOST)
    with pytest.raises(ConnectionResetError):
        conn.response("GET")


@pytest.mark.parametrize(
    "answer",
    [
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: no\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_answers_are_wire_errors(serve, answer: bytes) -> None:
    conn = serve([answer], close_after=1)
    conn.request("GET", "/", HOST)
    with pytest.raises(wire.WireError):
        conn.response("GET").read()


def test_a_header_value_with_a_line_break_is_refused_before_sending(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    with pytest.raises(ValueError, match="line break"):
        conn.request("GET", "/", [*HOST, ("x-amz-meta-a", "v\r\nInjected: 1")])
