"""steep's pytest plugin (loaded by pytest through the `pytest11` entry point).

Fixtures:
- `steep_server` (session): the URL of a private Valkey server started for the session from
  the pip-installed binary (in a temporary directory, removed afterwards), or of the server
  `STEEP_TEST_REDIS_URL` names;
- `steep` (each test): steep configured for that server, its namespace flushed before the
  test; `steep.drain()` runs the queued jobs in the test's process;
- `steep_inline`, `steep_fake` (each test): inline or fake mode for the test, no server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from steep import client as steep_client
from steep import connection
from steep.settings import Settings, configure, get_settings
from steep.testing.drain import drain, flush_namespace
from steep.testing.modes import Fake, Inline


class SteepFixture:
    """What the `steep` fixture gives a test: the server's client and `drain()`."""

    def __init__(self, url: str, settings: Settings, client: redis.Redis) -> None:
        self.url = url
        self.settings = settings
        self.client = client

    def drain(self, queues: list[str] | None = None, **options: Any) -> int:
        """Run every queued job in this process until the queues are empty (steep.testing.drain)."""
        return drain(queues, **options)


@pytest.fixture(scope="session")
def steep_server() -> Iterator[str]:
    external = os.environ.get("STEEP_TEST_REDIS_URL")
    if external:
        yield external
        return
    from steep import server as embedded

    # /tmp, not a deep pytest path: the socket path must stay short
    data = Path(tempfile.mkdtemp(prefix="steep-pytest-", dir="/tmp"))
    settings = Settings(data_dir=data)
    try:
        yield f"unix://{embedded.ensure_server(settings)}"
    finally:
        embedded.stop_server(settings)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def steep(steep_server: str) -> Iterator[SteepFixture]:
    previous = get_settings()
    connection.reset_clients()
    settings = configure(redis_url=steep_server, schedule_poll_interval=0.05)
    client = connection.make_client(settings)
    flush_namespace(client, settings.namespace)
    steep_client._known_queues.clear()
    try:
        yield SteepFixture(steep_server, settings, client)
    finally:
        client.close()
        connection.reset_clients()
        configure(previous)


def _one_mode(request: pytest.FixtureRequest) -> None:
    if {"steep_fake", "steep_inline"} <= set(request.fixturenames):
        raise pytest.UsageError(
            f"{request.node.name} uses steep_fake and steep_inline: a test runs in one mode"
        )


@pytest.fixture
def steep_inline(request: pytest.FixtureRequest) -> Iterator[Inline]:
    _one_mode(request)
    with Inline() as mode:
        yield mode


@pytest.fixture
def steep_fake(request: pytest.FixtureRequest) -> Iterator[Fake]:
    _one_mode(request)
    with Fake() as mode:
        yield mode
