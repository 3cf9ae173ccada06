"""Worker side: the supervisor, worker processes, the executor and the heartbeat."""

import steep.features.batches.hook  # noqa: F401  (registers the batch hook)

# features whose worker hooks register on import (steep.hooks)
from steep.features import expiry, unique  # noqa: F401
from steep.worker.process import QueueSpec, WorkerProcess, parse_queues
from steep.worker.supervisor import Supervisor

Worker = WorkerProcess

__all__ = ["QueueSpec", "Supervisor", "Worker", "WorkerProcess", "parse_queues"]
