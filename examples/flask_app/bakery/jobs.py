"""The bakery's jobs: they run inside the Flask app context."""

from __future__ import annotations

from flask import current_app

from steep import current_job, job


@job(result_ttl=300)
def bake(loaf: str) -> str:
    # current_app works because steep.contrib.flask pushes the app context
    ctx = current_job()
    return f"{current_app.config['BAKERY_NAME']} baked a {loaf} loaf (job {ctx and ctx.id})"
