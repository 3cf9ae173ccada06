"""The newsroom's jobs (async: they run on the worker's event loop)."""

from __future__ import annotations

import asyncio

from steep import job


@job(result_ttl=300)
async def publish(slug: str) -> str:
    await asyncio.sleep(0)  # stands in for calls to a CDN, a search index, a mailing list
    return f"published {slug}"
