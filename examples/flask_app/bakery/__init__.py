"""A small Flask app that bakes loaves in the background."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request

from steep import Job
from steep.contrib.flask import Steep, mount_dashboard, send_mail

steep_ext = Steep()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        BAKERY_NAME="Corner Bakery",
        MAIL_DEFAULT_SENDER="hello@bakery.example.com",
        STEEP_QUEUES=["default", "ovens"],  # any steep setting, as STEEP_<NAME>
        DASHBOARD_PASSWORD=os.environ.get("STEEP_WEB_PASSWORD"),
    )
    app.config.update(config or {})
    steep_ext.init_app(app)
    if app.config["DASHBOARD_PASSWORD"]:
        mount_dashboard(app, "/steep", password=app.config["DASHBOARD_PASSWORD"])

    from bakery.jobs import bake

    @app.post("/bake")
    def order_loaf() -> Any:
        loaf = (request.get_json(silent=True) or {}).get("loaf", "sourdough")
        job = bake.enqueue(loaf)
        return jsonify(job=job.id), 202

    @app.post("/subscribe")
    def subscribe() -> Any:
        form = request.get_json(silent=True) or {}
        # enqueued as steep's send_mail job; the worker sends it (intercepted on staging)
        job = send_mail(
            form["email"],
            "Welcome",
            template="mail/welcome",
            name=form.get("name", "friend"),
            bakery=app.config["BAKERY_NAME"],
        )
        return jsonify(job=job.id), 202

    @app.get("/jobs/<job_id>")
    def job_status(job_id: str) -> Any:
        job = Job(job_id, "default", bake.name)
        status = job.status
        result = job.result(timeout=1) if status == "succeeded" else None
        return jsonify(status=status, result=result)

    return app
