"""Per-system adapters for benchmarks/run.py (see base.py for the interface)."""

ADAPTERS = ("steep", "rq", "celery", "dramatiq", "arq", "huey", "saq", "taskiq")
