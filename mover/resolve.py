"""Finding and opening stores: ``store:NAME`` resolved (the TOML configuration first, then
the catalogue: the one place that asks both), the provider of a URL's scheme found in the
registry (:data:`mover.provider.providers`), and a cache of open stores.

The only place that maps a URL scheme to code, and it does so through the ``mover.providers``
entry points: no protocol is named here.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from mover import config as config_mod
from mover.errors import BadLocation, ConfigError, UnknownStore
from mover.location import Location, parse, safe_key
from mover.provider import StoreProvider, providers


def store_table(name: str, config: config_mod.Config) -> dict[str, Any] | None:
    """A store's table: the TOML file's, else the catalogue's (``mover stores add``), so that a
    ``store:NAME`` resolves the same in every process sharing the catalogue file."""
    table = config.stores.get(name)
    if table is None:
        from mover.catalogue.store import store_table as catalogue_table

        table = catalogue_table(name)
    return table


def resolve(
    location: Location, config: config_mod.Config | None = None
) -> tuple[Location, dict[str, Any]]:
    """Turn ``store:NAME/key`` into the store's URL location with its root; other locations
    pass through. Returns the location and the store's options."""
    if location.name is None:
        return location, {}
    config = config if config is not None else config_mod.load()
    table = store_table(location.name, config)
    if table is None:
        from mover.catalogue.store import store_names

        known = ", ".join(sorted(set(config.stores) | set(store_names()))) or "none configured"
        where = f" in {config.path}" if config.path else ""
        raise UnknownStore(f"unknown store {location.name!r}{where} (known: {known})")
    base = parse(table["url"])
    if base.name is not None:
        raise ConfigError(f"store {location.name!r}: url must not name another store")
    root = base.full_key.rstrip("/")
    key = safe_key(location.key, root=f"store:{location.name}")
    options = {k: v for k, v in table.items() if k != "url"}
    return replace(base, key=key, root=root, name=location.name), options


_cache: dict[str, StoreProvider] = {}
_lock = threading.Lock()


def open_location(
    target: str | Location, config: config_mod.Config | None = None
) -> tuple[StoreProvider, Location]:
    """Parse (if needed), resolve a configured store, and open the store that holds it.

    Stores are cached per process by :meth:`StoreProvider.store_id`, so that connections and
    clients are shared by every chunk that touches the same store.
    """
    location = parse(target) if isinstance(target, str) else target
    location, options = resolve(location, config)
    cls = providers.get(location.scheme)
    if cls.needs_store and not location.store:
        raise BadLocation(
            f"malformed URL {location.scheme}:///{location.key}: name the bucket, container "
            f"or host after {location.scheme}://"
        )
    sid = cls.store_id(location, options) + repr(sorted(options.items()))
    with _lock:
        store = _cache.get(sid)
        if store is None:
            store = cls.open(location, options)
            _cache[sid] = store
    return store, location


def clear_cache() -> None:
    """Close and forget every cached store (tests; a worker after fork)."""
    with _lock:
        for store in _cache.values():
            store.close()
        _cache.clear()
