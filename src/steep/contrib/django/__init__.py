"""Django integration: settings from `settings.STEEP`, enqueue after commit, worker command.

    INSTALLED_APPS = [..., "steep.contrib.django"]
    STEEP = {"redis_url": env("REDIS_URL"), "queues": ["default", "mail"]}

    from steep.contrib.django import enqueue_on_commit
    with transaction.atomic():
        order = Order.objects.create(...)
        enqueue_on_commit(confirm_order, order.id)   # pushed only once the row is committed

    python manage.py steep_worker           # every installed app's jobs.py
    python manage.py steep status           # any steep command, with the project's settings

See docs/integrations.md.
"""

from steep.contrib._optional import require

require("django", extra="django", feature="steep.contrib.django")

from steep.contrib.django.transactions import enqueue_on_commit, on_commit  # noqa: E402

__all__ = ["enqueue_on_commit", "on_commit"]
