"""Every live fragment of every page renders complete in the page's first response, so a
reader without JavaScript (or before the first live update) sees what is there. Plain
HTTP requests to a real dashboard server, no browser."""

from __future__ import annotations

import re
import urllib.request

from steep import ops
from tests import jobs
from tests.conftest import wait_for

# the pages of the dashboard's menu that carry a live (htmx-polled) fragment
PAGES = ("/", "/workers")
_LIVE = re.compile(r'<div[^>]*\bid="(?P<id>[\w-]+)"[^>]*\bhx-get="(?P<url>[^"]+)"')


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def shown(html: str) -> set[str]:
    """What a fragment shows that must not wait for JavaScript: job links and counters."""
    links = set(re.findall(r'href="([^"]*/jobs/[^"]+)"', html))
    counters = set(re.findall(r'<span class="n">([^<]*)</span><span class="l">([^<]*)<', html))
    return links | {f"{label}={n}" for n, label in counters}


def test_live_fragments_are_complete_in_the_first_response(dashboard, client, run_worker):
    running = jobs.sleepy.enqueue(60)  # running until the test cancels it, however slow the pages
    for i in range(3):
        jobs.add.options(queue="elsewhere").enqueue(i, i)  # queued, and nobody serves it
    worker = run_worker(burst=False)
    wait_for(lambda: running.status.value == "running", message="the job to start")
    wait_for(lambda: any(w.running for w in ops.workers()), message="a heartbeat with the job")
    seen = 0
    for page in PAGES:
        html = get(dashboard + page)
        for live in _LIVE.finditer(html):
            fragment = get(dashboard + live["url"])
            missing = shown(fragment) - shown(html)
            assert not missing, f"{page} renders #{live['id']} without {missing}"
            seen += 1
    assert seen == len(PAGES)  # each page carries its live fragment
    workers_page = get(dashboard + "/workers")
    assert running.id in workers_page and "Nothing is running right now" not in workers_page
    overview = get(dashboard + "/")
    assert "queued=3" in shown(overview) and "running=1" in shown(overview)
    ops.cancel_job("default", running.id)
    wait_for(lambda: not worker.running, message="the cancelled job to end")
    worker.threadsafe(worker.request_stop, "test over")
