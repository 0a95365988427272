"""Per-store limits, enforced across the whole fleet: ``max_streams`` and ``max_bytes_per_s``.

Scaling up must never ask more of a store than it allows. A store says what it allows in its
configuration (the TOML ``[stores.NAME]`` table or the catalogue's store options)::

    [stores.backup-east]
    url = "s3://backups/"
    max_streams = 8              # chunks reading or writing this store at once, fleet-wide
    max_bytes_per_s = "200MiB"   # optional: bytes per second through this store, fleet-wide

or, for locations that are not configured stores, per endpoint or per scheme in a ``[limits]``
table (the most specific key wins)::

    [limits."http://images.example.org"]   # scheme://bucket-or-host
    max_streams = 4
    [limits.s3]                            # every s3:// location without a better key
    max_streams = 16

How: every chunk task asks :func:`acquire` for a lease on each limited store it touches (its
source and its destination) before it moves a byte, and gives it back when the chunk ends.

- ``max_streams`` is a counting semaphore in Redis: a sorted set of leases (member a random
  token, score its expiry time). A lease is taken only while fewer than ``max_streams``
  unexpired leases exist (a WATCH/MULTI transaction, so two workers cannot both take the last
  one). Expired leases are dropped on the way: a worker killed with SIGKILL holds its lease
  only until the lease expires (:data:`LEASE_S`, 30 s), and a live chunk renews its leases
  from a background thread every third of that, however long it runs.
- ``max_bytes_per_s`` is a virtual-time schedule (GCRA): a key holds the time at which the
  store is free again; a chunk of N bytes moves it N / rate seconds later. A chunk is let in
  when that time is less than :data:`BURST_S` ahead of now.
- When a lease cannot be had, :func:`acquire` raises :class:`LeaseUnavailable` with a
  suggested wait, and the task re-queues itself with that countdown (``self.retry``) instead
  of holding a worker slot while it waits.

The highest number of leases held at once is kept per store (``...:hwm``), so a test (or an
operator) can see that the cap held. Times are the workers' wall clocks: keep them in sync
(NTP); a skew of a few seconds only shortens or lengthens a dead worker's lease.

The controller reads the same caps (:func:`queue_bounds`) so that it never asks for more slots
on a store's queue than the store allows.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from mover import config as config_mod
from mover.config import parse_size
from mover.errors import ConfigError
from mover.fleetstate.perprocess import PerProcess, every
from mover.location import Location
from mover.resolve import store_table

log = logging.getLogger("mover.limits")

#: Seconds a lease lives without renewal (``MOVER_LEASE_S``): how long a dead worker's
#: streams stay counted against its store.
LEASE_S = float(os.environ.get("MOVER_LEASE_S") or 30)
#: Seconds of work a bandwidth-capped store may have scheduled ahead of now.
BURST_S = 1.0
#: Prefix of every key this module writes.
PREFIX = "mover:limit:"
#: Seconds a ``[limits]`` table read from the configuration file is reused.
_CONFIG_CACHE_S = 5.0


class LeaseUnavailable(Exception):
    """Raised by :func:`acquire` when a store is at its limit; retry after ``retry_after_s``."""

    def __init__(self, key: str, reason: str, retry_after_s: float) -> None:
        super().__init__(f"store {key} is at its limit ({reason}); retry in {retry_after_s:.1f} s")
        self.key = key
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class StoreLimit:
    """What one store allows, fleet-wide.

    Attributes:
        key: the store's limit key: ``store:NAME`` for a configured store, else the
            ``[limits]`` key that matched (``http://host``, ``s3``).
        max_streams: chunks touching the store at once; None for no cap.
        max_bytes_per_s: bytes per second through the store; None for no cap.
    """

    key: str
    max_streams: int | None = None
    max_bytes_per_s: float | None = None

    @property
    def limited(self) -> bool:
        return self.max_streams is not None or self.max_bytes_per_s is not None


def _positive(key: str, name: str, value: Any, size: bool = False) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(parse_size(value)) if size and isinstance(value, str) else float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"limits of {key}: {name} must be a number, got {value!r}") from exc
    if number <= 0:
        raise ConfigError(f"limits of {key}: {name} must be > 0, got {value!r}")
    return number


def limit_from_options(key: str, options: Mapping[str, Any]) -> StoreLimit:
    """A :class:`StoreLimit` from a store's options (``max_streams``, ``max_bytes_per_s``,
    the latter a number or a size such as ``"200MiB"``); raises ConfigError on a bad value."""
    streams = _positive(key, "max_streams", options.get("max_streams"))
    rate = _positive(key, "max_bytes_per_s", options.get("max_bytes_per_s"), size=True)
    return StoreLimit(key, None if streams is None else max(1, int(streams)), rate)


_limits_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def limits_table() -> dict[str, Any]:
    """The ``[limits]`` table of the configuration file (empty when there is none); re-read
    at most every few seconds."""
    path = config_mod.config_path()
    hit = _limits_cache.get(str(path))
    now = time.monotonic()
    if hit is not None and now - hit[0] < _CONFIG_CACHE_S:
        return hit[1]
    table: dict[str, Any] = {}
    if path.exists():
        try:
            table = dict(tomllib.loads(path.read_text()).get("limits", {}) or {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    _limits_cache[str(path)] = (now, table)
    return table


def limit_for(location: Location, options: Mapping[str, Any] | None = None) -> StoreLimit:
    """The limit of the store holding ``location`` (resolved: a configured store's location
    keeps its ``name``); ``options`` are the store's options when the caller has them."""
    if location.name:
        if options is None:
            options = store_table(location.name, config_mod.load()) or {}
        return limit_from_options(f"store:{location.name}", options)
    table = limits_table()
    for key in (f"{location.scheme}://{location.store}", location.scheme):
        entry = table.get(key)
        if isinstance(entry, dict):
            return limit_from_options(key, entry)
    return StoreLimit(f"{location.scheme}://{location.store}")


