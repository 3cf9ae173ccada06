"""An application module that starts a thread when imported (as some SDKs do)."""

from __future__ import annotations

import threading

from steep import job

_stop = threading.Event()
threading.Thread(target=_stop.wait, name="sdk-flusher", daemon=True).start()


@job
def hello(name: str) -> str:
    return f"hello {name}"
