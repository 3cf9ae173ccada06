"""Rate limiters: what each one allows and how much of it is used right now.

Limiters are read from the definitions the processes using them record in Redis,
so this works without importing the app. One pipeline for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import redis

from steep.connection import get_keys
from steep.job import decode
from steep.ops._util import client_or_default, text


@dataclass(frozen=True, slots=True)
class LimitInfo:
    name: str
    kind: str  # "concurrency" or "window"
    limit: int
    period: float  # the lease (concurrency) or the window (window), in seconds
    in_use: int  # concurrency: live leases now; window: admissions in the last period
    admitted: int  # since the limiter was first used
    deferred: int  # times a job (or an acquire) was refused and sent back to wait
    holders: list[str]  # concurrency: the lease ids (job ids) holding a slot now


def limits(client: redis.Redis | None = None) -> list[LimitInfo]:
    """Every limiter a process has used, sorted by name."""
    client = client_or_default(client)
    keys = get_keys()
    raw = client.hgetall(keys.limits)
    definitions: list[tuple[str, dict]] = []
    for name, payload in sorted(raw.items()):  # type: ignore[union-attr]
        try:
            definition = decode(payload)
        except msgspec.DecodeError:
            continue  # a malformed record: nothing to show
        if isinstance(definition, dict):
            definitions.append((text(name), definition))
    if not definitions:
        return []
    seconds, micros = client.time()  # type: ignore[misc]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    pipe = client.pipeline(transaction=False)
    for name, definition in definitions:
        lk = keys.limit(name)
        if definition.get("kind") == "window":
            period_ms = int(float(definition.get("per", 0)) * 1000)
            pipe.zcount(lk.log, f"({now_ms - period_ms}", "+inf")
        else:
            # leases not yet expired (the holders of a dead worker until their expiry)
            pipe.zrangebyscore(lk.leases, f"({now_ms}", "+inf")
        pipe.hmget(lk.stats, "admitted", "refused")
    replies = pipe.execute()
    out = []
    for i, (name, definition) in enumerate(definitions):
        used, (admitted, refused) = replies[i * 2 : i * 2 + 2]
        holders = [text(h) for h in used] if isinstance(used, list) else []
        kind = str(definition.get("kind", "?"))
        period = definition.get("per" if kind == "window" else "lease", 0)
        out.append(
            LimitInfo(
                name=name,
                kind=kind,
                limit=int(definition.get("limit", 0)),
                period=float(period),
                in_use=len(holders) if isinstance(used, list) else int(used),
                admitted=int(admitted or 0),
                deferred=int(refused or 0),
                holders=holders,
            )
        )
    return out