def queue_bounds(
    queues: Iterable[str], default: tuple[int, int], config: config_mod.Config | None = None
) -> dict[str, tuple[int, int]]:
    """``queue -> (min, max)`` for the queues whose store caps its streams below ``default``'s
    max: ``mover.store.NAME`` from store NAME's ``max_streams``, ``mover.<scheme>`` from
    ``[limits.<scheme>]``. The controller hands this to the strategy as
    ``ScaleState.bounds_per_queue``."""
    lo, hi = default
    out: dict[str, tuple[int, int]] = {}
    config = config if config is not None else config_mod.load()
    table = limits_table()
    for queue in queues:
        streams: int | None = None
        if queue.startswith("mover.store."):
            name = queue.removeprefix("mover.store.")
            options = store_table(name, config)
            if options:
                streams = limit_from_options(f"store:{name}", options).max_streams
        elif queue.startswith("mover."):
            entry = table.get(queue.removeprefix("mover."))
            if isinstance(entry, dict):
                streams = limit_from_options(queue, entry).max_streams
        if streams is not None and streams < hi:
            out[queue] = (min(lo, streams), streams)
    return out


# -- the fleet-wide semaphore -----------------------------------------------------------------


def leases_key(key: str) -> str:
    return f"{PREFIX}{key}:leases"


def hwm_key(key: str) -> str:
    return f"{PREFIX}{key}:hwm"


def tat_key(key: str) -> str:
    return f"{PREFIX}{key}:tat"


def _take_stream(r: redis.Redis, key: str, limit: int, token: str, now: float) -> bool:
    """Add lease ``token`` if fewer than ``limit`` live leases exist (atomic); keep the
    high-water mark."""
    leases, hwm = leases_key(key), hwm_key(key)

    def attempt(pipe: Any) -> bool:
        pipe.zremrangebyscore(leases, "-inf", now)
        held = int(pipe.zcard(leases))
        if held >= limit:
            pipe.multi()
            pipe.zremrangebyscore(leases, "-inf", now)
            return False
        top = int(pipe.get(hwm) or 0)
        pipe.multi()
        pipe.zremrangebyscore(leases, "-inf", now)
        pipe.zadd(leases, {token: now + LEASE_S})
        pipe.expire(leases, int(LEASE_S * 4) + 1)
        if held + 1 > top:
            pipe.set(hwm, held + 1)
        return True

    # redis-py types transaction() for callables returning None; ours returns the verdict.
    return bool(r.transaction(cast(Any, attempt), leases, hwm, value_from_callable=True))


def _take_bandwidth(r: redis.Redis, key: str, rate: float, nbytes: int, now: float) -> float:
    """Schedule ``nbytes`` on the store's virtual clock; 0 when admitted, else seconds to wait."""
    tat = tat_key(key)

    def attempt(pipe: Any) -> float:
        free_at = max(float(pipe.get(tat) or 0.0), now)
        ahead = free_at - now
        pipe.multi()
        if ahead > BURST_S:
            return ahead - BURST_S
        pipe.set(tat, free_at + nbytes / rate, ex=int(ahead + nbytes / rate + 60))
        return 0.0

    wait: Any = r.transaction(cast(Any, attempt), tat, value_from_callable=True)
    return float(wait)


