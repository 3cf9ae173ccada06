"""Testing code that enqueues jobs: inline mode, fake mode, and draining a real server.

- `inline()`: every job runs at once, in the calling process, when it is enqueued (Celery's
  `task_always_eager`, `Sidekiq::Testing.inline!`); its handle holds the outcome.
- `fake()`: nothing runs and nothing reaches Redis; the jobs are recorded, and
  `assert_enqueued` / `assert_not_enqueued` / `jobs()` look at them (`Sidekiq::Testing.fake!`);
  `drain()` then runs them inline.
- `drain()`: run every job queued on the configured server in this process, until nothing is
  queued, scheduled or running (Dramatiq's `StubBroker` with `worker.join()`).
- The pytest plugin (`steep.testing.pytest_plugin`, loaded by pytest when steep is installed):
  `steep_server` (a private server per session), `steep` (a flushed namespace per test, with
  `.drain()`), `steep_inline` and `steep_fake`. See docs/testing.md.
"""

from steep.testing.drain import drain, flush_namespace
from steep.testing.modes import EnqueuedJob, Fake, Inline, fake, inline

__all__ = ["EnqueuedJob", "Fake", "Inline", "drain", "fake", "flush_namespace", "inline"]
