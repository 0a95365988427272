"""A Redis that a production fleet would run: TLS only (no plain port) and a password.

The test makes its own certificate authority and server certificate with ``cryptography``
(no ``openssl`` command needed), starts ``redis-server --port 0 --tls-port P`` with
``--requirepass``, and hands out ``rediss://`` URLs whose query names the CA
(``ssl_ca_certs``) and demands verification (``ssl_cert_reqs=required``): what redis-py,
Celery's result backend and mover's broker set-up all read.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
import string
from pathlib import Path

from tests.servers import RedisServer, free_port


def make_tls_files(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``host`` signed by it: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mover test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


class SecureRedisServer(RedisServer):
    """``redis-server`` on a TLS port only, with ``requirepass`` set to a fresh password.

    Attributes:
        password (str): the planted secret (letters and digits, so that it is easy to find).
        ca_file (Path): the CA that signed the server's certificate.
        url (str): ``rediss://:PASSWORD@127.0.0.1:PORT/0?ssl_cert_reqs=required&ssl_ca_certs=CA``.
        bare_url (str): the same without the password (what a configuration file holds).
    """

    kind = "redis-tls"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        alphabet = string.ascii_letters + string.digits
        self.password = "plantedBrokerPw" + "".join(secrets.choice(alphabet) for _ in range(16))
        self.ca_file = Path()
        self.bare_url = ""

    def db_url(self, db: int, password: bool = True) -> str:
        auth = f":{self.password}@" if password else ""
        return (
            f"rediss://{auth}127.0.0.1:{self.port}/{db}"
            f"?ssl_cert_reqs=required&ssl_ca_certs={self.ca_file}"
        )

    def _prepare(self, base_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = base_dir
        self.ca_file, self.cert_file, self.key_file = make_tls_files(base_dir)
        self.url = self.db_url(0)
        self.bare_url = self.db_url(0, password=False)

    def _launch(self) -> None:
        argv = [
            self.binary,
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.cert_file),
            "--tls-key-file", str(self.key_file),
            "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "no",
            "--requirepass", self.password,
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        self._spawn("redis-server", argv)

    def _probe(self) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError, ssl.SSLError):
            return False
