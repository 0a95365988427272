"""Job records in Redis, shared by the caller and every worker of the fleet.

The fleet needs one job store that every process sees at once: the caller writes the job and
its plans, workers record chunks and decide, atomically, which of them commits an object. This
is :class:`~mover.jobs.JobStore` on Redis, the same contract as the SQLite store
(:mod:`mover.jobstores.sqlite`), with a few fleet-only operations (``settle``, ``transition``,
``item_final``) the celery executor needs to finish jobs without chords.

Keys (``P`` is the prefix, ``mover`` by default; ``J`` is ``P:job:<id>``):

========================  =====  ==========================================================
``J``                     hash   the job: source, destination, state, options, n_items, ...
``J:item:<i>``            hash   an item: source, destination, size, state, strategy, plan,
                                 digest, error, chunks (``[[index, offset, length], ...]``),
                                 n_chunks, commits (how many times the commit was claimed),
                                 commit_owner, commit_expires, takeovers (the lease)
``J:item:<i>:done``       set    indexes of chunks done (SADD + SCARD: idempotent counting)
``J:item:<i>:settled``    set    indexes of chunks that will not run again (done or skipped)
``J:item:<i>:receipts``   hash   chunk index -> receipt (JSON)
``J:item:<i>:errors``     hash   chunk index -> last error message
``J:final``               set    indexes of items in a final state
``P:jobs``                zset   job id by creation time (``mover jobs``)
``P:jobids``              zset   job ids, score 0, for prefix look-up (ZRANGEBYLEX)
``P:committing``          zset   ``<job>:<item>`` by commit-lease expiry (Redis clock),
                                 swept for expired leases (:mod:`mover.jobstores.leases`)
``P:aborts``              hash   ``<job>:<item>`` -> a pending abort (:mod:`mover.cleanup`)
``P:aborts:due``          zset   ``<job>:<item>`` by the time of its next try
``P:workers``             zset   live workers by last heartbeat (:mod:`mover.presence`)
``P:workers:queues``      hash   worker -> the queues it consumes (JSON)
========================  =====  ==========================================================

Every hash value is JSON (so ``None`` and numbers survive). A job that reaches a final state
gets a TTL on all its keys (``MOVER_JOB_TTL_S``, default 7 days); resuming it removes the TTL.
State changes that several processes may race for (claim the commit, fail an item, cancel a
job) are optimistic transactions (WATCH/MULTI), so they are atomic on a real Redis and work on
fakeredis without Lua. No credential is ever written here: records hold URLs, which cannot
carry user info (:mod:`mover.location` refuses it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError
from redis.retry import Retry

from mover.errors import ConfigError, JobNotFound, MoverError
from mover.jobs import FINAL, ChunkRecord, Item, Job, JobStore
from mover.jobstores import ITEM_FIELDS, JOB_FIELDS, check_fields

if TYPE_CHECKING:
    from mover.cleanup import PendingAbort

#: Seconds a finished job's records are kept (``MOVER_JOB_TTL_S``).
DEFAULT_TTL_S = 7 * 24 * 3600
#: The Redis used when neither ``MOVER_JOBS_URL`` nor ``MOVER_BROKER_URL`` is set.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: The key prefix (``MOVER_REDIS_PREFIX``).
DEFAULT_PREFIX = "mover"
#: A job being cancelled: chunks still queued return at once, running ones stop at their
#: next read; it becomes ``cancelled`` when every chunk has settled.
CANCELLING = "cancelling"


#: Set (ARGV[2] > 0) or remove the TTL of every key of job KEYS[1] with ARGV[1] objects: the
#: same keys as ``RedisJobStore._all_keys``.
_EXPIRE_JOB = """
local job, n, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local function each(key)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
each(job)
each(job .. ':final')
for i = 0, n - 1 do
  local item = job .. ':item:' .. i
  each(item)
  for _, part in ipairs({'done', 'settled', 'receipts', 'errors'}) do each(item .. ':' .. part) end
