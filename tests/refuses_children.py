"""Imports fine in the supervisor, fails in every spawned worker process: a crash loop
(tests/test_restarts.py)."""

import sys

_main = sys.modules.get("__main__")
if getattr(getattr(_main, "__spec__", None), "name", None) == "steep.worker.child":
    raise RuntimeError("this module refuses to load in a worker process")

from tests.jobs import add  # noqa: E402, F401  (the supervisor has a job to serve)
