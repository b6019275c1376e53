"""Admission to the queues under a cap that holds when many submissions race.

Checking the queues' depth and then enqueueing is two steps: ten API threads (or replicas)
can all read "4 of 5" before any of them enqueues, and ten jobs go in. Here the check and a
*reservation* are one Lua script, which Redis runs atomically: a submission that is admitted
holds a reservation (a member of a sorted set, scored by time) until its job is in a queue,
and every later check counts the reservations as well as the queued jobs. A reservation
whose job is already in a queue is not counted again: between the enqueue and the release
(a Redis round trip, but far longer on a loaded machine) the job would otherwise count
twice and refuse a submission the cap allows. A reservation whose API process died before
releasing it lapses after `RESERVATION_SECONDS`.

The same script keeps Redis under its memory budget: uploads and stems live in Redis, and
with `maxmemory` and `noeviction` Redis refuses writes once full, which would fail jobs
halfway (stems not stored). A submission is admitted only if Redis' used memory, the costs
of the submissions being stored and its own cost (upload plus estimated stems) stay under
the high-water mark of the budget; else the client gets a 503 before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from rq import Queue

# An admitted submission stores its upload and enqueues within a few Redis round trips;
# a minute is far more, and short enough that a crashed API's reservations soon lapse.
RESERVATION_SECONDS = 60.0

# KEYS[1]: reservations (sorted set: job id -> time); KEYS[2]: their costs (hash: job id ->
# bytes); KEYS[3..]: the queues' lists.
# ARGV: cap, job id, now (s), reservation lifetime (s), the job's cost (bytes), the memory
# budget (bytes; 0: Redis' maxmemory; no check when both are 0), the high-water fraction.
# Returns {1, depth, "ok"} when admitted (the reservation is made), else {0, depth, reason}.
_ADMIT = """
local now, lifetime = tonumber(ARGV[3]), tonumber(ARGV[4])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - lifetime)) do
    redis.call('HDEL', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lifetime)
local depth = 0
for i = 3, #KEYS do
    depth = depth + redis.call('LLEN', KEYS[i])
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local queued = false
    for i = 3, #KEYS do
        if redis.call('LPOS', KEYS[i], id) then
            queued = true  -- enqueued, not yet released: counted by LLEN already
            break
        end
    end
    if not queued then
        depth = depth + 1
    end
end
if depth >= tonumber(ARGV[1]) then
    return {0, depth, 'queue'}
end
local cost, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local info = redis.call('INFO', 'memory')
if limit == 0 then
    limit = tonumber(string.match(info, 'maxmemory:(%d+)')) or 0
end
if limit > 0 then
    local used = tonumber(string.match(info, 'used_memory:(%d+)')) or 0
    for _, pending in ipairs(redis.call('HVALS', KEYS[2])) do
        used = used + tonumber(pending)
    end
    if used + cost > limit * tonumber(ARGV[7]) then
        return {0, depth, 'memory'}
    end
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], cost)
redis.call('EXPIRE', KEYS[1], math.ceil(lifetime) * 2)
redis.call('EXPIRE', KEYS[2], math.ceil(lifetime) * 2)
return {1, depth, 'ok'}
"""


@dataclass(frozen=True)
class MemoryBudget:
    """Redis memory the job store may fill: `limit_bytes` (0: Redis' own maxmemory; no check
    when that is 0 too) times `high_water`. The margin above it is for the stems of jobs
    already queued, which arrive later."""

    limit_bytes: int = 0
    high_water: float = 0.8


@dataclass(frozen=True)
class Admission:
    admitted: bool
    depth: int  # jobs queued or being queued when the request was decided
    reason: str = "ok"  # "queue": the cap is reached; "memory": the budget would be


class NotAdmitted(Exception):
    def __init__(self, decision: Admission) -> None:
        super().__init__(f"not admitted ({decision.reason}, {decision.depth} jobs waiting)")
        self.decision = decision


def reservations_key(namespace: str) -> str:
    return f"{namespace}:admission:reservations"


def costs_key(namespace: str) -> str:
    return f"{namespace}:admission:costs"


def admit(
    redis: Redis,
    namespace: str,
    queue_names: Sequence[str],
    job_id: str,
    cap: int,
    *,
    cost_bytes: int = 0,
    budget: MemoryBudget | None = None,
    now: float | None = None,
) -> Admission:
    """Reserve a place for `job_id` if fewer than `cap` jobs are queued or being queued and
    its `cost_bytes` fit the memory budget."""
    budget = budget or MemoryBudget()
    keys = [reservations_key(namespace), costs_key(namespace)]
    keys += [Queue.redis_queue_namespace_prefix + name for name in sorted(set(queue_names))]
    stamp = time.time() if now is None else now
    args = (cap, job_id, repr(stamp), RESERVATION_SECONDS, int(cost_bytes))
    admitted, depth, reason = redis.eval(
        _ADMIT, len(keys), *keys, *args, int(budget.limit_bytes), repr(budget.high_water)
    )
    text = reason.decode() if isinstance(reason, bytes) else str(reason)
    return Admission(bool(admitted), int(depth), text)


def release(redis: Redis, namespace: str, job_id: str) -> None:
    with redis.pipeline() as pipe:
        pipe.zrem(reservations_key(namespace), job_id)
        pipe.hdel(costs_key(namespace), job_id)
        pipe.execute()


@contextmanager
def admitted(
    redis: Redis,
    namespace: str,
    queue_names: Sequence[str],
    job_id: str,
    cap: int,
    *,
    cost_bytes: int = 0,
    budget: MemoryBudget | None = None,
) -> Iterator[Admission]:
    """Hold a reservation while the body stores and enqueues the job; NotAdmitted if none."""
    decision = admit(
        redis, namespace, queue_names, job_id, cap, cost_bytes=cost_bytes, budget=budget
    )
    if not decision.admitted:
        raise NotAdmitted(decision)
    try:
        yield decision
    finally:
        release(redis, namespace, job_id)
