"""Finding and opening stores: the provider registry and a cache of open stores.

The only place that maps a URL scheme to code, and it does so through the ``mover.providers``
entry points: no protocol is named here.
"""

from __future__ import annotations

import threading

from mover import config as config_mod
from mover.errors import BadLocation
from mover.location import Location, parse
from mover.registry import PROVIDERS, Registry
from mover.store import StoreProvider

#: Every store provider, by URL scheme.
providers: Registry[type[StoreProvider]] = Registry(
    PROVIDERS,
    "provider",
    required=("open", "capabilities", "stat", "list", "delete", "read_into"),
)

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
    location, options = config_mod.resolve(location, config)
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
