"""The Django app: applies `settings.STEEP` when Django starts, and looks after DB connections."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

import steep
from steep.settings import ConfigError, Settings


class SteepConfig(AppConfig):
    name = "steep.contrib.django"
    label = "steep"
    verbose_name = "steep"

    def ready(self) -> None:
        apply_settings()
        steep.middleware.add(DatabaseConnections())


def apply_settings() -> Settings:
    """Configure steep from `settings.STEEP` (a dict of steep settings, on top of steep.toml
    and STEEP_* variables)."""
    values: Any = getattr(django_settings, "STEEP", None) or {}
    if not isinstance(values, Mapping):
        raise ImproperlyConfigured(
            f"settings.STEEP must be a dict of steep settings, got {type(values).__name__}"
        )
    try:
        return steep.configure(**values)
    except (ConfigError, TypeError) as exc:
        raise ImproperlyConfigured(f"settings.STEEP: {exc}") from None


def job_modules() -> list[str]:
    """`settings.STEEP_JOB_MODULES`, or the `jobs` module of every installed app that has one."""
    named = getattr(django_settings, "STEEP_JOB_MODULES", None)
    if named is not None:
        return list(named)
    return [
        f"{config.name}.jobs"
        for config in apps.get_app_configs()
        if importlib.util.find_spec(f"{config.name}.jobs") is not None
    ]


class DatabaseConnections(steep.Middleware):
    """Closes broken and expired database connections around each job.

    Django does this around each request (request_started/finished); a worker has
    no requests, so without it a job thread would keep a connection past
    CONN_MAX_AGE, or reuse one the database server has dropped.
    """

    @contextlib.contextmanager
    def execute(self, job: Any) -> Iterator[None]:
        if _in_event_loop():  # an async job: the ORM runs in its own threads there
            yield
            return
        close_old_connections()
        try:
            yield
        finally:
            close_old_connections()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
