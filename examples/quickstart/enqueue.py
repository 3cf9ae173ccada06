"""Enqueue the quick-start jobs and wait for their results.

Run a worker first, from this directory:   steep worker app.jobs -q mail,default
then:                                      python enqueue.py
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.jobs import Invoice, bill, call_webhook, send_mail, send_report

report = send_report.enqueue(42)
mail = send_mail.enqueue("ada@example.com", "Your report")
invoice = bill.enqueue(Invoice("INV-7", 12_50, datetime(2026, 12, 31, tzinfo=UTC)))
hook = call_webhook.enqueue("https://hooks.example/ping")
later = send_report.enqueue_in(timedelta(seconds=1), 43)
many = send_report.enqueue_many([(n,) for n in range(100, 110)])

for handle in (report, mail, invoice, hook, later, *many[:2]):
    print(handle.result(timeout=15))
print(f"scheduled job status now: {later.status}")
print(f"enqueued at {datetime.now(UTC):%H:%M:%S}: {len(many)} reports in one round trip")
