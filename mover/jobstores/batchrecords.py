"""The records of a ``mover.batch.copy`` in a few round trips instead of twenty per object.

A small object moved on the fleet costs one request to its store and, done one object at a
time, about twenty Redis round trips: the job's state, the item's plan, "is this chunk done?",
the chunk's receipt, the progress counter, the commit claim (TIME, WATCH, HMGET, MULTI), the
outcome (WATCH, HMGET, MULTI), "was that the last object?". Measured on 2,000 x 16 KiB to S3
with two workers, the workers spent 70 % of their time waiting for Redis and 16 % on S3, and
the fleet ran at a third of the embedded executor's speed (benchmarks/bench_fleet.py).

A batch of one-chunk objects (:mod:`mover.workers.batch_tasks`) keeps the same records with the
same guarantees, for many objects at once (the batch's entries, or a group of them):

:func:`read`
    one pipeline: the job's state, each item's record and whether its chunk is done already.
:func:`record_done_and_claim`
    one script: each chunk's receipt, done and settled (SADD: a second delivery counts
    nothing), the progress counter, and for each object whose chunks are now all done and
    still ``running`` in a job not being stopped, the commit claim (``running`` ->
    ``committing`` with a lease on Redis's clock, exactly as
    :func:`mover.jobstores.leases.claim`), so that one claimant commits it.
:func:`finish_commits`
    one script: each committed object's outcome, recorded only while its claimant still holds
    the lease (as :func:`mover.jobstores.leases.finish`), the lease released, the object
    counted final, and whether this call made the whole job final.

Scripts run atomically on the server, so the compare-and-set of a claim and of an outcome holds
without WATCH/MULTI. Anything unusual (a job being cancelled, an object not ``running``, a chunk
already done, a failure) leaves the fast path and goes through the one-object code of
:mod:`mover.workers.tasks`. Lua needs a real Redis (fakeredis without ``lupa`` has none); the
fleet always has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mover.jobs import COMMITTING, RUNNING, Item
from mover.jobstores.leases import LEASE_S
from mover.jobstores.redis import _dumps, _loads

if TYPE_CHECKING:
    from mover.jobstores.redis import RedisJobStore

# KEYS: job, committing index, then one item key per entry.
# ARGV: owner (JSON), lease seconds, "running" (JSON), "committing" (JSON), stop states
# (JSON, space-separated count then values), then per entry: chunk, receipt (JSON), size,
# index member ("<job>:<item>").
# Returns per entry {chunks left, claimed 0/1}.
_DONE_AND_CLAIM = """
local job, index = KEYS[1], KEYS[2]
local owner, lease = ARGV[1], tonumber(ARGV[2])
local running, committing = ARGV[3], ARGV[4]
local n_stop = tonumber(ARGV[5])
local stopping = false
local job_state = redis.call('HGET', job, 'state')
for s = 1, n_stop do
  if job_state == ARGV[5 + s] then stopping = true end
end
local t = redis.call('TIME')
local expires = tonumber(t[1]) + tonumber(t[2]) / 1000000 + lease
local expires_text = string.format('%.6f', expires)
local base = 5 + n_stop
local out = {}
for e = 1, #KEYS - 2 do
  local key = KEYS[2 + e]
  local a = base + (e - 1) * 4
  local chunk, receipt, size, member = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4]
  redis.call('HSET', key .. ':receipts', chunk, receipt)
  local added = redis.call('SADD', key .. ':done', chunk)
  redis.call('SADD', key .. ':settled', chunk)
  redis.call('HDEL', key .. ':errors', chunk)
  if added == 1 and size > 0 then redis.call('HINCRBY', job, 'bytes_done', size) end
  local n_done = redis.call('SCARD', key .. ':done')
  local fields = redis.call('HMGET', key, 'state', 'n_chunks')
  local left = math.max(0, (tonumber(fields[2]) or 0) - n_done)
  local claimed = 0
  if left == 0 and fields[1] == running and not stopping then
    redis.call('HSET', key, 'state', committing, 'commit_owner', owner,
               'commit_expires', expires_text)
    redis.call('ZADD', index, expires, member)
    redis.call('HINCRBY', key, 'commits', 1)
    claimed = 1
  end
  out[e] = {left, claimed}
end
return out
"""

# KEYS: job, final set, committing index, then one item key per entry.
# ARGV: "committing" (JSON), then per entry: owner (JSON), member, item index, number of
# field pairs, the pairs (values JSON).
# Returns {recorded 0/1 per entry..., made the job final 0/1}.
_FINISH = """
local job, final, index = KEYS[1], KEYS[2], KEYS[3]
local committing = ARGV[1]
local a = 1
local out = {}
local added_any = false
for e = 1, #KEYS - 3 do
  local key = KEYS[3 + e]
  local owner, member, item = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local n = tonumber(ARGV[a + 4])
  local now = redis.call('HMGET', key, 'state', 'commit_owner')
  if now[1] == committing and now[2] == owner then
    for f = 1, n do
      redis.call('HSET', key, ARGV[a + 4 + 2 * f - 1], ARGV[a + 4 + 2 * f])
    end
    redis.call('HSET', key, 'commit_owner', 'null', 'commit_expires', 'null')
    redis.call('ZREM', index, member)
    if redis.call('SADD', final, item) == 1 then added_any = true end
    out[e] = 1
  else
    out[e] = 0
  end
  a = a + 4 + 2 * n
