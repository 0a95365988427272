"""One rig per provider, each on its real server: a store, where its test objects live, and an
independent way to put and read objects (the server's own client, the file system), so that
a case never checks mover's provider with mover's provider.

Session servers (SeaweedFS, Swift) come from tests/fixtures_servers.py; HTTP and sshd are
started here once per session. A rig is built lazily: only the servers a selected case needs
are started (``-k file`` starts none).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mover.errors import ObjectNotFound
from mover.location import Location, parse
from mover.provider import StoreProvider
from mover.providers import memory as memory_mod
from mover.resolve import clear_cache, providers
from tests.conformance.sshd import SshdServer
from tests.httpserver import HttpServer
from tests.store_envs import use_s3, use_swift

#: Every provider the suite runs against; the test plugin's ``vendorx`` is a third party's.
PROVIDERS = ("file", "memory", "s3", "swift", "http", "sftp", "vendorx")


@dataclass
class Rig:
    """A provider under test.

    Attributes:
        name: the rig's id.
        store: the open store.
        base: the folder (a prefix ending in ``/``) every test object of this rig lives under.
        seed: puts an object (full key, bytes) without mover.
        fetch: reads an object (full key) without mover; None when it does not exist.
        cleanup: called after the test.
    """

    name: str
    store: StoreProvider
    base: Location
    seed: Callable[[str, bytes], None]
    fetch: Callable[[str], bytes | None]
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def key(self, relative: str) -> str:
        return self.base.child(relative).full_key

    def loc(self, relative: str) -> Location:
        return self.base.child(relative)


def _open(url: str, options: dict[str, Any] | None = None) -> tuple[StoreProvider, Location]:
    location = parse(url)
    return providers.get(location.scheme).open(location, options or {}), location


def _file_fetch(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _file_seed(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _local_rig(name: str, url: str, options: dict[str, Any] | None = None) -> Rig:
    """A store whose full keys are absolute paths on this host (files, sftp to localhost)."""
    store, base = _open(url, options)
    seed = lambda k, d: _file_seed(Path("/" + k), d)  # noqa: E731
    return Rig(name, store, base, seed, lambda k: _file_fetch(Path("/" + k)))


def _file_rig(tmp: Path) -> Rig:
    return _local_rig("file", f"{tmp}/")


def _memory_rig(tmp: Path) -> Rig:
    name = f"conf-{uuid.uuid4().hex[:8]}"
    store, base = _open(f"memory://{name}/p/")
    objects = memory_mod._OBJECTS.setdefault(name, {})

    def seed(k: str, d: bytes) -> None:
        objects[k] = bytes(d)

    return Rig("memory", store, base, seed, objects.get)


def _s3_rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Rig:
    server = request.getfixturevalue("s3_server")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    use_s3(monkeypatch, server)
    store, base = _open(f"s3://{bucket}/p/")

    def fetch(k: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=k)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Rig(
        "s3", store, base, lambda k, d: client.put_object(Bucket=bucket, Key=k, Body=d), fetch
    )


def _swift_rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Rig:
    from swiftclient.exceptions import ClientException

    server = request.getfixturevalue("swift_server")
    conn = request.getfixturevalue("swift_connection")
    container = request.getfixturevalue("swift_container")
    use_swift(monkeypatch, server)
    store, base = _open(f"swift://{container}/p/", {"min_part_bytes": 1})

    def fetch(k: str) -> bytes | None:
        try:
            return conn.get_object(container, k)[1]
        except ClientException as exc:
            if exc.http_status == 404:
                return None
            raise

    return Rig("swift", store, base, lambda k, d: conn.put_object(container, k, d), fetch)


def _http_rig(tmp: Path, server: HttpServer) -> Rig:
    store, base = _open(server.url(f"{tmp.name}/"))
    root = Path(server.root)
    rig = Rig(
        "http",
        store,
        base,
        lambda k, d: _file_seed(root / k, d),
        lambda k: _file_fetch(root / k),
    )
    # An HTTP store learns range support from its first answer, as prepare's stat teaches it.
    rig.seed(rig.key("probe.bin"), b"probe")
    store.stat(rig.key("probe.bin"))
    return rig


def _sftp_rig(tmp: Path, sshd: SshdServer) -> Rig:
    # smart_open opens files and cannot make folders (no make_parents over sftp): the
    # folders the write cases use exist beforehand, as on a real sftp target.
    for folder in ("w", "y"):
        (tmp / folder).mkdir()
    options = {"transport_params": sshd.transport_params()}
    return _local_rig("sftp", f"sftp://127.0.0.1{tmp}/", options)


def _vendorx_rig(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setenv("VENDORX_ROOT", str(tmp))
    store, base = _open("vendorx://bucket/p/")
    return Rig(
        "vendorx",
        store,
        base,
        lambda k, d: _file_seed(tmp / "bucket" / k, d),
        lambda k: _file_fetch(tmp / "bucket" / k),
    )


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    with HttpServer(tmp_path_factory.mktemp("http-root")) as server:
        yield server


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """A private sshd for the sftp rig: skipped here when sshd or paramiko is missing, a
    failure in CI (where .ci/install-servers.sh installs openssh-server)."""
    server = SshdServer(tmp_path_factory.mktemp("sshd"))
    try:
        import paramiko  # noqa: F401  (smart_open[ssh])

        server.start()
    except (ImportError, FileNotFoundError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set: a missing server fails)", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()


def make_rig(
    kind: str, request: pytest.FixtureRequest, tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> Rig:
    """The rig of provider ``kind`` (starting the servers it needs, once a session)."""
    if kind == "file":
        return _file_rig(tmp)
    if kind == "memory":
        return _memory_rig(tmp)
    if kind == "s3":
        return _s3_rig(request, monkeypatch)
    if kind == "swift":
        return _swift_rig(request, monkeypatch)
    if kind == "http":
        return _http_rig(tmp, request.getfixturevalue("http_server"))
    if kind == "sftp":
        return _sftp_rig(tmp, request.getfixturevalue("sshd_server"))
    if kind == "vendorx":
        return _vendorx_rig(tmp, monkeypatch)
    raise AssertionError(kind)


@pytest.fixture(params=PROVIDERS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Rig]:
    """The provider under test, on its real server."""
    clear_cache()
    made = make_rig(request.param, request, tmp_path, monkeypatch)
    yield made
    made.store.close()
    clear_cache()


@pytest.fixture
def partner(tmp_path: Path) -> Rig:
    """A file store: the other side of a transfer when a case moves bytes through a strategy."""
    folder = tmp_path / "partner"
    folder.mkdir()
    return _file_rig(folder)


def absent(rig: Rig, key: str) -> bool:
    """True when the object is gone, as the server (not mover) says."""
    return rig.fetch(key) is None


__all__ = ["PROVIDERS", "ObjectNotFound", "Rig", "absent", "make_rig"]
