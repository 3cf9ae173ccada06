"""Helpers shared by the operations modules."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from steep.connection import get_client


def client_or_default(client: redis.Redis | None) -> redis.Redis:
    return client if client is not None else get_client()


def text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def utc_minute(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d%H%M")


def chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
