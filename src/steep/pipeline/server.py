"""`steep pipeline server`: the CI server in one command.

One process serves the webhook endpoints (`/pipeline/hooks/<forge>/<project>`, by
signature alone) in front of the dashboard with the pipeline's pages (with the
dashboard's own security), and runs two ordinary `steep worker` supervisors beside it:
one for the pipeline's bookkeeping (`pipeline-control`: preparing runs, starting
stages, statuses, notifications, the poller's cron entry) and one for the steps
(`pipeline`), so a full build queue never delays a status. With no Redis URL
configured, they share the embedded Valkey. More build machines run
`steep worker steep.pipeline.jobs -q pipeline`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from steep.connection import get_client
from steep.pipeline import config as pipeline_config
from steep.pipeline import webhooks
from steep.pipeline.jobs import CONTROL, QUEUE
from steep.pipeline.web import extension
from steep.settings import get_settings
from steep.web.serve import CredentialsRequired, build_server

__all__ = ["CredentialsRequired", "serve"]
log = logging.getLogger("steep.pipeline")


def with_webhooks(dashboard: ASGIApp) -> ASGIApp:
    """The webhook endpoints in front of the dashboard (outside its guard)."""
    return Starlette(
        routes=[Mount("/pipeline/hooks", webhooks.create_app()), Mount("/", dashboard)]
    )


def _worker(queues: str, concurrency: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "steep",
        "worker",
        "steep.pipeline.jobs",
        "-q",
        queues,
        "-c",
        str(concurrency),
        "-p",
        "1",
    ]
    return subprocess.Popen(argv)


def serve(host: str, port: int, *, builders: int = 0) -> None:
    config = pipeline_config.load()
    get_client().ping()  # start (or find) the server first, so the workers share it
    for line in webhooks.warn_unprotected():
        print(f"warning: {line}", flush=True)
    server = build_server(host, port, extensions=[extension()], wrap=with_webhooks)
    workers = [
        _worker(CONTROL, 16),
        _worker(QUEUE, builders or os.cpu_count() or 2),
    ]

    def watch(process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        if not server.should_exit:
            log.error("a pipeline worker exited (code %s): stopping the server", code)
            server.should_exit = True

    for process in workers:
        threading.Thread(target=watch, args=(process,), daemon=True).start()
    shown = f"[{host}]" if ":" in host else host
    print(
        f"steep pipeline server on http://{shown}:{port}/ with {len(config.projects)} "
        f"project(s); webhooks at /pipeline/hooks/<github|gitea>/<project>",
        flush=True,
    )
    # uvicorn stops on SIGTERM/SIGINT and then raises the signal again for the handler it
    # found: make that one a no-op, so the workers are stopped below and the exit is clean
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        server.should_exit = True
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = get_settings().shutdown_timeout + 10
        for process in workers:
            try:
                process.wait(deadline)
            except subprocess.TimeoutExpired:
                process.kill()
