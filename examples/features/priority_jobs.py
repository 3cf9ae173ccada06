"""Priority within a queue: higher first, in arrival order within a priority.

Run it (it starts a burst worker itself):   python examples/features/priority_jobs.py
"""

from __future__ import annotations

from steep import job
from steep.worker import WorkerProcess, parse_queues


@job
def render(page: str) -> None:
    print(f"rendered {page}")


render.enqueue("archive 1")  # priority 0, the default
render.options(priority=-5).enqueue("sitemap")  # below 0: after the ordinary jobs
render.enqueue("archive 2")
render.options(priority=10).enqueue("checkout")  # first, though it came later
render.options(priority=10).enqueue("cart")  # same priority: after "checkout"

# one job at a time, so the order is plain to see
WorkerProcess(parse_queues("default"), 1, burst=True, install_signals=False).run()
