"""What a worker process serves, and what it is called: queue specs and worker ids."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    weight: int = 0  # 0 everywhere = strict order


def parse_queues(text: str | Sequence[str]) -> list[QueueSpec]:
    """`critical,default,low` (strict) or `critical:5,default:2` (weighted)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    specs: list[QueueSpec] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, _, weight = item.partition(":")
        if weight and not weight.isdigit():
            raise ValueError(f"queue weight must be a whole number: {item!r}")
        specs.append(QueueSpec(name, int(weight or 0)))
    if not specs:
        raise ValueError("no queues given")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"a queue is listed twice: {','.join(names)}")
    return specs


def host_label() -> str:
    return socket.gethostname().split(".")[0].replace(" ", "-") or "host"


def new_worker_id() -> str:
    """Unique per process: host, pid and a random part (pids are reused)."""
    return f"{host_label()}-{os.getpid()}-{os.urandom(3).hex()}"
