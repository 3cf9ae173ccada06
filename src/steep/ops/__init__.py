"""The operations layer: read and steer queues, jobs, workers and stats.

The CLI, the dashboard and your own scripts all go through here, never to
Redis directly. See docs/operations.md (and docs/batches.md for batches).

    from steep import ops
    ops.queues()                                   # sizes, latency, paused
    page = ops.list_jobs("default", "dead", filter=ops.Filter(error="Timeout"))
    ops.retry_jobs("default", [j.id for j in page.jobs])
    ops.cron_entries()                             # periodic jobs: next and last run
    ops.limits()                                   # rate limiters and their use now
"""

from steep.ops._util import OpsError
from steep.ops.batches import BatchStatus, batch_results, batches, get_batch
from steep.ops.cron import (
    CronInfo,
    cron_entries,
    cron_entry,
    forget_cron,
    pause_cron,
    resume_cron,
    trigger_cron,
)
from steep.ops.jobs.actions import (
    cancel_job,
    delete_all,
    delete_jobs,
    edit_job,
    interrupt_job,
    move_job,
    resume_job,
    retry_all,
    retry_jobs,
    run_now,
)
from steep.ops.jobs.info import STATES, JobInfo, get_job, locate_jobs
from steep.ops.jobs.listing import Filter, Page, iter_jobs, list_jobs
from steep.ops.limits import LimitInfo, limits
from steep.ops.queues import QueueInfo, clear, pause, queue, queue_names, queues, resume
from steep.ops.stats import JobMetrics, history, job_metrics, percentile, status, totals
from steep.ops.workers import WorkerInfo, quiet, running_jobs, stop, workers

__all__ = [
    "STATES",
    "BatchStatus",
    "CronInfo",
    "Filter",
    "JobInfo",
    "JobMetrics",
    "LimitInfo",
    "OpsError",
    "Page",
    "QueueInfo",
    "WorkerInfo",
    "batch_results",
    "batches",
    "cancel_job",
    "clear",
    "cron_entries",
    "cron_entry",
    "delete_all",
    "delete_jobs",
    "edit_job",
    "forget_cron",
    "get_batch",
    "get_job",
    "history",
    "interrupt_job",
    "iter_jobs",
    "job_metrics",
    "limits",
    "list_jobs",
    "locate_jobs",
    "move_job",
    "pause",
    "pause_cron",
    "percentile",
    "queue",
    "queue_names",
    "queues",
    "quiet",
    "resume",
    "resume_cron",
    "resume_job",
    "retry_all",
    "retry_jobs",
    "run_now",
    "running_jobs",
    "status",
    "stop",
    "totals",
    "trigger_cron",
    "workers",
]
