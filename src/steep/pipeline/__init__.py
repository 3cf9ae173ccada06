"""steep's delivery pipeline: every push and pull request of a project tested as steep
jobs, the result reported to the forge, the logs streamed, the history kept.

    steep pipeline server               # webhooks, the dashboard, a worker, the poller
    steep pipeline run shop --ref main  # a run by hand
    steep pipeline runs shop --json

The model (docs/pipeline.md): a project (server side: a git remote, a forge, the names
of its secrets) has runs; a run (one commit or pull request, one trigger, one verdict)
has stages in order; a stage has steps that run in parallel, each a steep job on the
`pipeline` queue. The steps come from the `[pipeline]` table of the app's steep.toml at
the commit being built. The pipeline uses steep as any application does: jobs, batches,
cron and the Redis client.
"""

from steep.pipeline.config import PipelineConfig, Project, load
from steep.pipeline.definition import DefinitionError, Plan, Step, parse
from steep.pipeline.records import RUN_STATES, Run, StepRecord
from steep.pipeline.store import get_run, list_runs
from steep.pipeline.trigger import RunRefused, cancel_run, rerun, start_run

__all__ = [
    "RUN_STATES",
    "DefinitionError",
    "PipelineConfig",
    "Plan",
    "Project",
    "Run",
    "RunRefused",
    "Step",
    "StepRecord",
    "cancel_run",
    "get_run",
    "list_runs",
    "load",
    "parse",
    "rerun",
    "start_run",
]
