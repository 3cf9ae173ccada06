"""The operations layer: read and steer queues, jobs, workers and stats.

The CLI, the dashboard and your own scripts all go through here, never to
Redis directly. See docs/operations.md (and docs/batches.md for batches).

    from steep import ops
    ops.queues()                                   # sizes, latency, paused
    page = ops.list_jobs("default", "dead", filter=ops.Filter(error="Timeout"))
    ops.retry_jobs("default", [j.id for j in page.jobs])
"""

from steep.ops.batches import BatchStatus, batch_results, batches, get_batch, locate_jobs
from steep.ops.jobs import (
    STATES,
    Filter,
    JobInfo,
    OpsError,
    Page,
    cancel_job,
    delete_all,
    delete_jobs,
    edit_job,
    get_job,
    iter_jobs,
    list_jobs,
    move_job,
    retry_all,
    retry_jobs,
    run_now,
)
from steep.ops.queues import QueueInfo, clear, pause, queue, queue_names, queues, resume
from steep.ops.stats import JobMetrics, history, job_metrics, percentile, status, totals
from steep.ops.workers import WorkerInfo, quiet, running_jobs, stop, workers

__all__ = [
    "STATES",
    "BatchStatus",
    "Filter",
    "JobInfo",
    "JobMetrics",
    "OpsError",
    "Page",
    "QueueInfo",
    "WorkerInfo",
    "batch_results",
    "batches",
    "cancel_job",
    "clear",
    "delete_all",
    "delete_jobs",
    "edit_job",
    "get_batch",
    "get_job",
    "history",
    "iter_jobs",
    "job_metrics",
    "list_jobs",
    "locate_jobs",
    "move_job",
    "pause",
    "percentile",
    "queue",
    "queue_names",
    "queues",
    "quiet",
    "resume",
    "retry_all",
    "retry_jobs",
    "run_now",
    "running_jobs",
    "status",
    "stop",
    "totals",
    "workers",
]
