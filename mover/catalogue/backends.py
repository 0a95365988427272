"""Where the catalogue's tables live: one SQLite file, or one PostgreSQL database every host shares.

Why a seam: the embedded default needs no server (a SQLite file beside the job store), while a
fleet on several hosts needs ``store:NAME`` to resolve the same on every worker, which one
file on one host cannot give. :class:`~mover.catalogue.store.Catalogue` writes its SQL once,
with ``?`` placeholders and the SQL both engines share (``INSERT ... ON CONFLICT ... DO
UPDATE``, ``RETURNING``); a backend gives it transactions, turns the placeholders into its
driver's, and owns the schema's types and migrations.

A backend is picked from a *target*: ``postgresql://user@host:5432/db`` (or ``postgres://``)
is PostgreSQL (driver psycopg 3: ``pip install 'mover[postgres]'``); anything else is the path
of a SQLite file. :func:`default_target` reads ``MOVER_CATALOGUE_URL``, then ``catalogue_url``
in the ``[fleet]`` table of the configuration file, then ``MOVER_CATALOGUE``, then
``$MOVER_STATE_DIR/catalogue.sqlite3``. A URL's password never reaches a message
(:func:`mover.redact.redact` masks it); put it in the environment
(``MOVER_CATALOGUE_PASSWORD``, see :mod:`mover.config`) rather than in the file.

Migrations: the table ``schema_version`` holds the number of the last migration applied;
:data:`MIGRATIONS` are applied in order, once, by whichever process opens the catalogue
first (SQLite serialises them with ``BEGIN IMMEDIATE``, PostgreSQL with an advisory lock).
Types differ where the engines do: SQLite's ``REAL`` and ``INTEGER`` are 8 bytes, PostgreSQL's
are 4, so the schema says ``{float}`` and ``{int}`` and each backend fills them in.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Any, Protocol

from mover.dirs import state_dir
from mover.errors import ConfigError, MoverError
from mover.redact import redact
from mover.sqlrows import transaction

#: Schema migrations, in order: (version, statements). Never edit one that shipped: add one.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
CREATE TABLE IF NOT EXISTS zones (
    name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', created {float} NOT NULL
);
CREATE TABLE IF NOT EXISTS stores (
    name TEXT PRIMARY KEY, url TEXT NOT NULL, role TEXT NOT NULL, scope TEXT NOT NULL,
    credentials_env TEXT, credentials_file TEXT, options TEXT NOT NULL, created {float} NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, format TEXT,
    size {int}, checksum TEXT, scope TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL DEFAULT '{{}}',
    created {float} NOT NULL, UNIQUE (kind, name)
);
CREATE TABLE IF NOT EXISTS copies (
    object_id TEXT NOT NULL, store TEXT NOT NULL, state TEXT NOT NULL, location TEXT NOT NULL,
    job_id TEXT, error TEXT, updated {float} NOT NULL, PRIMARY KEY (object_id, store)
);
CREATE TABLE IF NOT EXISTS backups (
    id TEXT PRIMARY KEY, object_id TEXT NOT NULL, store TEXT NOT NULL, parent TEXT,
    manifest TEXT NOT NULL, size {int} NOT NULL, sha256 TEXT NOT NULL,
    chunk_size {int} NOT NULL, chunks {int} NOT NULL, chunks_sent {int} NOT NULL,
    bytes_sent {int} NOT NULL, job_id TEXT, created {float} NOT NULL
);
CREATE TABLE IF NOT EXISTS placement_turns (scope TEXT PRIMARY KEY, turn {int} NOT NULL);
""",
    ),
)
#: The catalogue's tables, for :meth:`CatalogueBackend.dump`.
TABLES = ("zones", "stores", "objects", "copies", "backups", "placement_turns")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Connection(Protocol):
    """What the catalogue's SQL runs on inside one transaction."""

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Any:
        """Run one statement with ``?`` placeholders; the result has ``fetchone``/``fetchall``."""
        ...


class CatalogueBackend(Protocol):
    """One place the catalogue's tables live.

    Attributes:
        where: how messages name it: a file's path, or the URL with its password masked.
        path: the SQLite file, or None for a server.
    """

    where: str
    path: Path | None

    def transaction(self, write: bool = True) -> AbstractContextManager[Connection]:
        """One transaction (committed at the end, rolled back on an exception), with the
        schema migrated to the newest version first. Raises :class:`MoverError` naming
        :attr:`where` when the catalogue cannot be opened."""
        ...

    def exists(self) -> bool:
        """Whether there may be anything to read (a lookup must not create a SQLite file)."""
        ...


