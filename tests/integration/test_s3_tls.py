"""S3 over HTTPS: the standard-library client (the default engine) behind TLS.

SeaweedFS is fronted by a small TLS-terminating proxy whose certificate is signed by a CA the
test makes (``tests/secure_redis.make_tls_files``). ``mover copy`` must upload and download
through it with that CA named by ``AWS_CA_BUNDLE`` (what boto3 and the aws CLI read), and must
refuse, in one line and storing nothing, when the CA is not trusted. Results are read back
with plain boto3 on the server's own HTTP port and compared with sha256 of the source, so no
digest of mover's proves anything here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.secure_redis import make_tls_files

if TYPE_CHECKING:
    from tests.servers import SeaweedS3Server

pytestmark = [pytest.mark.integration, pytest.mark.s3]

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


class TlsProxy:
    """Accepts TLS on 127.0.0.1 and pipes each connection's plain bytes to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes_failed = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_failed += 1
            raw.close()
            return
        plain = socket.create_connection(self.upstream)
        done = threading.Event()

        def pipe(src: Any, dst: Any) -> None:
            try:
                while data := src.recv(256 * 1024):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                done.set()

        threading.Thread(target=pipe, args=(plain, tls), daemon=True).start()
        pipe(tls, plain)
        done.wait(5)
        for s in (tls, plain):
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def tls_s3(s3_server: SeaweedS3Server, tmp_path: Path) -> Iterator[tuple[TlsProxy, Path]]:
    ca, cert, key = make_tls_files(tmp_path)
    proxy = TlsProxy(("127.0.0.1", s3_server.port), cert, key)
    try:
        yield proxy, ca
    finally:
        proxy.close()


def _mover(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mover.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _env(s3_server: SeaweedS3Server, proxy: TlsProxy, tmp_path: Path, ca: Path | None) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MOVER_S3", "SSL_CERT", "REQUESTS_CA"))
    }
    env.update(s3_server.env())
    env.update(
        AWS_ENDPOINT_URL=f"https://127.0.0.1:{proxy.port}",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        MOVER_STATE_DIR=str(tmp_path / "state"),
        MOVER_CONFIG=str(tmp_path / "no-config.toml"),
        PYTHONPATH=str(ROOT),
    )
    if ca is not None:
        env["AWS_CA_BUNDLE"] = str(ca)
    return env


def test_copies_up_and_down_over_https_with_the_ca_bundle(
    s3_server: SeaweedS3Server, s3_bucket: str, tls_s3: tuple[TlsProxy, Path], tmp_path: Path
) -> None:
    """A multipart upload (12 MiB in 5 MiB chunks) and its ranged download over TLS; the
    object read back over plain HTTP by boto3 and the downloaded file both match the
    source's sha256."""
    import boto3

    proxy, ca = tls_s3
    env = _env(s3_server, proxy, tmp_path, ca)
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(12 * MiB))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    url = f"s3://{s3_bucket}/tls/up.bin"
    up = _mover(env, "copy", "-q", "--chunk-size", "5MiB", str(src), url)
    assert up.returncode == 0, up.stderr
    body = boto3.client("s3", **s3_server.client_kwargs()).get_object(
        Bucket=s3_bucket, Key="tls/up.bin"
    )["Body"]
    assert hashlib.sha256(body.read()).hexdigest() == want
    down = tmp_path / "down.bin"
    got = _mover(env, "copy", "-q", "--chunk-size", "5MiB", url, str(down))
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(down.read_bytes()).hexdigest() == want
    assert proxy.handshakes_failed == 0


def test_an_untrusted_certificate_is_refused_in_one_line_and_nothing_is_stored(
    s3_server: SeaweedS3Server, s3_bucket: str, tls_s3: tuple[TlsProxy, Path], tmp_path: Path
) -> None:
    import boto3

    proxy, _ = tls_s3
    env = _env(s3_server, proxy, tmp_path, None)  # the test CA is in no trust store
    src = tmp_path / "small.bin"
    src.write_bytes(b"x" * 1000)
    out = _mover(env, "copy", "-q", str(src), f"s3://{s3_bucket}/tls/refused.bin")
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "certificate" in lines[0].lower(), lines[0]
    assert "Traceback" not in out.stderr
    assert proxy.handshakes_failed >= 1
    listed = boto3.client("s3", **s3_server.client_kwargs()).list_objects_v2(
        Bucket=s3_bucket, Prefix="tls/refused"
    )
    assert listed.get("KeyCount", 0) == 0