end
local n_items = tonumber(redis.call('HGET', job, 'n_items')) or 0
local made_final = 0
if added_any and redis.call('SCARD', final) >= n_items then made_final = 1 end
out[#out + 1] = made_final
return out
"""


#: The item fields a batch entry needs: where it goes, its state and its plan (not its chunks,
#: digest, error or lease: decoding every field was most of a worker's reading time).
_READ = ("source", "destination", "size", "state", "strategy", "plan", "version", "checksum")


@dataclass(frozen=True)
class Entry:
    """One object of a batch as Redis holds it when the batch starts."""

    item: int
    chunk: int
    record: Item | None  # None: the item is unknown (its job expired)
    chunk_done: bool  # a delivery before this one already moved the chunk


def read(jobs: RedisJobStore, job_id: str, pairs: list[tuple[int, int]]) -> tuple[Any, list[Entry]]:
    """The job's state (decoded; None for an unknown job) and each ``(item, chunk)``'s record,
    in one round trip."""
    pipe = jobs.r.pipeline(transaction=False)
    pipe.hget(jobs.job_key(job_id), "state")
    for item, chunk in pairs:
        pipe.hmget(jobs.item_key(job_id, item), _READ)
        pipe.sismember(jobs.item_key(job_id, item, "done"), chunk)
    raw = pipe.execute()
    entries = []
    for n, (item, chunk) in enumerate(pairs):
        values, done = raw[1 + 2 * n], raw[2 + 2 * n]
        record = None
        if values[0] is not None:  # the item exists (its source is always set)
            f = dict(zip(_READ, map(_loads, values), strict=True))
            record = Item(
                index=item,
                source=f["source"],
                destination=f["destination"],
                size=f["size"],
                state=f["state"] or "pending",
                strategy=f["strategy"],
                plan=f["plan"],
                version=f["version"],
                checksum=f["checksum"],
            )
        entries.append(Entry(item, chunk, record, bool(done)))
    return _loads(raw[0]), entries


@dataclass(frozen=True)
class Done:
    """A chunk that moved: what :func:`record_done_and_claim` records."""

    item: int
    chunk: int
    receipt: dict[str, Any]


def record_done_and_claim(
    jobs: RedisJobStore,
    job_id: str,
    done: list[Done],
    owner: str,
    stop_states: tuple[str, ...],
    lease_s: float | None = None,
) -> list[tuple[int, bool]]:
    """Record ``done`` chunks and claim, for ``owner``, the commit of each object left with no
    chunk to run, still ``running``, in a job whose state is not one of ``stop_states``.
    Returns per entry (chunks of its object not done yet, claimed)."""
    if not done:
        return []
    keys = [jobs.job_key(job_id), f"{jobs.prefix}:committing"]
    args: list[Any] = [_dumps(owner), lease_s or LEASE_S, _dumps(RUNNING), _dumps(COMMITTING)]
    args += [len(stop_states), *(_dumps(s) for s in stop_states)]
    for d in done:
        keys.append(jobs.item_key(job_id, d.item))
        size = int(d.receipt.get("size") or 0)
        args += [d.chunk, _dumps(d.receipt), size, f"{job_id}:{d.item}"]
    out = jobs.run_script(_DONE_AND_CLAIM, keys, args)
    return [(int(left), bool(claimed)) for left, claimed in out]


@dataclass(frozen=True)
class Outcome:
    """A claimed commit's result: the item fields to record while ``owner`` holds the lease."""

    item: int
    owner: str
    fields: dict[str, Any]


def finish_commits(
    jobs: RedisJobStore, job_id: str, outcomes: list[Outcome]
) -> tuple[list[bool], bool]:
    """Record each outcome whose owner still holds the lease (release it, count the object
    final). Returns (recorded, per outcome) and whether this call made every object of the
    job final (its caller then closes the job)."""
    if not outcomes:
        return [], False
    keys = [jobs.job_key(job_id), f"{jobs.job_key(job_id)}:final", f"{jobs.prefix}:committing"]
    args: list[Any] = [_dumps(COMMITTING)]
    for o in outcomes:
        keys.append(jobs.item_key(job_id, o.item))
        args += [_dumps(o.owner), f"{job_id}:{o.item}", o.item, len(o.fields)]
        for name, value in o.fields.items():
            args += [name, _dumps(value)]
    out = jobs.run_script(_FINISH, keys, args)
    return [bool(x) for x in out[:-1]], bool(out[-1])
