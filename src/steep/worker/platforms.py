"""Where workers run: Linux and macOS. The client runs everywhere.

A worker relies on POSIX signals (SIGTERM for the graceful stop, SIGTSTP to quiet it, both
handled on its event loop with `loop.add_signal_handler`), on `fork` and on sessions, none of
which Windows has. Rather than fail half-way with an AttributeError, a worker refuses to start
there with one sentence that says what to do instead.
"""

from __future__ import annotations

import sys

WORKER_PLATFORMS = ("linux", "darwin")

UNSUPPORTED = (
    "steep workers need Linux or macOS (they rely on POSIX signals, fork and sessions), and "
    "this is {name}; the client side (enqueueing, results, the dashboard, the CLI's "
    "operator commands) runs everywhere: run the workers on Linux or macOS, in WSL, or in a "
    "container"
)


class PlatformNotSupported(RuntimeError):
    """A worker was started where workers cannot run (Windows)."""


def check_worker_platform(platform: str | None = None) -> None:
    """Raise PlatformNotSupported unless workers run on `platform` (a `sys.platform` value;
    default: this one)."""
    platform = sys.platform if platform is None else platform
    if platform.startswith(WORKER_PLATFORMS):
        return
    name = "Windows" if platform in ("win32", "cygwin") else platform
    raise PlatformNotSupported(UNSUPPORTED.format(name=name))
