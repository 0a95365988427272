"""pytest fixtures that give tests real S3 (SeaweedFS), Swift and Redis servers.

Load it from a conftest with ``from tests.fixtures_servers import *`` (pytest refuses
``pytest_plugins`` outside the root conftest) or with ``-p tests.fixtures_servers``.

Each server is started once per session, on the first test that asks for it, so a run that
selects no integration test starts nothing. A server whose executable is missing skips its
tests on a developer's machine but *fails* them in CI (environment variable ``CI`` set to a
non-empty value), as dramatiq's fixtures do: in CI a missing server is a broken install step,
and skipping would turn it green. A server that is installed but does not start is an error
everywhere.

Fixtures:
    s3_server (session): :class:`tests.servers.SeaweedS3Server`.
    s3_client (function): a boto3 S3 client for it (path style, SigV4, us-east-1).
    s3_bucket (function): name of a fresh, empty bucket, deleted with its content afterwards.
    swift_server (session): :class:`tests.servers.SwiftServer`.
    swift_connection (function): a ``swiftclient.client.Connection`` to it (v1 auth).
    swift_container (function): name of a fresh, empty container, emptied and deleted after.
    redis_server (session): :class:`tests.servers.RedisServer` (private, append-only).
    redis_client (function): a ``redis.Redis`` on it, on a flushed database.
    postgres_url (session): a database of its own on the machine's PostgreSQL (127.0.0.1:5432,
        trust; ``MOVER_TEST_POSTGRES`` names another server), dropped at the end.
    rabbitmq_url (session): ``amqp://guest:guest@127.0.0.1:5672/<vhost>`` on the machine's
        RabbitMQ, with a vhost of its own made by ``rabbitmqctl`` and deleted at the end.
    catalogue_backend (function, parametrised): "sqlite" (the state directory's file) or
        "postgresql" (``MOVER_CATALOGUE_URL`` on ``postgres_url``, its tables emptied first).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from tests.servers import (
    BinaryNotFound,
    RedisServer,
    SeaweedS3Server,
    SwiftServer,
)

if TYPE_CHECKING:
    import redis
    from swiftclient.client import Connection

__all__ = [
    "catalogue_backend",
    "postgres_url",
    "rabbitmq_url",
    "redis_client",
    "redis_server",
    "s3_bucket",
    "s3_client",
    "s3_server",
    "swift_connection",
    "swift_container",
    "swift_server",
]

_ServerT = TypeVar("_ServerT", SeaweedS3Server, SwiftServer, RedisServer)


def _in_ci() -> bool:
    """Tell whether this run is CI's, where a missing server must fail, not skip."""
    return bool(os.environ.get("CI"))


def _missing(exc: BinaryNotFound) -> NoReturn:
    """Skip locally, fail in CI; never returns."""
    if _in_ci():
        pytest.fail(f"{exc} (CI is set: a missing server fails instead of skipping)", pytrace=False)
    pytest.skip(str(exc))


def _create(factory: type[_ServerT]) -> _ServerT:
    """Create a server (which looks up its executables), skipping or failing if one is missing.

    ``_missing`` is called outside the ``except`` block so the report shows one clear
    message, not "during handling of the above exception, another exception occurred".
    """
    try:
        return factory()
    except BinaryNotFound as exc:
        problem = exc
    _missing(problem)


def _serve(factory: type[_ServerT]) -> Iterator[_ServerT]:
    """Create, start, yield and always stop one server; apply the skip-or-fail policy."""
    server = _create(factory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _unique_name(prefix: str) -> str:
    """Return a bucket/container name no other test uses (3 to 63 lowercase characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# --- S3 -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3Server]:
    """A SeaweedFS S3 server for the whole session (missing bucket → NoSuchBucket, as AWS)."""
    yield from _serve(SeaweedS3Server)


@pytest.fixture
def s3_client(s3_server: SeaweedS3Server) -> Any:
    """A boto3 S3 client for ``s3_server``; one per test, as clients hold connection pools."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", **s3_server.client_kwargs())


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """Name of a new bucket for this test only; deleted afterwards, with what it holds.

    Deleting is best effort and relies on SeaweedFS deleting non-empty buckets
    (``-s3.allowDeleteBucketNotEmpty``, its default): it frees disk between large tests.
    """
    name = _unique_name("test")
    s3_client.create_bucket(Bucket=name)
    yield name
    with contextlib.suppress(Exception):
        s3_client.delete_bucket(Bucket=name)


