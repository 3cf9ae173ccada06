"""A job module that configures steep in code, at import, the ways apps do: a STEEP_*
variable set in os.environ and a `configure()` call (`steep worker` must read its settings
after importing it). Imported only by worker subprocesses: it changes the process's settings."""

import os

import steep

os.environ["STEEP_LOG_FORMAT"] = "json"
steep.configure(queues=("from-module", "default"), concurrency=3)


@steep.job(queue="from-module", result_ttl=60)
def configured_in_code(x: int) -> int:
    return x * 2
