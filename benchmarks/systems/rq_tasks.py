"""RQ jobs (RQ imports functions by dotted name: systems.rq_tasks.<kind>)."""

from systems.bodies import io_sync as io
from systems.bodies import lat, noop

__all__ = ["io", "lat", "noop"]
