"""Enqueue rate-limited jobs and see the limits hold.

Run a worker first, from this directory:   steep worker app.jobs -p 2 -c 10
then:                                      python enqueue.py
"""

from __future__ import annotations

from app.jobs import export_report, fetch_price, refresh_token, sync_catalogue

from steep import ops
from steep.connection import get_client

r = get_client()
r.delete("example:calls", "example:exporting", "example:most")

prices = fetch_price.enqueue_many([(f"sku-{n}",) for n in range(25)])
reports = export_report.enqueue_many([(n,) for n in range(9)])
pages = sync_catalogue.enqueue_many([(n,) for n in range(3)])
token = refresh_token.enqueue()

for handle in (*prices, *reports, *pages, token):
    handle.result(timeout=60)

# each call is timed as its job starts, a moment after the limiter admitted it
calls = sorted(float(t) for t in r.lrange("example:calls", 0, -1))
busiest = max(sum(1 for t in calls if start <= t < start + 0.8) for start in calls)
print(f"{len(calls)} partner calls, at most {busiest} within 0.8 s")
print(f"{len(reports)} exports, at most {int(r.get('example:most'))} at once")
print(f"{token.result()}; catalogue: {pages[0].result()}")
for info in ops.limits():
    print(f"{info.name}: {info.kind}, limit {info.limit}, deferred {info.deferred > 0}")