class _Renewer:
    """One thread per process: pushes the expiry of every held lease forward, every third of
    :data:`LEASE_S`, so that a chunk longer than a lease keeps its streams."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[int, str, str], redis.Redis] = {}
        every(max(0.5, LEASE_S / 3), self.renew_now, "mover-leases")

    def add(self, r: redis.Redis, key: str, token: str) -> None:
        with self._lock:
            self._held[(id(r), key, token)] = r

    def remove(self, r: redis.Redis, key: str, token: str) -> None:
        with self._lock:
            self._held.pop((id(r), key, token), None)

    def renew_now(self) -> None:
        with self._lock:
            held = list(self._held.items())
        expiry = time.time() + LEASE_S
        for (_, key, token), r in held:
            try:
                # XX: renew only a lease that still exists (never resurrect a released one).
                r.zadd(leases_key(key), {token: expiry}, xx=True)
            except redis.RedisError as exc:
                log.warning("cannot renew the lease on %s: %s", key, exc)


#: This process's renewer.
_get_renewer = PerProcess(_Renewer).get


@dataclass
class Lease:
    """Leases held by one chunk on the stores it touches; a context manager that releases
    them (also usable with an explicit :meth:`release`, which is idempotent)."""

    r: redis.Redis | None = None
    tokens: list[tuple[str, str]] = field(default_factory=list)

    def release(self) -> None:
        if self.r is None:
            return
        renewer = _get_renewer()
        for key, token in self.tokens:
            renewer.remove(self.r, key, token)
            try:
                self.r.zrem(leases_key(key), token)
            except redis.RedisError as exc:  # it expires by itself
                log.warning("cannot release the lease on %s: %s", key, exc)
        self.tokens.clear()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _retry_after(base_s: float) -> float:
    """A jittered wait, so that refused chunks do not all come back in the same instant."""
    return round(base_s * (0.5 + random.random()), 2)


def acquire_limits(r: redis.Redis, limits: Iterable[StoreLimit], nbytes: int = 0) -> Lease:
    """Take a stream (and bandwidth) on every limited store in ``limits``, all or nothing.

    Returns a :class:`Lease` to release when the chunk ends. Raises :class:`LeaseUnavailable`
    (having given back whatever it took) when one store is at its limit.
    """
    lease = Lease(r)
    seen: set[str] = set()
    try:
        for limit in limits:
            if not limit.limited or limit.key in seen:
                continue
            seen.add(limit.key)
            now = time.time()
            if limit.max_streams is not None:
                token = uuid.uuid4().hex
                if not _take_stream(r, limit.key, limit.max_streams, token, now):
                    raise LeaseUnavailable(
                        limit.key, f"max_streams {limit.max_streams}", _retry_after(1.0)
                    )
                lease.tokens.append((limit.key, token))
                _get_renewer().add(r, limit.key, token)
            if limit.max_bytes_per_s is not None and nbytes > 0:
                wait = _take_bandwidth(r, limit.key, limit.max_bytes_per_s, nbytes, now)
                if wait > 0:
                    raise LeaseUnavailable(
                        limit.key,
                        f"max_bytes_per_s {limit.max_bytes_per_s:g}",
                        _retry_after(max(0.2, wait)),
                    )
    except BaseException:
        lease.release()
        raise
    return lease


def acquire(r: redis.Redis, endpoints: Iterable[Any], nbytes: int = 0) -> Lease:
    """Leases for a chunk that touches ``endpoints`` (:class:`mover.motion.Endpoint`: a store
    and a resolved location); see :func:`acquire_limits`."""
    limits = []
    for e in endpoints:
        try:
            limits.append(limit_for(e.location, getattr(e.store, "options", None)))
        except ConfigError as exc:  # a typo in a limit must not strand the job's chunks
            log.error("ignoring the limits of %s: %s", e.location, exc.message)
    return acquire_limits(r, limits, nbytes)


def high_water_mark(r: redis.Redis, key: str) -> int:
    """The most leases ever held at once on store ``key`` (``store:NAME``)."""
    return int(r.get(hwm_key(key)) or 0)


def held(r: redis.Redis, key: str) -> int:
    """Leases held now (unexpired) on store ``key``."""
    return int(r.zcount(leases_key(key), time.time(), "+inf"))


def reset(r: redis.Redis, key: str) -> None:
    """Forget the leases, high-water mark and schedule of store ``key`` (tests, operators)."""
    r.delete(leases_key(key), hwm_key(key), tat_key(key))
