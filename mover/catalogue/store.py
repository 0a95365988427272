"""The catalogue: zones, the region, stores, and the data objects they hold, in one SQLite file.

CloudStack keeps image stores with a role and a scope, and every copy of a template or snapshot
in a store as a row with its own state and install path (ObjectInDataStoreStateMachine:
Allocated -> Creating -> Ready, Failed). This module is that bookkeeping for mover:

- a *zone* is a name; the *region* is the one scope every zone reads;
- a *store* has a name, a provider URL (``s3://bucket/prefix/``, ``swift://container/``,
  ``file:///srv/images/``), provider options (``endpoint_url``, ``auth_url``, ``user``...), a role
  (``image`` or ``primary``), a scope (``zone:NAME`` or ``region``) and a credentials
  *reference*: the PREFIX of environment variables (``credentials_env``) or a file's path
  (``credentials_file``). A secret itself is refused, by the rule :mod:`mover.config` applies to
  the TOML configuration, so nothing in this file is worth stealing;
- a *data object* (template, snapshot) has a name, kind, format, size and checksum, and one
  *copy* row per store that holds it, with that copy's state and location.

The catalogue is a SQLite file, ``$MOVER_CATALOGUE`` or ``$MOVER_STATE_DIR/catalogue.sqlite3``
(beside the job store), or, for a fleet on several hosts, one PostgreSQL database
(``MOVER_CATALOGUE_URL=postgresql://...``): :mod:`mover.catalogue.backends`. Stores of the
TOML configuration (``[stores.NAME]``, optionally with ``role`` and ``scope`` keys) appear here
too, read-only; :func:`store_table` is how ``store:NAME/key`` locations find a catalogue
store, so every process that shares the catalogue resolves the same stores with its own
credentials.

Every function returns plain dataclasses with ``to_dict()``: the service layer hands JSON-able
dicts to callers (CLI, Python API, Celery tasks).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mover import config as config_mod
from mover import credentials, sqlrows
from mover.catalogue.backends import CatalogueBackend, dump, open_backend
from mover.errors import (
    BadLocation,
    ConfigError,
    MoverError,
    ObjectNotFound,
    UnknownStore,
    UsageError,
)
from mover.location import parse

#: Per-copy states, CloudStack's object-in-store states.
ALLOCATED, CREATING, READY, FAILED = "allocated", "creating", "ready", "failed"
COPY_STATES = (ALLOCATED, CREATING, READY, FAILED)
#: Store roles.
ROLES = ("image", "primary")
REGION = "region"
#: Object kinds.
TEMPLATE, SNAPSHOT = "template", "snapshot"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Keys of a store record that are not provider options.
_RESERVED = ("url", "role", "scope")
#: The columns of the tables ``stores`` and ``objects``, named for their records' fields, in
#: the tables' order (:mod:`mover.sqlrows`); JSON columns go through ``_ENCODE``/``_DECODE``.
_STORE_COLUMNS = sqlrows.columns(
    "name, url, role, scope, credentials_env, credentials_file, options, created"
)
_OBJECT_COLUMNS = sqlrows.columns("id, kind, name, format, size, checksum, scope, meta, created")
_ENCODE: sqlrows.Codec = {"options": json.dumps, "meta": json.dumps}
_DECODE: sqlrows.Codec = {"options": json.loads, "meta": json.loads}

# --- records --------------------------------------------------------------------------------


class _Record:
    """A catalogue record (a dataclass): ``to_dict()`` is its fields, JSON-able."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class Zone(_Record):
    name: str
    description: str = ""
    created: float = 0.0


