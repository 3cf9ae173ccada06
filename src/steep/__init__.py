"""steep: background jobs on Redis/Valkey that never lose work.

from steep import job

@job(queue="default", retries=5, timeout=30)
def send_report(user_id: int) -> str: ...

send_report.enqueue(42)
"""

from steep.context import JobContext, current_job
from steep.errors import (
    Cancelled,
    JobFailed,
    JobTimeout,
    PayloadTooLarge,
    SteepError,
    UnknownJob,
)
from steep.job import Job, JobStatus
from steep.middleware import Middleware
from steep.options import JobOptions
from steep.registry import JobFunction, job
from steep.settings import ConfigError, Settings, configure, get_settings

# The built-in features, after the core they plug into (steep.hooks): importing
# steep.features registers every one of them.
from steep.features.batches import (  # isort: skip
    Batch,
    BatchStatus,
    Signature,
    batch,
    chain,
    chord,
    current_batch,
    group,
)

# The staging toolkit's settings checks ([mail], [data], [parity]) and the built-in
# send_mail job, so every worker runs it without a module of the application.
import steep.mail  # isort: skip
import steep.data.config  # isort: skip
import steep.data.jobs  # isort: skip  # noqa: F401

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
    "PayloadTooLarge",
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
