"""A repository opened on a store: its configuration, its keys, and object I/O through the
provider contract only (``stat``, ``read_into``/``open_read``, ``list``, ``delete``, ``put`` or
a chunk writer, via :mod:`mover.catalogue.objectio`). Nothing here names a protocol, so the
same code serves files, S3 and Swift.

A repository is always a *store's*: ``Repository.open("region-s3")`` opens
``store:region-s3/repository/``, and the store's options name its key (:mod:`.keys`). Range
tasks on workers open it again by that name, with the worker's own configuration: nothing but
the name travels.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mover.catalogue.objectio import read_into, read_small, write_whole
from mover.errors import MoverError, ObjectNotFound, UsageError
from mover.provider import StoreProvider
from mover.repository import keys as keys_mod
from mover.repository.crypto import ChunkIds, Corrupt, MasterKey, Sealer, wrap
from mover.repository.deps import require
from mover.repository.layout import (
    CONFIG,
    KEYS,
    PREFIX,
    RepoConfig,
    key_check,
    new_id,
    parse_compression,
)
from mover.repository.packs import Codec
from mover.resolve import open_location


@dataclass(frozen=True)
class Listed:
    """An object of the repository: its key relative to ``repository/``, size and mtime."""

    key: str
    size: int
    mtime: float | None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class Repository:
    """One store's repository, opened (configuration read, key unlocked)."""

    def __init__(
        self,
        store_name: str,
        store: StoreProvider,
        root: str,
        config: RepoConfig,
        master: MasterKey,
    ) -> None:
        self.store_name = store_name
        self.store = store
        self.root = root
        self.config = config
        self.master = master
        self.sealer: Sealer = master.sealer() if config.encryption != "none" else Sealer()
        self.ids = ChunkIds(master.ids)
        self.codec = Codec(self.sealer, self.ids, parse_compression(config.compression))
        self.zero_ids: dict[int, bytes] = {}

    # -- opening ------------------------------------------------------------------------------

    @staticmethod
    def _locate(store_name: str) -> tuple[StoreProvider, str, str]:
        store, loc = open_location(f"store:{store_name}/{PREFIX}")
        return store, loc.full_key, f"repository of store {store_name!r}"

    @classmethod
    def exists(cls, store_name: str) -> bool:
        store, root, _ = cls._locate(store_name)
        return store.exists(root + CONFIG)

    @classmethod
    def open(cls, store_name: str, *, create: bool = False) -> Repository:
        """Open the repository of store ``store_name``; with ``create``, initialise it first
        when the store has none (with the parameters of the store's options)."""
        store, root, where = cls._locate(store_name)
        try:
            raw = read_small(store, root + CONFIG)
        except ObjectNotFound:
            if create:
                return cls.init(store_name)
            raise ObjectNotFound(
                f"{where} is not initialised: mover repo init {store_name} (a first snapshot "
                "backup does it too)"
            ) from None
        config = RepoConfig.from_bytes(raw, f"{where}: {CONFIG}")
        ref = keys_mod.key_ref(store.options, store_name)
        if config.encryption == "none":
            if ref is not None:
                raise UsageError(
                    f"{where} is unencrypted, but the store names a key ({ref.describe()}): "
                    f"remove the key option, or back up into a new encrypted store"
                )
            assert config.id_key is not None
            master = MasterKey(b"", bytes.fromhex(config.id_key))
        else:
            if ref is None:
                raise UsageError(
                    f"{where} is encrypted: the store must name its key "
                    f"(-o {keys_mod.KEY_ENV}=VAR or -o {keys_mod.KEY_FILE}=PATH)"
                )

            def objects() -> list[tuple[str, bytes]]:
                keys = _listing(store, root, KEYS)
                return [(o.name, read_small(store, root + o.key)) for o in keys]

            def belongs(master: MasterKey) -> bool:
                return config.key_check in (None, key_check(config.id, master.ids))

            master = keys_mod.unlock(config.id, objects, ref, where, belongs)
        return cls(store_name, store, root, config, master)

    @classmethod
    def init(
        cls,
        store_name: str,
        *,
        chunk_size: int | None = None,
        pack_bytes: int | None = None,
        compression: str | None = None,
        like: str | None = None,
    ) -> Repository:
        """Create the repository of store ``store_name``; its encryption follows the store's
        options. ``like``: share the master key (and so chunk ids) of another store's
        repository, so that copies between the two move only the chunks one lacks."""
        for dep in ("cryptography", "zstandard", "blake3", "argon2"):
            require(dep)
        store, root, where = cls._locate(store_name)
        options = store.options
        ref = keys_mod.key_ref(options, store_name)
        if store.exists(root + CONFIG):
            raise UsageError(f"{where} already exists")
        store.make_parents(root + CONFIG)
        store.check_writable(root + CONFIG, None)
        if like is not None:
            other = cls.open(like)
            if (other.config.encryption == "none") != (ref is None):
                raise UsageError(
                    f"{where}: --like {like} needs the same encryption choice as that store"
                )
            master = other.master
            defaults: dict[str, Any] = {
                "chunk_size": other.config.chunk_size,
                "pack_bytes": other.config.pack_bytes,
                "compression": other.config.compression,
            }
        else:
            master = MasterKey.generate()
            defaults = {}
        params: dict[str, Any] = {
            "chunk_size": chunk_size or options.get("repository_chunk_size"),
            "pack_bytes": pack_bytes or options.get("repository_pack_size"),
            "compression": compression or options.get("repository_compression"),
        }
        from mover.config import parse_size

        for k in ("chunk_size", "pack_bytes"):
            if params[k] is not None:
                params[k] = parse_size(params[k])
        params = {**defaults, **{k: v for k, v in params.items() if v is not None}}
        repo_id = new_id()[:32]
        config = RepoConfig(
            id=repo_id,
            key_check=key_check(repo_id, master.ids),
            encryption="none" if ref is None else "aes-256-gcm",
            id_key=master.ids.hex() if ref is None else None,
            **params,
        )
        key_name = None
        if ref is not None:
            key_name = new_id()
            secret = ref.secret(where)
            write_whole(store, root + KEYS + key_name, wrap(master, secret))
            keys_mod.remember(config.id, secret, master)
        write_whole(store, root + CONFIG, config.to_bytes())
        # Two first backups at once: the last config written wins; the other process adopts
        # it (its key object goes) rather than writing data nobody can read.
        again = RepoConfig.from_bytes(read_small(store, root + CONFIG), where)
        if again.id != config.id:
            if key_name:
                with contextlib.suppress(MoverError):
                    store.delete(root + KEYS + key_name)
            return cls.open(store_name)
        return cls(store_name, store, root, config, master)

    # -- identity -----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"repository of store {self.store_name!r}"

    def zero_id(self, length: int) -> bytes:
        """The id an all-zero chunk of ``length`` bytes would have (never stored)."""
        cid = self.zero_ids.get(length)
        if cid is None:
            cid = self.zero_ids[length] = self.ids(bytes(length))
        return cid

    # -- objects ------------------------------------------------------------------------------

    def key(self, rel: str) -> str:
        return self.root + rel

    def get(self, rel: str) -> bytes:
        return read_small(self.store, self.root + rel)

    def put(self, rel: str, data: bytes | memoryview) -> None:
        self.store.make_parents(self.root + rel)
        write_whole(self.store, self.root + rel, data)

    def read_into(self, rel: str, offset: int, view: memoryview) -> int:
        return read_into(self.store, self.root + rel, view, offset)

    def list(self, rel_prefix: str) -> list[Listed]:
        return list(_listing(self.store, self.root, rel_prefix))

    def sweep_abandoned(self, rel_prefix: str) -> int:
        """What killed writers of this host left under ``rel_prefix`` (temporary files)."""
        return self.store.sweep_abandoned(self.root + rel_prefix)

    def delete(self, rel: str) -> bool:
        """Delete an object; False if it was already gone."""
        try:
            self.store.delete(self.root + rel)
        except ObjectNotFound:
            return False
        return True

    def put_sealed(self, rel: str, value: Any, aad: str) -> int:
        """A JSON value, compressed and sealed under ``aad``; returns the stored size."""
        body = require("zstandard").ZstdCompressor(level=3).compress(json.dumps(value).encode())
        data = self.sealer.seal(body, aad.encode())
        self.put(rel, data)
        return len(data)

    def get_sealed(self, rel: str, aad: str) -> Any:
        """The JSON value of a sealed object; :class:`Corrupt` naming it if it fails."""
        data = self.get(rel)
        try:
            body = self.sealer.open(data, aad.encode())
            return json.loads(require("zstandard").ZstdDecompressor().decompress(body))
        except Corrupt as exc:
            raise Corrupt(f"{self.describe()}: {rel}: {exc.message}") from None
        except ValueError as exc:  # zstd or JSON
            raise Corrupt(f"{self.describe()}: {rel}: unreadable ({exc})") from None


def _listing(store: StoreProvider, root: str, rel_prefix: str) -> Iterator[Listed]:
    try:
        for info in store.list(root + rel_prefix):
            if info.key.startswith(root):
                yield Listed(info.key[len(root) :], int(info.size or 0), info.mtime)
    except ObjectNotFound:
        return