@dataclass
class StoreRecord(_Record):
    """One store: where it is, what it is for, and where its credentials come from."""

    name: str
    url: str
    role: str = "image"
    scope: str = ""
    credentials_env: str | None = None
    credentials_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    origin: str = "catalogue"  #: "catalogue" or the TOML file it comes from
    created: float = 0.0

    @property
    def zone(self) -> str | None:
        """The zone this store serves, or None for a region or unscoped store."""
        return self.scope[5:] if self.scope.startswith("zone:") else None

    def table(self) -> dict[str, Any]:
        """The store as a TOML-like table, which :func:`mover.resolve.resolve` turns into a
        location and provider options (the credentials *reference*, never a secret)."""
        table: dict[str, Any] = {"url": self.url, **self.options}
        if self.credentials_env:
            table["credentials_env"] = self.credentials_env
        elif self.credentials_file:
            table["credentials_env"] = export_credentials_file(self.name, self.credentials_file)
        return table

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "zone": self.zone}


@dataclass
class Copy(_Record):
    """One copy of a data object in one store, with its state (CloudStack's install path is
    ``location``, written ``store:NAME/key``)."""

    store: str
    state: str
    location: str
    job_id: str | None = None
    error: str | None = None
    updated: float = 0.0
    scope: str = ""  #: the store's scope, filled in when read


@dataclass
class DataObject(_Record):
    """A template or a snapshot and its copies."""

    id: str
    kind: str
    name: str
    format: str | None = None
    size: int | None = None
    checksum: str | None = None
    scope: str = ""  #: templates: "region" or "zone"; snapshots: ""
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    copies: list[Copy] = field(default_factory=list)

    @property
    def state(self) -> str:
        """Ready when every copy is; failed when any is; else the least advanced state."""
        states = {c.state for c in self.copies}
        if not states:
            return ALLOCATED
        if FAILED in states:
            return FAILED
        for s in (ALLOCATED, CREATING):
            if s in states:
                return s
        return READY

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "state": self.state}


def export_credentials_file(store: str, path: str) -> str:
    """Read a store's credentials file into this process's environment; return the PREFIX.

    The providers read credentials from ``PREFIX_*`` environment variables (``credentials_env``:
    S3 ``PREFIX_ACCESS_KEY_ID``/``PREFIX_SECRET_ACCESS_KEY``/``PREFIX_SESSION_TOKEN``, Swift
    ``PREFIX_KEY`` or ``PREFIX_PASSWORD``). A credentials file holds the same names without the
    prefix, one ``NAME=VALUE`` a line (``#`` comments), readable by the worker's user only; it
    is read when the store is resolved, in the process that uses it, and its values go under
    ``MOVER_STORE_<NAME>_``. So one mechanism serves both references, and the file's contents
    never reach the catalogue, a task message or a log line (errors name the file and line,
    never a value).
    """
    prefix = "MOVER_STORE_" + re.sub(r"[^A-Z0-9_]", "_", store.upper())
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            f"store {store!r}: cannot read its credentials file {path}: {exc.strerror}"
        ) from exc
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if not sep or not _ENV_NAME.match(name):
            raise ConfigError(f"store {store!r}: {path} line {number}: expected NAME=VALUE")
        os.environ[f"{prefix}_{name.upper()}"] = value.strip().strip("'\"")
    return prefix


# --- validation ---------------------------------------------------------------------------


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"{what} name {name!r}: use letters, digits, '.', '_' and '-' (at most 128)"
        )
    return name


def check_no_secret(name: str, options: dict[str, Any]) -> None:
    """Refuse an option that holds a secret, by the TOML configuration's rule
    (:mod:`mover.credentials`): the option's *name* says it, the value is never shown."""
    credentials.refuse_secrets(
        options,
        f"store {name!r}",
        "the catalogue keeps only a reference: put the secret in the environment "
        "(--credentials-env PREFIX) or a file (--credentials-file PATH)",
    )


def parse_scope(scope: str) -> str:
    """``region``, ``zone:NAME`` or ``""`` (a store no template placement picks)."""
    if scope in ("", REGION):
        return scope
    if scope.startswith("zone:") and _NAME.match(scope[5:]):
        return scope
    raise UsageError(f"scope {scope!r}: write 'region' or 'zone:NAME'")


_Named = TypeVar("_Named", Zone, StoreRecord)


