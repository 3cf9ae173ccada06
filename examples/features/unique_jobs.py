"""Unique jobs: a second enqueue of an equal job returns the first one.

Run it (it starts a burst worker itself):   python examples/features/unique_jobs.py
"""

from __future__ import annotations

from steep import job
from steep.worker import WorkerProcess, parse_queues


@job(unique=True, result_ttl=60)
def refresh_feed(feed_id: int) -> str:
    return f"feed {feed_id} refreshed"


# equal when the account is equal, whatever the reason given
@job(unique_key=lambda account_id, reason: f"account:{account_id}", unique_for=600)
def sync_account(account_id: int, reason: str) -> None:
    print(f"syncing account {account_id} ({reason})")


first = refresh_feed.enqueue(7)
second = refresh_feed.enqueue(7)  # still waiting: the same job comes back
print(f"second is a duplicate: {second.duplicate}, same job: {second.id == first.id}")
print(f"another feed is a new job: {not refresh_feed.enqueue(8).duplicate}")

sync_account.enqueue(1, "signup")
print(f"same account, other reason: duplicate={sync_account.enqueue(1, 'payment').duplicate}")

WorkerProcess(parse_queues("default"), 2, burst=True, install_signals=False).run()
print(first.result(timeout=5))
# finished: the lock is gone, so the next enqueue adds a new job
print(f"after it ran: duplicate={refresh_feed.enqueue(7).duplicate}")