def default_target() -> str:
    """``MOVER_CATALOGUE_URL``, ``[fleet] catalogue_url``, ``MOVER_CATALOGUE``, else the state
    directory's ``catalogue.sqlite3``."""
    from mover import config as config_mod

    url = config_mod.fleet_setting("catalogue_url")
    if url:
        return url
    env = os.environ.get("MOVER_CATALOGUE")
    if env:
        return env
    base = state_dir()
    return str(Path(base) / "catalogue.sqlite3")


def open_backend(target: str | Path | None = None) -> CatalogueBackend:
    """The backend for ``target`` (see the module docstring); default :func:`default_target`."""
    text = str(target) if target is not None else default_target()
    if text.startswith(_POSTGRES_SCHEMES):
        return PostgresBackend(text)
    if "://" in text:
        raise ConfigError(
            f"catalogue {redact(text)}: give a postgresql:// URL or the path of a SQLite file"
        )
    return SqliteBackend(Path(text))


def _script(version_sql: str, float_type: str, int_type: str) -> list[str]:
    text = version_sql.format(float=float_type, int=int_type)
    return [s.strip() for s in text.split(";") if s.strip()]


def _migrate(db: Connection, float_type: str, int_type: str) -> None:
    """Apply the migrations not applied yet (inside the caller's write transaction)."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = int(row[0] or 0) if row else 0
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        for statement in _script(sql, float_type, int_type):
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


#: Targets whose schema this process has migrated already.
_MIGRATED: set[str] = set()


class SqliteBackend:
    """A SQLite file (WAL mode): one short-lived connection per transaction, so instances are
    cheap and safe to share between threads; ``BEGIN IMMEDIATE`` for writers (SQLite then
    waits for the lock instead of failing an upgrade)."""

    def __init__(self, path: Path) -> None:
        self.path: Path | None = path
        self.where = str(path)

    def exists(self) -> bool:
        return self.path is not None and self.path.exists()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Connection]:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise MoverError(f"cannot open the catalogue {self.where}: {exc}") from exc
        with closing(conn):
            key = str(self.path.resolve())
            if key not in _MIGRATED:
                conn.execute("PRAGMA journal_mode=WAL")
                with transaction(conn):
                    _migrate(conn, "REAL", "INTEGER")
                _MIGRATED.add(key)
            with transaction(conn, "BEGIN IMMEDIATE" if write else "BEGIN"):
                yield conn


class _PgConnection:
    """A psycopg connection that takes the catalogue's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), tuple(args))


#: The advisory lock key migrations hold (any constant; "mover" in ASCII).
_MIGRATION_LOCK = 0x6D6F766572


class PostgresBackend:
    """A PostgreSQL database: one connection per transaction (about 4 ms on loopback; store
    look-ups are cached for 2 s by :func:`mover.catalogue.store.store_table`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path: Path | None = None
        self.where = redact(url)

    def exists(self) -> bool:
        return True

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(
                f"catalogue {self.where} needs psycopg: pip install 'mover[postgres]'"
            ) from exc
        try:
            return psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            first = redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else "")
            raise MoverError(
                f"cannot open the catalogue {self.where}: {type(exc).__name__}: {first}"
            ) from exc

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Connection]:
        conn = self._connect()
        with closing(conn):
            if self.url not in _MIGRATED:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    _migrate(_PgConnection(conn), "DOUBLE PRECISION", "BIGINT")
                _MIGRATED.add(self.url)
            with conn.transaction():
                if not write:
                    conn.execute("SET TRANSACTION READ ONLY")
                yield _PgConnection(conn)


def dump(backend: CatalogueBackend) -> bytes:
    """Every row of every table as text: what a test scans for a secret, on any backend."""
    lines: list[str] = []
    with backend.transaction(write=False) as db:
        for table in TABLES:
            for row in db.execute(f"SELECT * FROM {table}").fetchall():
                lines.append(f"{table}: {row!r}")
    return "\n".join(lines).encode()
