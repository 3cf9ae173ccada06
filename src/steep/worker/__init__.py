"""Worker side: the supervisor, worker processes, the executor and the heartbeat.

It knows no feature: the features take part in a run through `steep.hooks`, and
register their hooks when `steep` is imported (steep.features).
"""

from steep.worker.platforms import PlatformNotSupported, check_worker_platform
from steep.worker.process import QueueSpec, WorkerProcess, parse_queues
from steep.worker.supervisor import Supervisor

Worker = WorkerProcess

__all__ = [
    "PlatformNotSupported",
    "QueueSpec",
    "Supervisor",
    "Worker",
    "WorkerProcess",
    "check_worker_platform",
    "parse_queues",
]
