"""What the worker imports: `steep worker bakery.worker` creates the app, then the jobs
run in its app context."""

from bakery import create_app
from bakery.jobs import bake

app = create_app()

__all__ = ["app", "bake"]
