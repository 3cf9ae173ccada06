"""steep: background jobs on Redis/Valkey that never lose work.

from steep import job

@job(queue="default", retries=5, timeout=30)
def send_report(user_id: int) -> str: ...

send_report.enqueue(42)
"""

from steep.context import JobContext, current_job
from steep.errors import Cancelled, JobFailed, JobTimeout, SteepError, UnknownJob
from steep.features.batches.batch import Batch, batch, current_batch
from steep.features.batches.records import BatchStatus
from steep.features.batches.workflow import Signature, chain, chord, group
from steep.job import Job, JobStatus
from steep.middleware import Middleware
from steep.registry import JobFunction, JobOptions, job
from steep.settings import ConfigError, Settings, configure, get_settings

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "BatchStatus",
    "Cancelled",
    "ConfigError",
    "Job",
    "JobContext",
    "JobFailed",
    "JobFunction",
    "JobOptions",
    "JobStatus",
    "JobTimeout",
    "Middleware",
    "Settings",
    "Signature",
    "SteepError",
    "UnknownJob",
    "__version__",
    "batch",
    "chain",
    "chord",
    "configure",
    "current_batch",
    "current_job",
    "get_settings",
    "group",
    "job",
]
