"""The contract between the API and the workers, which meet only through Redis.

Job records and options (pydantic, JSON in Redis), the Redis key layout (`JobStore`), the
rq queues and the dotted name of the job function, public job states, worker registrations,
and the reaper of abandoned jobs. `latsep.service` and `latsep.worker` both import this
package and never each other; it imports neither of them, nor torch (the API image has none).
"""

from latsep.jobs.capabilities import BundleInfo, WorkerInfo, first_serving
from latsep.jobs.options import (
    GLOBAL_DEFAULTS,
    SEED_MAX,
    TUNABLE,
    Consistency,
    ResolvedOptions,
    Search,
    SeparationOptions,
)
from latsep.jobs.queues import (
    JOB_FUNCTION,
    SERIALIZER,
    enqueue_separation,
    fetch_job,
    latsep_queues,
    make_queue,
    queue_depth,
    queue_name,
)
from latsep.jobs.reaper import MAX_ABANDON_RETRIES, reap_abandoned
from latsep.jobs.records import JobRequest, JobResult, OracleResult
from latsep.jobs.status import JobState, PublicStatus, job_state
from latsep.jobs.store import DURATION_BUCKETS, JobStore, connect

__all__ = [
    "DURATION_BUCKETS",
    "GLOBAL_DEFAULTS",
    "JOB_FUNCTION",
    "MAX_ABANDON_RETRIES",
    "SEED_MAX",
    "SERIALIZER",
    "TUNABLE",
    "BundleInfo",
    "Consistency",
    "JobRequest",
    "JobResult",
    "JobState",
    "JobStore",
    "OracleResult",
    "PublicStatus",
    "ResolvedOptions",
    "Search",
    "SeparationOptions",
    "WorkerInfo",
    "connect",
    "enqueue_separation",
    "fetch_job",
    "first_serving",
    "job_state",
    "latsep_queues",
    "make_queue",
    "queue_depth",
    "queue_name",
    "reap_abandoned",
]
