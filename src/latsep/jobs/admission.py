"""Admission to the queues under a cap that holds when many submissions race.

Checking the queues' depth and then enqueueing is two steps: ten API threads (or replicas)
can all read "4 of 5" before any of them enqueues, and ten jobs go in. Here the check and a
*reservation* are one Lua script, which Redis runs atomically: a submission that is admitted
holds a reservation (a member of a sorted set, scored by time) until its job is in a queue,
and every later check counts the reservations as well as the queued jobs. A job counts twice
for the instant between its enqueue and the release of its reservation, which errs on the
side of refusing. A reservation whose API process died before releasing it lapses after
`RESERVATION_SECONDS`.
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

# KEYS[1]: the reservations (sorted set); KEYS[2..]: the queues' lists.
# ARGV: cap, job id, now (s), reservation lifetime (s).
# Returns {1, depth} when admitted (the reservation is made), {0, depth} when full.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
local depth = redis.call('ZCARD', KEYS[1])
for i = 2, #KEYS do
    depth = depth + redis.call('LLEN', KEYS[i])
end
if depth >= tonumber(ARGV[1]) then
    return {0, depth}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4])) * 2)
return {1, depth}
"""


@dataclass(frozen=True)
class Admission:
    admitted: bool
    depth: int  # jobs queued or being queued when the request was decided


class QueueFull(Exception):
    def __init__(self, depth: int) -> None:
        super().__init__(f"the queue is full ({depth} jobs waiting)")
        self.depth = depth


def reservations_key(namespace: str) -> str:
    return f"{namespace}:admission:reservations"


def admit(
    redis: Redis,
    namespace: str,
    queue_names: Sequence[str],
    job_id: str,
    cap: int,
    *,
    now: float | None = None,
) -> Admission:
    """Reserve a place for `job_id` if fewer than `cap` jobs are queued or being queued."""
    keys = [reservations_key(namespace)]
    keys += [Queue.redis_queue_namespace_prefix + name for name in sorted(set(queue_names))]
    stamp = time.time() if now is None else now
    admitted, depth = redis.eval(
        _ADMIT, len(keys), *keys, cap, job_id, repr(stamp), RESERVATION_SECONDS
    )
    return Admission(bool(admitted), int(depth))


def release(redis: Redis, namespace: str, job_id: str) -> None:
    redis.zrem(reservations_key(namespace), job_id)


@contextmanager
def admitted(
    redis: Redis, namespace: str, queue_names: Sequence[str], job_id: str, cap: int
) -> Iterator[Admission]:
    """Hold a reservation while the body stores and enqueues the job; QueueFull if none."""
    decision = admit(redis, namespace, queue_names, job_id, cap)
    if not decision.admitted:
        raise QueueFull(decision.depth)
    try:
        yield decision
    finally:
        release(redis, namespace, job_id)