def _by_name(records: list[_Named], name: str, what: str, error: type[MoverError]) -> _Named:
    """The record called ``name``; else ``error``, naming the known ones (or how to add one)."""
    for record in records:
        if record.name == name:
            return record
    known = ", ".join(r.name for r in records) or f"none; add one with mover {what}s add"
    raise error(f"unknown {what} {name!r} (known: {known})")


# --- the catalogue ------------------------------------------------------------------------


class Catalogue:
    """The catalogue, on a backend (:mod:`mover.catalogue.backends`: a SQLite file or a
    PostgreSQL database). Each call is one short transaction, so instances are safe to share
    between threads and cheap to create in every process (workers, CLI, tests).

    Parameters:
        path (str | Path | None): a SQLite file or a ``postgresql://`` URL; default
            :func:`mover.catalogue.backends.default_target`.
        config: the TOML configuration (default: loaded on first use).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        config: config_mod.Config | None = None,
        *,
        backend: CatalogueBackend | None = None,
    ):
        self.backend: CatalogueBackend = backend or open_backend(path)
        self._config = config

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None when the catalogue is on a server."""
        return self.backend.path

    @property
    def where(self) -> str:
        """How messages name the catalogue (never with a password)."""
        return self.backend.where

    def dump(self) -> bytes:
        """Every row as text (what a check for leaked secrets reads, on any backend)."""
        return dump(self.backend)

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            self._config = config_mod.load()
        return self._config

    def _db(self, write: bool = True) -> Any:
        """One transaction on the backend (its SQL takes ``?`` placeholders)."""
        return self.backend.transaction(write)

    # -- zones ------------------------------------------------------------------------------

    def add_zone(self, name: str, description: str = "") -> Zone:
        check_name(name, "zone")
        if name == REGION:
            raise UsageError("'region' is the region's scope, not a zone name")
        zone = Zone(name, description, time.time())
        with self._db() as db:
            if db.execute("SELECT 1 FROM zones WHERE name=?", (name,)).fetchone():
                raise UsageError(f"zone {name!r} already exists")
            db.execute("INSERT INTO zones VALUES (?,?,?)", (name, description, zone.created))
        return zone

    def zones(self) -> list[Zone]:
        with self._db(write=False) as db:
            rows = db.execute("SELECT name, description, created FROM zones ORDER BY name")
            return [Zone(*r) for r in rows.fetchall()]

    def get_zone(self, name: str) -> Zone:
        return _by_name(self.zones(), name, "zone", UsageError)

    # -- stores -----------------------------------------------------------------------------

    def add_store(
        self,
        name: str,
        url: str,
        *,
        role: str = "image",
        scope: str = "",
        credentials_env: str | None = None,
        credentials_file: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> StoreRecord:
        """Add a store after checking everything that can be checked without the network:
        a known provider, a URL it can serve, an existing zone, and no secret anywhere."""
        from mover.provider import providers

        check_name(name, "store")
        options = dict(options or {})
        check_no_secret(name, options)
        # A reference given as an option is a reference all the same.
        credentials_env = credentials_env or options.pop("credentials_env", None)
        credentials_file = credentials_file or options.pop("credentials_file", None)
        for key in _RESERVED:
            if key in options:
                raise UsageError(f"store {name!r}: give {key} as its own argument")
        if credentials_env is not None and not _ENV_NAME.match(str(credentials_env)):
            raise ConfigError(
                f"store {name!r}: credentials_env must be an environment variable PREFIX "
                "(letters, digits, _), not a value"
            )
        if credentials_file is not None and not os.path.isabs(str(credentials_file)):
            raise ConfigError(f"store {name!r}: credentials_file must be an absolute path")
        if role not in ROLES:
            raise UsageError(f"store {name!r}: role {role!r} is not one of {', '.join(ROLES)}")
        scope = parse_scope(scope)
        if scope.startswith("zone:"):
            self.get_zone(scope[5:])
        credentials.check_not_url_with_secret(url)
        try:
            location = parse(url)
        except BadLocation as exc:
            raise BadLocation(f"store {name!r}: {exc.message}") from exc
        if location.name is not None:
            raise UsageError(f"store {name!r}: give a provider URL, not another store")
        cls = providers.get(location.scheme)
        if cls.needs_store and not location.store:
            raise BadLocation(f"store {name!r}: {url} names no bucket, container or host")
        if name in self.config.stores:
            raise UsageError(
                f"store {name!r} is already configured in {self.config.path}; pick another name"
            )
        record = StoreRecord(
            name,
            url,
            role,
            scope,
            credentials_env,
            credentials_file,
            options,
            "catalogue",
            time.time(),
        )
        with self._db() as db:
            if db.execute("SELECT 1 FROM stores WHERE name=?", (name,)).fetchone():
                raise UsageError(f"store {name!r} already exists (mover stores remove {name})")
            row = sqlrows.values(record, _STORE_COLUMNS, _ENCODE)
            db.execute("INSERT INTO stores VALUES (?,?,?,?,?,?,?,?)", row)
        return record

    def set_store_options(self, name: str, options: dict[str, Any]) -> StoreRecord:
        """Add or change provider options of a catalogue store (e.g. name its repository key:
        ``repository_key_env``); an empty value removes the option. Secrets are refused as in
        :meth:`add_store`; the URL, role and scope do not change here."""
        record = self.get_store(name)
        if record.origin != "catalogue":
            raise UsageError(f"store {name!r} comes from {record.origin}: edit that file")
        check_no_secret(name, options)
        for key in (*_RESERVED, "credentials_env", "credentials_file"):
            if key in options:
                raise UsageError(f"store {name!r}: {key} cannot be changed here")
        merged = {**record.options, **options}
        merged = {k: v for k, v in merged.items() if v not in ("", None)}
        with self._db() as db:
            db.execute("UPDATE stores SET options=? WHERE name=?", (json.dumps(merged), name))
        forget_cached_stores()
        return self.get_store(name)

    def remove_store(self, name: str, *, force: bool = False) -> StoreRecord:
        """Forget a store; refused while it holds copies, unless ``force`` (the data stays)."""
        record = self.get_store(name)
        if record.origin != "catalogue":
            raise UsageError(f"store {name!r} comes from {record.origin}: edit that file")
        with self._db() as db:
            held = db.execute("SELECT COUNT(*) FROM copies WHERE store=?", (name,)).fetchone()[0]
            if held and not force:
                raise UsageError(
                    f"store {name!r} holds {held} copies of templates or snapshots: delete them "
                    "first, or remove with --force (their records go, the data stays)"
                )
            db.execute("DELETE FROM copies WHERE store=?", (name,))
            db.execute("DELETE FROM stores WHERE name=?", (name,))
        forget_cached_stores()
        return record

    def _catalogue_stores(self, name: str | None = None) -> list[StoreRecord]:
        sql = f"SELECT {', '.join(_STORE_COLUMNS)} FROM stores"
        args: tuple[str, ...] = ()
        if name is not None:
            sql, args = sql + " WHERE name=?", (name,)
        with self._db(write=False) as db:
            rows = db.execute(sql + " ORDER BY name", args).fetchall()
        return [StoreRecord(**sqlrows.fields(_STORE_COLUMNS, r, _DECODE)) for r in rows]

    def _config_stores(self) -> list[StoreRecord]:
        out = []
        for name, table in sorted(self.config.stores.items()):
            options = {k: v for k, v in table.items() if k not in _RESERVED}
            out.append(
                StoreRecord(
                    name,
                    str(table["url"]),
                    str(table.get("role", "image")),
                    str(table.get("scope", "")),
                    options.pop("credentials_env", None),
                    options.pop("credentials_file", None),
                    options,
                    str(self.config.path),
                )
            )
        return out

    def stores(self, *, role: str | None = None, scope: str | None = None) -> list[StoreRecord]:
        """Every store, the configuration's first (they win on a name), filtered."""
        seen: dict[str, StoreRecord] = {}
        for record in self._config_stores() + self._catalogue_stores():
            seen.setdefault(record.name, record)
        out = list(seen.values())
        if role is not None:
            out = [s for s in out if s.role == role]
        if scope is not None:
            out = [s for s in out if s.scope == scope]
        return sorted(out, key=lambda s: s.name)

    def get_store(self, name: str) -> StoreRecord:
        return _by_name(self.stores(), name, "store", UnknownStore)

    def find_store_table(self, name: str) -> dict[str, Any] | None:
        """A catalogue store's table for :func:`mover.resolve.resolve`, or None."""
        for record in self._catalogue_stores(name):
            return record.table()
        return None

    # -- data objects -----------------------------------------------------------------------

    def create_object(
        self,
        kind: str,
        name: str,
        *,
        format: str | None = None,
        size: int | None = None,
        checksum: str | None = None,
        scope: str = "",
        meta: dict[str, Any] | None = None,
    ) -> DataObject:
        check_name(name, kind)
        obj = DataObject(
            uuid.uuid4().hex[:16],
            kind,
            name,
            format,
            size,
            checksum,
            scope,
            meta or {},
            time.time(),
        )
        with self._db() as db:
            if db.execute("SELECT 1 FROM objects WHERE kind=? AND name=?", (kind, name)).fetchone():
                raise UsageError(f"{kind} {name!r} already exists")
            row = sqlrows.values(obj, _OBJECT_COLUMNS, _ENCODE)
            db.execute("INSERT INTO objects VALUES (?,?,?,?,?,?,?,?,?)", row)
        return obj

    def update_object(self, obj_id: str, **fields: Any) -> None:
        allowed = {"format", "size", "checksum", "scope", "meta"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {', '.join(sorted(bad))}")
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"])
        sets = ", ".join(f"{k}=?" for k in fields)
        with self._db() as db:
            db.execute(f"UPDATE objects SET {sets} WHERE id=?", (*fields.values(), obj_id))

    def find_object(self, kind: str, name: str) -> DataObject | None:
        with self._db(write=False) as db:
            row = db.execute(
                f"SELECT {', '.join(_OBJECT_COLUMNS)} FROM objects WHERE kind=? AND name=?",
                (kind, name),
            ).fetchone()
            if row is None:
                return None
            copies = db.execute(
                "SELECT store, state, location, job_id, error, updated FROM copies "
                "WHERE object_id=? ORDER BY store",
                (row[0],),
            ).fetchall()
        obj = DataObject(**sqlrows.fields(_OBJECT_COLUMNS, row, _DECODE))
        scopes = {s.name: s.scope for s in self.stores()}
        obj.copies = [Copy(*c, scope=scopes.get(c[0], "?")) for c in copies]
        return obj

    def get_object(self, kind: str, name: str) -> DataObject:
        obj = self.find_object(kind, name)
        if obj is None:
            raise ObjectNotFound(f"no {kind} named {name!r} in the catalogue {self.where}")
        return obj

    def objects(self, kind: str) -> list[DataObject]:
        with self._db(write=False) as db:
            names = [
                r[0]
                for r in db.execute(
                    "SELECT name FROM objects WHERE kind=? ORDER BY name", (kind,)
                ).fetchall()
            ]
        return [o for o in (self.find_object(kind, n) for n in names) if o is not None]

    def delete_object(self, obj_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM copies WHERE object_id=?", (obj_id,))
            db.execute("DELETE FROM backups WHERE object_id=?", (obj_id,))
            db.execute("DELETE FROM objects WHERE id=?", (obj_id,))

    def set_copy(
        self,
        obj_id: str,
        store: str,
        state: str,
        location: str,
        *,
        job_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Create or move one copy's row to ``state`` (the state machine's one writer)."""
        if state not in COPY_STATES:
            raise ValueError(f"unknown copy state {state!r}")
        with self._db() as db:
            db.execute(
                "INSERT INTO copies VALUES (?,?,?,?,?,?,?) ON CONFLICT (object_id, store) DO "
                "UPDATE SET state=excluded.state, location=excluded.location, "
                "job_id=COALESCE(excluded.job_id, copies.job_id), error=excluded.error, "
                "updated=excluded.updated",
                (obj_id, store, state, location, job_id, error, time.time()),
            )

    def delete_copy(self, obj_id: str, store: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM copies WHERE object_id=? AND store=?", (obj_id, store))

    # -- snapshot backups ---------------------------------------------------------------------

    def add_backup(self, obj_id: str, store: str, backup: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO backups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    backup["id"],
                    obj_id,
                    store,
                    backup.get("parent"),
                    backup["manifest"],
                    backup["size"],
                    # column sha256: a digest string (a bare hex in v1 backups, none in
                    # repository backups, whose chunks are each verified by their keyed id)
                    backup.get("digest") or backup.get("sha256"),
                    backup["chunk_size"],
                    backup["chunks"],
                    backup["chunks_sent"],
                    backup["bytes_sent"],
                    backup.get("job_id"),
                    backup["created"],
                ),
            )

    def delete_backup(self, backup_id: str) -> None:
        """Forget one backup's row (its manifest is the repository's to delete)."""
        with self._db() as db:
            db.execute("DELETE FROM backups WHERE id=?", (backup_id,))

    def backups(self, obj_id: str, store: str | None = None) -> list[dict[str, Any]]:
        """The backups of a snapshot, oldest first."""
        cols = (
            "id",
            "store",
            "parent",
            "manifest",
            "size",
            "sha256",
            "chunk_size",
            "chunks",
            "chunks_sent",
            "bytes_sent",
            "job_id",
            "created",
        )
        sql = f"SELECT {', '.join(cols)} FROM backups WHERE object_id=?"
        args: tuple[Any, ...] = (obj_id,)
        if store is not None:
            sql += " AND store=?"
            args += (store,)
        with self._db(write=False) as db:
            rows = db.execute(sql + " ORDER BY created, id", args).fetchall()
        out = []
        for row in rows:
            backup = sqlrows.fields(cols, row)
            value = backup.pop("sha256")
            # Manifest v1 backups kept the volume's sha256 as bare hex; v2 keep a digest with
            # its algorithm (sha256-chunks:...).
            backup["digest"] = value if ":" in value else f"sha256:{value}"
            out.append(backup)
        return out

    # -- placement --------------------------------------------------------------------------

    def next_turn(self, scope: str) -> int:
        """How many placements were made in ``scope`` before this one (round robin across
        processes: the count lives here, not in a plugin's memory; one atomic statement, so
        two hosts never get the same turn)."""
        with self._db() as db:
            row = db.execute(
                "INSERT INTO placement_turns VALUES (?, 1) ON CONFLICT (scope) DO UPDATE "
                "SET turn=placement_turns.turn + 1 RETURNING turn",
                (scope,),
            ).fetchone()
        return int(row[0]) - 1


#: Store tables found recently: (catalogue path, name) -> (monotonic time, table). Every chunk
#: and item resolves its store, so a lookup must not cost a SQLite open each time; a store
#: removed by another process is forgotten here within :data:`_CACHE_S`. Misses are not cached
#: (a store just added elsewhere is found at once).
_CACHE: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_CACHE_S = 2.0


def store_table(name: str) -> dict[str, Any] | None:
    """The catalogue's table for store ``name``, or None: the hook :func:`mover.resolve.resolve`
    calls for a ``store:NAME`` it does not know from the TOML file. A missing catalogue file is
    an empty catalogue (nothing is created by a lookup)."""
    backend = open_backend()
    key = (backend.where, name)
    hit = _CACHE.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < _CACHE_S:
        return dict(hit[1])
    if not backend.exists():
        return None
    table = Catalogue(backend=backend).find_store_table(name)
    if table is not None:
        _CACHE[key] = (now, table)
    return None if table is None else dict(table)


def forget_cached_stores() -> None:
    """Drop cached store tables (after this process adds or removes a store)."""
    _CACHE.clear()


def store_names() -> list[str]:
    """Names of the catalogue's own stores, for "unknown store" messages."""
    catalogue = Catalogue()
    if not catalogue.backend.exists():
        return []
    return [s.name for s in catalogue._catalogue_stores()]
