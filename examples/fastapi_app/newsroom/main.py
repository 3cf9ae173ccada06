"""A FastAPI app that publishes articles in the background, with steep's dashboard at /steep.

STEEP_WEB_PASSWORD=secret uvicorn newsroom.main:app
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

from newsroom.jobs import publish
from steep import Job, JobFailed
from steep.contrib.fastapi import mount_dashboard, steep_lifespan

app = FastAPI(lifespan=steep_lifespan(queues=["default"]))
# credentials from STEEP_WEB_PASSWORD (user `steep`) or STEEP_WEB_TOKEN; without any,
# only requests from this machine are served
mount_dashboard(app, "/steep")


@app.post("/articles/{slug}/publish", status_code=202)
async def publish_article(slug: str) -> dict[str, str]:
    job = await publish.aenqueue(slug)
    return {"job": job.id}


@app.get("/jobs/{job_id}")
async def job_result(job_id: str, wait: float = 0.0) -> dict[str, Any]:
    job = Job(job_id, "default", publish.name)
    try:
        return {"result": await job.aresult(timeout=wait or 0.01)}
    except TimeoutError:
        return {"result": None}
    except JobFailed as exc:
        raise HTTPException(500, str(exc)) from None
