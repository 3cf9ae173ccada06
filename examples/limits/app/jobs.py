"""Rate-limited jobs (docs/limits.md walks through them)."""

from __future__ import annotations

import time

from steep import job
from steep.connection import get_client
from steep.features.limits import Concurrency, Window

# Declared once, at import time, in code both the enqueuing side and the workers import.
partner_api = Window("partner-api", 10, per=1.0)  # their terms: at most 10 calls a second
exports = Concurrency("exports", 3, lease=30.0)  # the export service takes 3 at a time


@job(limits=[partner_api], result_ttl=300)
def fetch_price(sku: str) -> str:
    # a real job would call the partner's API here; this one notes when it did
    get_client().rpush("example:calls", repr(time.time()))
    return f"price of {sku}"


@job(limits=[exports], timeout=600, result_ttl=300)
def export_report(report_id: int) -> str:
    r = get_client()
    running = r.incr("example:exporting")
    r.set("example:most", max(running, int(r.get("example:most") or 0)))
    try:
        time.sleep(0.3)  # the export itself
    finally:
        r.decr("example:exporting")
    return f"report {report_id} exported"


@job(limits=[partner_api, exports], result_ttl=300)
def sync_catalogue(page: int) -> str:
    """Both limits: it runs only when both admit it."""
    return f"page {page} synced"


@job(result_ttl=300)
def refresh_token() -> str:
    # Inside any code, a limiter also works as a block: waits up to `timeout` seconds
    # for a slot (steep.features.limits.LimitTimeout after that).
    with partner_api.acquire(timeout=5):
        return "token refreshed"