# --- Swift ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def swift_server() -> Iterator[SwiftServer]:
    """An all-in-one Swift (proxy with tempauth, SLO, DLO; one device) for the session."""
    yield from _serve(SwiftServer)


@pytest.fixture
def swift_connection(swift_server: SwiftServer) -> Iterator[Connection]:
    """A swiftclient ``Connection`` to ``swift_server`` (v1 tempauth), closed afterwards."""
    client = pytest.importorskip("swiftclient.client")
    connection = client.Connection(**swift_server.connection_kwargs())
    yield connection
    connection.close()


@pytest.fixture
def swift_container(swift_connection: Connection) -> Iterator[str]:
    """Name of a new container for this test only; emptied and deleted afterwards.

    Swift refuses to delete a non-empty container, so objects (SLO segments included, as
    plain objects) are deleted first; best effort, like the S3 bucket.
    """
    name = _unique_name("test")
    swift_connection.put_container(name)
    yield name
    with contextlib.suppress(Exception):
        _, objects = swift_connection.get_container(name, full_listing=True)
        for obj in objects:
            swift_connection.delete_object(name, obj["name"])
        swift_connection.delete_container(name)


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private Redis (append-only, restartable) for the session; not the machine's 6379."""
    yield from _serve(RedisServer)


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on ``redis_server``, whose data is flushed first so tests don't see each other."""
    redis_lib = pytest.importorskip("redis")
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


# --- PostgreSQL -----------------------------------------------------------------------------

#: The server tests make their databases on: the machine's, trust authentication.
POSTGRES_ADMIN_URL = os.environ.get("MOVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL for this session, dropped at the end.
    A server that does not answer skips locally and fails in CI."""
    psycopg = pytest.importorskip("psycopg")
    name = f"mover_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(
            f"{POSTGRES_ADMIN_URL}/postgres", autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        problem = BinaryNotFound(f"no PostgreSQL at {POSTGRES_ADMIN_URL}: {exc}")
    else:
        problem = None
    if problem is not None:
        _missing(problem)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN_URL}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES_ADMIN_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.integration])],
)
def catalogue_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on each catalogue backend: the SQLite file of the test's state directory,
    or the session's PostgreSQL database (every table emptied first)."""
    if request.param == "postgresql":
        import psycopg

        from mover.catalogue.backends import TABLES, open_backend
        from mover.catalogue.store import forget_cached_stores

        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("MOVER_CATALOGUE_URL", url)
        with open_backend(url).transaction():  # the schema exists (migrations run once)
            pass
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        forget_cached_stores()
    return str(request.param)


# --- RabbitMQ -------------------------------------------------------------------------------

#: The machine's RabbitMQ (the management plugin is not needed): host:port, user, password.
RABBITMQ_HOST = os.environ.get("MOVER_TEST_RABBITMQ", "127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A vhost of this session's own on the machine's RabbitMQ (guest/guest), made with
    ``rabbitmqctl add_vhost`` and deleted at the end. Skips locally, fails in CI, when
    rabbitmqctl is missing or the server does not answer."""
    import shutil
    import socket
    import subprocess

    host, _, port = RABBITMQ_HOST.partition(":")
    problem: BinaryNotFound | None = None
    if shutil.which("rabbitmqctl") is None:
        problem = BinaryNotFound("rabbitmqctl is missing (apt-get install rabbitmq-server)")
    else:
        try:
            socket.create_connection((host, int(port or 5672)), timeout=3).close()
        except OSError as exc:
            problem = BinaryNotFound(f"no RabbitMQ at {RABBITMQ_HOST}: {exc}")
    if problem is not None:
        _missing(problem)
    vhost = f"mover-test-{uuid.uuid4().hex[:12]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"rabbitmqctl cannot make a vhost: {exc.stderr!r}", pytrace=False)
    try:
        yield f"amqp://guest:guest@{host}:{port or 5672}/{vhost}"
    finally:
        with contextlib.suppress(Exception):
            _rabbitmqctl("delete_vhost", vhost)
