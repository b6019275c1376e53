"""Prometheus metrics, read from Redis at scrape time so every API replica reports the same.

Workers count outcomes and job durations into Redis hashes (`JobStore.record_job_outcome`);
queue depth and jobs per state come from rq's queues and registries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from rq.registry import (
    CanceledJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    StartedJobRegistry,
)

from latsep.jobs import DURATION_BUCKETS, SERIALIZER, JobStore, latsep_queues

log = logging.getLogger(__name__)

_REGISTRIES = {
    "started": StartedJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}


class RedisCollector(Collector):
    def __init__(self, store: JobStore, queue_prefix: str) -> None:
        self.store = store
        self.queue_prefix = queue_prefix

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except RedisError as exc:  # a scrape must not 500 because Redis blinked
            log.warning("metrics: Redis error: %s", exc)
            up = GaugeMetricFamily("latsep_redis_up", "1 when Redis answered the scrape")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterator[Metric]:
        redis = self.store.redis
        queues = latsep_queues(redis, self.queue_prefix)
        depth = GaugeMetricFamily("latsep_queue_depth", "Jobs waiting per queue", labels=["queue"])
        states = GaugeMetricFamily(
            "latsep_jobs",
            "Jobs by state (finished/failed/canceled: within their TTL)",
            labels=["state"],
        )
        totals: dict[str, float] = dict.fromkeys(("queued", *_REGISTRIES), 0.0)
        for q in queues:
            depth.add_metric([q.name], q.count)
            totals["queued"] += q.count
            for state, registry_class in _REGISTRIES.items():
                registry = registry_class(q.name, connection=redis, serializer=SERIALIZER)
                totals[state] += registry.count
        for state, count in totals.items():
            states.add_metric([state], count)
        yield depth
        yield states

        workers = GaugeMetricFamily("latsep_workers", "Workers with a fresh heartbeat")
        workers.add_metric([], len(self.store.live_workers()))
        yield workers

        outcomes = CounterMetricFamily(
            "latsep_jobs_completed",
            "Jobs that ended, by method and end state",
            labels=["method", "status"],
        )
        for (method, status), count in sorted(self.store.job_outcomes().items()):
            outcomes.add_metric([method, status], count)
        yield outcomes

        durations = HistogramMetricFamily(
            "latsep_job_duration_seconds", "Wall time of jobs in the worker", labels=["method"]
        )
        for method, hist in sorted(self.store.duration_histograms().items()):
            count = hist.get("count", 0.0)
            buckets = [(str(b), hist.get(f"le={b}", 0.0)) for b in DURATION_BUCKETS]
            buckets.append(("+Inf", count))
            durations.add_metric([method], buckets, sum_value=hist.get("sum", 0.0))
        yield durations

        up = GaugeMetricFamily("latsep_redis_up", "1 when Redis answered the scrape")
        up.add_metric([], 1)
        yield up


def build_registry(store: JobStore, queue_prefix: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(store, queue_prefix))
    return registry
