"""Jobs in any state, for operators: the record and reading one job (info), listing
with cursors and filters (listing), and the actions that change jobs (actions)."""

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

__all__ = [
    "STATES",
    "Filter",
    "JobInfo",
    "Page",
    "cancel_job",
    "delete_all",
    "delete_jobs",
    "edit_job",
    "get_job",
    "interrupt_job",
    "iter_jobs",
    "list_jobs",
    "locate_jobs",
    "move_job",
    "resume_job",
    "retry_all",
    "retry_jobs",
    "run_now",
]
