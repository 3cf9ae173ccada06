"""What the operations modules share: the error an operator action raises, the
default client, and small decoding, time and batching helpers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import redis

from steep.connection import get_client


class OpsError(Exception):
    """An operator action that cannot be done; the message says why."""


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


def chunks(ids: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    batch: list[str] = []
    for job_id in ids:
        batch.append(job_id)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