end
return n
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads(raw: bytes | str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _decode(mapping: dict[bytes, bytes]) -> dict[str, Any]:
    return {k.decode(): _loads(v) for k, v in mapping.items()}


def _unknown(job_id: str) -> JobNotFound:
    """The one wording of a job id that names no job."""
    return JobNotFound(f"job {job_id!r} is unknown (see mover jobs)")


def client_from_url(url: str) -> redis.Redis:
    """A Redis client that rides out a short outage (a restart of the server) by retrying
    each command with back-off for about half a minute, instead of failing the chunk."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 20),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=30,
    )


def _why(exc: BaseException) -> str:
    """What went wrong reaching Redis, in words that point at the setting to fix (never the
    server's text, which may echo a URL)."""
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        return f"{type(exc).__name__}: wrong or missing password (MOVER_BROKER_PASSWORD)"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS: its certificate is not signed by the CA of ssl_ca_certs in the URL"
    if "SSL" in text or "TLS" in text:
        return f"{type(exc).__name__}: TLS handshake failed (rediss:// against a TLS port?)"
    return type(exc).__name__


class RedisJobStore(JobStore):
    """A :class:`~mover.jobs.JobStore` in Redis, for the fleet.

    Parameters:
        url (str | None): the Redis URL; default :func:`mover.config.jobs_url`
            (``MOVER_JOBS_URL``, else a Redis broker's URL).
        client (redis.Redis | None): use this client instead (tests pass a fakeredis one).
        prefix (str): key prefix (default ``MOVER_REDIS_PREFIX`` or ``mover``).
        ttl_s (int): seconds finished jobs are kept (default ``MOVER_JOB_TTL_S`` or 7 days).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str | None = None,
        ttl_s: int | None = None,
    ) -> None:
        if client is None:
            from mover import config as config_mod

            url = url or config_mod.jobs_url()
            if config_mod.url_scheme(url) not in config_mod.REDIS_SCHEMES:
                raise ConfigError(
                    f"the fleet's job store needs Redis (MOVER_JOBS_URL=redis://...), not "
                    f"{config_mod.url_scheme(url) or url!r}"
                )
            client = client_from_url(url)
        self.r = client
        self.url = url or ""
        self.prefix = prefix or os.environ.get("MOVER_REDIS_PREFIX") or DEFAULT_PREFIX
        self.ttl_s = int(ttl_s or os.environ.get("MOVER_JOB_TTL_S") or DEFAULT_TTL_S)
        self._lua: bool | None = None  # whether the server runs scripts (asked once)
        self._scripts: dict[str, Any] = {}  # Lua text -> its registered script

    def check(self, timeout_s: float = 3.0) -> None:
        """Fail fast, with a clear error, when Redis cannot be reached (the client itself
        retries for about half a minute, which suits a worker riding out a restart but not a
        command line waiting for an answer). The message names host and port, never a
        password."""
        if not self.url:
            return
        probe = redis.Redis.from_url(
            self.url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            probe.ping()
        except redis.RedisError as exc:
            kwargs = probe.connection_pool.connection_kwargs
            where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            raise MoverError(
                f"cannot reach Redis at {where} ({_why(exc)}): is the broker up, and "
                "MOVER_BROKER_URL right?",
                retryable=True,
            ) from None
        finally:
            probe.close()

    # -- keys -------------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def item_key(self, job_id: str, item: int, part: str = "") -> str:
        base = f"{self.prefix}:job:{job_id}:item:{item}"
        return f"{base}:{part}" if part else base

    def _item_keys(self, job_id: str, item: int) -> list[str]:
        return [
            self.item_key(job_id, item),
            *(self.item_key(job_id, item, p) for p in ("done", "settled", "receipts", "errors")),
        ]

    def _all_keys(self, job_id: str, n_items: int) -> list[str]:
        keys = [self.job_key(job_id), f"{self.job_key(job_id)}:final"]
        for i in range(n_items):
            keys += self._item_keys(job_id, i)
        return keys

    # -- writing ----------------------------------------------------------------------------

    def create(self, job: Job) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self.job_key(job.id),
            mapping={
                "id": _dumps(job.id),
                "source": _dumps(job.source),
                "destination": _dumps(job.destination),
                "state": _dumps(job.state),
                "recursive": _dumps(job.recursive),
                "executor": _dumps(job.executor),
                "options": _dumps(job.options),
                "error": _dumps(job.error),
                "created": _dumps(job.created),
                "updated": _dumps(job.updated),
                "finished": _dumps(job.finished),
                "owner": _dumps(job.owner),
                "n_items": _dumps(len(job.items)),
            },
        )
        pipe.zadd(f"{self.prefix}:jobs", {job.id: job.created})
        pipe.zadd(f"{self.prefix}:jobids", {job.id: 0})
        for item in job.items:
            self._write_item(pipe, job.id, item, fresh=True)
        if job.state in FINAL:
            self._expire(pipe, job.id, len(job.items))
        pipe.execute()

    def _write_item(self, pipe: Any, job_id: str, item: Item, fresh: bool = False) -> None:
        """Queue the writing of ``item`` in ``pipe``; ``fresh``: a new job's (a new id), whose
        keys cannot exist yet, so nothing needs clearing first (two commands an object less
        when a job of thousands is recorded)."""
        key = self.item_key(job_id, item.index)
        if not fresh:
            pipe.delete(*self._item_keys(job_id, item.index)[1:])
        pipe.hset(
            key,
            mapping={
                "index": _dumps(item.index),
                "source": _dumps(item.source),
                "destination": _dumps(item.destination),
                "size": _dumps(item.size),
                "state": _dumps(item.state),
                "strategy": _dumps(item.strategy),
                "plan": _dumps(item.plan),
                "digest": _dumps(item.digest),
                "error": _dumps(item.error),
                "bytes_through": _dumps(item.bytes_through),
                "version": _dumps(item.version),
                "checksum": _dumps(item.checksum),
                "chunks": _dumps([[c.index, c.offset, c.length] for c in item.chunks]),
                "n_chunks": _dumps(len(item.chunks)),
                # A token that changes with every (re)plan: workers cache plans by it.
                "planned": _dumps(f"{time.time():.6f}:{os.getpid()}"),
            },
        )
        done = [c for c in item.chunks if c.state == "done"]
        if done:
            pipe.sadd(self.item_key(job_id, item.index, "done"), *(c.index for c in done))
            pipe.sadd(self.item_key(job_id, item.index, "settled"), *(c.index for c in done))
            receipts = {str(c.index): _dumps(c.receipt) for c in done if c.receipt}
            if receipts:
                pipe.hset(self.item_key(job_id, item.index, "receipts"), mapping=receipts)
        errors = {str(c.index): _dumps(c.error) for c in item.chunks if c.error}
        if errors:
            pipe.hset(self.item_key(job_id, item.index, "errors"), mapping=errors)
        if item.state in FINAL:
            pipe.sadd(f"{self.job_key(job_id)}:final", item.index)
        elif not fresh:
            pipe.srem(f"{self.job_key(job_id)}:final", item.index)

    def save_item(self, job_id: str, item: Item) -> None:
        pipe = self.r.pipeline(transaction=True)
        self._write_item(pipe, job_id, item)
        pipe.hset(self.job_key(job_id), "updated", _dumps(time.time()))
        pipe.execute()

    def chunk_done(self, job_id: str, item: int, chunk: int, receipt: dict[str, Any]) -> int:
        """Record a chunk done; return how many chunks of the item are not done.

        One MULTI: the receipt, SADD to the done and settled sets, SCARD. A chunk delivered
        twice adds nothing the second time, so the count reaches 0 once per distinct chunk
        set, and every caller that sees 0 races for :meth:`claim_commit`, which only one wins.
        """
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.item_key(job_id, item, "receipts"), str(chunk), _dumps(receipt))
        pipe.sadd(self.item_key(job_id, item, "done"), chunk)
        pipe.sadd(self.item_key(job_id, item, "settled"), chunk)
        pipe.hdel(self.item_key(job_id, item, "errors"), str(chunk))
        pipe.scard(self.item_key(job_id, item, "done"))
        pipe.hget(self.item_key(job_id, item), "n_chunks")
        _, added, _, _, n_done, n_chunks = pipe.execute()
        if added and receipt.get("size"):
            # Progress for followers (``progress``); counted once per distinct chunk.
            self.r.hincrby(self.job_key(job_id), "bytes_done", int(receipt["size"]))
        return max(0, int(_loads(n_chunks) or 0) - int(n_done))

    def chunk_failed(self, job_id: str, item: int, chunk: int, error: str) -> None:
        self.r.hset(self.item_key(job_id, item, "errors"), str(chunk), _dumps(error))

    def is_chunk_done(self, job_id: str, item: int, chunk: int) -> bool:
        return bool(self.r.sismember(self.item_key(job_id, item, "done"), chunk))

    def chunks_left(self, job_id: str, item: int) -> int:
        """How many chunks of the item are not done (without recording anything)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.scard(self.item_key(job_id, item, "done"))
        pipe.hget(self.item_key(job_id, item), "n_chunks")
        n_done, n_chunks = pipe.execute()
        return max(0, int(_loads(n_chunks) or 0) - int(n_done))

    def settle(self, job_id: str, item: int, chunk: int) -> int:
        """Mark a chunk as one that will not run again (done, failed or skipped after a
        cancel); return how many chunks of the item have not settled yet."""
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(self.item_key(job_id, item, "settled"), chunk)
        pipe.scard(self.item_key(job_id, item, "settled"))
        pipe.hget(self.item_key(job_id, item), "n_chunks")
        _, n_settled, n_chunks = pipe.execute()
        return max(0, int(_loads(n_chunks) or 0) - int(n_settled))

    def unsettle(self, job_id: str, item: int, chunks: Iterable[int]) -> None:
        """Forget that these chunks settled (resume re-enqueues them)."""
        chunks = list(chunks)
        if chunks:
            self.r.srem(self.item_key(job_id, item, "settled"), *chunks)

    def item_final(self, job_id: str, item: int) -> bool:
        """Note that an item reached a final state; True for the one caller whose call made
        every item of the job final (that caller finishes the job)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(f"{self.job_key(job_id)}:final", item)
        pipe.scard(f"{self.job_key(job_id)}:final")
        pipe.hget(self.job_key(job_id), "n_items")
        added, n_final, n_items = pipe.execute()
        return bool(added) and int(n_final) >= int(_loads(n_items) or 0)

    def update_item(self, job_id: str, item: int, **fields: Any) -> None:
        check_fields(fields, ITEM_FIELDS, "item")
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.item_key(job_id, item), mapping={k: _dumps(v) for k, v in fields.items()})
        pipe.hset(self.job_key(job_id), "updated", _dumps(time.time()))
        pipe.execute()

    def update_job(self, job_id: str, **fields: Any) -> None:
        check_fields(fields, JOB_FIELDS, "job")
        fields["updated"] = time.time()
        n_items = int(_loads(self.r.hget(self.job_key(job_id), "n_items")) or 0)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.job_key(job_id), mapping={k: _dumps(v) for k, v in fields.items()})
        state = fields.get("state")
        if state in FINAL:
            self._expire(pipe, job_id, n_items)
        elif state is not None:
            self._expire(pipe, job_id, n_items, persist=True)
        pipe.execute()

    def _expire(self, pipe: Any, job_id: str, n_items: int, persist: bool = False) -> None:
        """Queue in ``pipe`` the TTL of every key of the job (or its removal: ``persist``).

        Five keys an object: one script the server runs instead of 50,000 commands for a job
        of 10,000 objects (a worker closing such a job spent seconds packing them); a client
        without Lua (fakeredis in unit tests) gets the commands."""
        if self._has_lua():
            ttl = 0 if persist else self.ttl_s
            pipe.eval(_EXPIRE_JOB, 1, self.job_key(job_id), n_items, ttl)
            return
        for key in self._all_keys(job_id, n_items):
            if persist:
                pipe.persist(key)
            else:
                pipe.expire(key, self.ttl_s)

    def run_script(self, text: str, keys: list[str], args: list[Any]) -> Any:
        """Run the Lua script ``text`` by EVALSHA (40 bytes where EVAL sends the script;
        redis-py loads it again by itself after a restart that forgot it)."""
        script = self._scripts.get(text)
        if script is None:  # two threads may both register it: the same script
            script = self._scripts[text] = self.r.register_script(text)
        return script(keys=keys, args=args)

    def _has_lua(self) -> bool:
        """Whether the server runs scripts (a real Redis does; fakeredis without lupa not)."""
        known = self._lua
        if known is None:
            try:
                known = self.r.eval("return 1", 0) == 1
            except (redis.ResponseError, NotImplementedError, ImportError):
                known = False
            self._lua = known
        return known

    def transition(
        self, key: str, from_states: Iterable[str], to_state: str, **fields: Any
    ) -> bool:
        """Atomically set ``state`` (and ``fields``) of the hash ``key`` if its state is one
        of ``from_states``; True for the caller that did. WATCH/MULTI: a concurrent change
        of the key makes the transaction retry against the new state."""
        allowed = set(from_states)
        mapping = {"state": to_state, **fields}
        return self.update_if(key, ("state",), lambda cur: cur["state"] in allowed, mapping)

    def update_if(
        self,
        key: str,
        read: Iterable[str],
        check: Callable[[dict[str, Any]], bool],
        mapping: dict[str, Any],
        also: Callable[[Any], None] | None = None,
    ) -> bool:
        """Compare and set: read the fields ``read`` of hash ``key``; if the key exists and
        ``check(fields)`` holds, set ``mapping`` (and queue ``also(pipe)`` in the same MULTI).
        True for the caller whose change went in (WATCH/MULTI, retried on a race)."""
        names = list(read)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hmget(key, names)
                    if all(v is None for v in raw) or not check(
                        {n: _loads(v) for n, v in zip(names, raw, strict=True)}
                    ):
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.hset(key, mapping={k: _dumps(v) for k, v in mapping.items()})
                    if also is not None:
                        also(pipe)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def claim_commit(
        self, job_id: str, item: int, owner: str | None = None, lease_s: float | None = None
    ) -> bool:
        """``running`` -> ``committing``, once; also counts the claims (``commits``), which
        tests read to prove that no object was committed twice.

        The claim is a lease (:mod:`mover.jobstores.leases`): ``owner`` holds it until Redis's
        clock passes ``commit_expires``; the committer renews it while it works, and an
        expired one is taken over by a live worker's sweep."""
        from mover.jobstores import leases

        return leases.claim(self, job_id, item, owner, lease_s)

    def commits(self, job_id: str, item: int) -> int:
        """How many times the commit of an item was claimed (1 after a good run)."""
        return int(self.r.hget(self.item_key(job_id, item), "commits") or 0)

    # -- pending aborts (mover.cleanup) -------------------------------------------------------

    def clock(self) -> float:
        """Redis's own clock: every host of the fleet schedules retries on it."""
        from mover.presence import server_time

        return server_time(self.r)

    def _aborts_keys(self) -> tuple[str, str]:
        return f"{self.prefix}:aborts", f"{self.prefix}:aborts:due"

    def save_pending_abort(self, record: PendingAbort) -> None:
        records, due = self._aborts_keys()
        member = f"{record.job_id}:{record.item}"
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(records, member, _dumps(record.to_dict()))
        pipe.zadd(due, {member: record.next_at})
        pipe.execute()

    def pending_aborts(self, job_id: str | None = None) -> list[PendingAbort]:
        from mover.cleanup import PendingAbort

        records, _ = self._aborts_keys()
        found = [PendingAbort.from_dict(_loads(v)) for v in self.r.hvals(records)]
        return sorted(
            (r for r in found if job_id is None or r.job_id == job_id),
            key=lambda r: (r.job_id, r.item),
        )

    def due_aborts(self, limit: int, hold_s: float) -> list[PendingAbort]:
        from mover.cleanup import PendingAbort

        records, due = self._aborts_keys()
        now = self.clock()
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(due)
                    members = pipe.zrangebyscore(due, "-inf", now, start=0, num=limit)
                    if not members:
                        pipe.unwatch()
                        return []
                    raw = pipe.hmget(records, members)
                    pipe.multi()
                    pipe.zadd(due, {m: now + hold_s for m in members})
                    pipe.execute()
                    break
                except WatchError:
                    continue
        return [PendingAbort.from_dict(_loads(v)) for v in raw if v is not None]

    def drop_pending_abort(self, job_id: str, item: int) -> None:
        records, due = self._aborts_keys()
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(records, f"{job_id}:{item}")
        pipe.zrem(due, f"{job_id}:{item}")
        pipe.execute()

    # -- reading ----------------------------------------------------------------------------

    def resolve(self, job_id: str) -> str:
        """The full id of a job from its id or a unique prefix; raise JobNotFound."""
        if self.r.exists(self.job_key(job_id)):
            return job_id
        lo = f"[{job_id}".encode()
        hi = f"[{job_id}".encode() + b"\xff"
        found = [m.decode() for m in self.r.zrangebylex(f"{self.prefix}:jobids", lo, hi, 0, 3)]
        found = [j for j in found if self.r.exists(self.job_key(j))]
        if len(found) != 1:
            why = "matches several jobs" if found else "is unknown"
            raise JobNotFound(f"job {job_id!r} {why} (see mover jobs)")
        return found[0]

    def head(self, job_id: str) -> Job:
        """The job's own record without its objects (one HGETALL): what a follower needs to
        know where the job goes; :meth:`get` reads every object (seconds for 10,000)."""
        return self._head(self.resolve(job_id))[0]

    def _head(self, job_id: str) -> tuple[Job, int]:
        """Job ``job_id`` (a full id) without its objects, and how many objects it has."""
        raw = self.r.hgetall(self.job_key(job_id))
        if not raw:
            raise _unknown(job_id)
        fields = _decode(raw)
        return self._job_from(fields), int(fields.get("n_items") or 0)

    def outcomes(self, job_id: str) -> Job:
        """Job ``job_id`` (a full id) with each object's state and error only, in one
        pipeline: what deciding the job's final state needs (:meth:`get` reads every plan
        and receipt: seconds for 10,000 objects)."""
        job, n_items = self._head(job_id)
        pipe = self.r.pipeline(transaction=False)
        for i in range(n_items):
            pipe.hmget(self.item_key(job.id, i), ["state", "error"])
        for i, (state, error) in enumerate(pipe.execute()):
            if state is not None:
                job.items.append(
                    Item(i, "", "", state=_loads(state) or "pending", error=_loads(error))
                )
        return job

    def job_state(self, job_id: str) -> str | None:
        """The job's state alone: one HGET, cheap enough to poll while a chunk runs."""
        return _loads(self.r.hget(self.job_key(job_id), "state"))

    def item_state(self, job_id: str, item: int) -> str | None:
        """An item's state alone (one HGET; the item hash also holds the plan, which can be
        large, so callers on the hot path must not read the whole hash)."""
        return _loads(self.r.hget(self.item_key(job_id, item), "state"))

    def progress(self, job_id: str) -> tuple[str | None, int]:
        """The job's state and bytes of chunks done so far: two fields, cheap to poll."""
        state, done = self.r.hmget(self.job_key(job_id), ["state", "bytes_done"])
        return _loads(state), int(done or 0)

    def set_progress(self, job_id: str, nbytes: int) -> None:
        """Reset the progress counter (resume: objects planned again start from zero)."""
        self.r.hset(self.job_key(job_id), "bytes_done", int(nbytes))

    def get_item(self, job_id: str, item: int, with_chunks: bool = True) -> Item:
        """One item with its plan and (optionally) its chunks' states."""
        pipe = self.r.pipeline(transaction=False)
        self._queue_item_reads(pipe, job_id, item, with_chunks)
        results = pipe.execute()
        if not results[0]:
            raise JobNotFound(f"job {job_id!r} has no object {item}")
        return self._item_from(results, with_chunks)

    def _queue_item_reads(self, pipe: Any, job_id: str, item: int, with_chunks: bool) -> None:
        pipe.hgetall(self.item_key(job_id, item))
        if with_chunks:
            pipe.smembers(self.item_key(job_id, item, "done"))
            pipe.hgetall(self.item_key(job_id, item, "receipts"))
            pipe.hgetall(self.item_key(job_id, item, "errors"))

    @staticmethod
    def _item_from(results: list[Any], with_chunks: bool, with_plan: bool = True) -> Item:
        d = _decode(results[0])
        item = Item(
            index=d["index"],
            source=d["source"],
            destination=d["destination"],
            size=d.get("size"),
            state=d.get("state") or "pending",
            strategy=d.get("strategy"),
            plan=d.get("plan") if with_plan else None,
            digest=d.get("digest"),
            error=d.get("error"),
            bytes_through=d.get("bytes_through"),
            version=d.get("version"),
            checksum=d.get("checksum"),
        )
        chunks = d.get("chunks") or []
        if with_chunks:
            done = {int(x) for x in results[1]}
            receipts = {int(k): json.loads(v) for k, v in results[2].items()}
            errors = {int(k): json.loads(v) for k, v in results[3].items()}
        else:
            done, receipts, errors = set(), {}, {}
        for index, offset, length in chunks:
            state = "done" if index in done else ("failed" if index in errors else "pending")
            item.chunks.append(
                ChunkRecord(
                    index=index,
                    offset=offset,
                    length=length,
                    state=state,
                    digest=(receipts.get(index) or {}).get("digest"),
                    error=errors.get(index),
                    receipt=receipts.get(index),
                )
            )
        return item

    @staticmethod
    def _job_from(d: dict[str, Any]) -> Job:
        return Job(
            id=d["id"],
            source=d["source"],
            destination=d["destination"],
            state=d["state"],
            recursive=bool(d.get("recursive")),
            executor=d.get("executor") or "celery",
            options=d.get("options") or {},
            error=d.get("error"),
            created=d.get("created") or 0.0,
            updated=d.get("updated") or 0.0,
            finished=d.get("finished"),
            owner=d.get("owner") or "",
        )

    def _read_jobs(self, ids: list[str], with_chunks: bool) -> list[Job | None]:
        pipe = self.r.pipeline(transaction=False)
        for jid in ids:
            pipe.hgetall(self.job_key(jid))
        raw_jobs = pipe.execute()
        jobs: list[Job | None] = []
        pipe = self.r.pipeline(transaction=False)
        per_item = 4 if with_chunks else 1
        for raw in raw_jobs:
            if not raw:
                jobs.append(None)
                continue
            job = self._job_from(_decode(raw))
            jobs.append(job)
            n_items = int(_loads(raw.get(b"n_items")) or 0)
            for i in range(n_items):
                self._queue_item_reads(pipe, job.id, i, with_chunks)
        results = pipe.execute()
        pos = 0
        for job, raw in zip(jobs, raw_jobs, strict=True):
            if job is None:
                continue
            for _ in range(int(_loads(raw.get(b"n_items")) or 0)):
                chunk = results[pos : pos + per_item]
                pos += per_item
                if chunk[0]:
                    job.items.append(self._item_from(chunk, with_chunks, with_chunks))
        return jobs

    def finished(self, job_id: str) -> Job:
        """Job ``job_id`` (a full id) for its report once it is final: as :meth:`get`, except
        that an object recorded ``done`` has its chunks marked done without their receipts
        and errors being read (an object is done only once every chunk is; the receipts of
        thousands of objects were most of a follower's last read). :meth:`get` has them."""
        job, n_items = self._head(job_id)
        pipe = self.r.pipeline(transaction=False)
        for i in range(n_items):
            pipe.hget(self.item_key(job_id, i), "state")
        done = [_loads(state) == "done" for state in pipe.execute()]
        pipe = self.r.pipeline(transaction=False)
        for i in range(n_items):
            self._queue_item_reads(pipe, job_id, i, with_chunks=not done[i])
        results = pipe.execute()
        pos = 0
        for i in range(n_items):
            width = 1 if done[i] else 4
            chunk = results[pos : pos + width]
            pos += width
            if not chunk[0]:
                continue
            item = self._item_from(chunk, with_chunks=not done[i])
            if done[i]:
                for c in item.chunks:
                    c.state = "done"
            job.items.append(item)
        return job

    def claim_submit(self, task_id: str, job_id: str) -> str:
        """The job id of the ``mover.submit`` task ``task_id``: the first delivery claims
        ``job_id``; a redelivery of the same task (a worker killed before its ack) gets the
        id the first one claimed, so that one request makes one job."""
        key = f"{self.prefix}:submit:{task_id}"
        if self.r.set(key, job_id, nx=True, ex=self.ttl_s):
            return job_id
        held = self.r.get(key)
        return held.decode() if held else job_id

    def has(self, job_id: str) -> bool:
        """Whether job ``job_id`` (a full id) is recorded."""
        return bool(self.r.exists(self.job_key(job_id)))

    def get(self, job_id: str) -> Job:
        jid = self.resolve(job_id)
        job = self._read_jobs([jid], with_chunks=True)[0]
        if job is None:
            raise _unknown(job_id)
        return job

    def list(self, limit: int = 20) -> list[Job]:
        ids = [m.decode() for m in self.r.zrevrange(f"{self.prefix}:jobs", 0, max(0, limit - 1))]
        jobs = self._read_jobs(ids, with_chunks=False)
        gone = [jid for jid, job in zip(ids, jobs, strict=True) if job is None]
        if gone:  # expired: drop them from the indexes
            self.r.zrem(f"{self.prefix}:jobs", *gone)
            self.r.zrem(f"{self.prefix}:jobids", *gone)
        return [j for j in jobs if j is not None]

    def close(self) -> None:
        self.r.close()
