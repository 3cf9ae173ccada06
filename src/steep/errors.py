"""Exceptions steep raises to its callers."""

from __future__ import annotations


class SteepError(Exception):
    """Base class of steep's own errors."""


class JobTimeout(SteepError):
    """A job ran longer than its `timeout`; it counts as a failed attempt."""


class Cancelled(SteepError):
    """A running job was cancelled by an operator; it goes to the dead set."""


class JobFailed(SteepError):
    """Raised by `Job.result()` when the job died: carries the job's last error.

    `reason` names what stopped a job that steep itself gave up on (`UnknownJob`,
    `BadPayload`, `UnencodableResult`, `Expired`, ...); it is "" when the job's own code raised.
    """

    def __init__(self, job_id: str, error: dict[str, str]) -> None:
        self.job_id = job_id
        self.type = error.get("type", "")
        self.message = error.get("message", "")
        self.traceback = error.get("traceback", "")
        self.reason = error.get("reason", "")
        super().__init__(f"job {job_id} failed: {self.type}: {self.message}")


class PayloadTooLarge(SteepError, ValueError):
    """A job's encoded envelope is larger than the `max_payload` setting allows."""


class UnknownJob(SteepError):
    """No job function is registered or importable under a job's name."""
