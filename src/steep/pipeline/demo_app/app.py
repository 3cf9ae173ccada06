"""The shop: a small web app with its own tests, a /health endpoint and a page that
shows its version and the environment it runs in (STEEP_ENV, set by the deploy).

Started by serve.py, which hands it the listening socket (fd given as argv[1]) and
waits for the line "ready" on its stdout.
"""

import os
import signal
import socket
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().strip()


def price_with_tax(cents: int, rate: float = 0.2) -> int:
    """A price with its tax, rounded to the cent."""
    return round(cents * (1 + rate))


def healthy() -> bool:
    """The release is healthy when its database answers (the shared data/ folder)."""
    if (HERE / "BROKEN").exists():  # a release that ships a broken configuration
        return False
    try:
        with sqlite3.connect(HERE / "data" / "shop.db") as db:
            db.execute("SELECT count(*) FROM products").fetchone()
        return True
    except sqlite3.Error:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the http.server API
        env = os.environ.get("STEEP_ENV", "development")
        if self.path == "/health":
            code, body = (200, "ok") if healthy() else (500, "unhealthy")
        elif self.path == "/":
            code, body = 200, f"Shop v{VERSION} ({env}): a mug costs {price_with_tax(1000)} cents"
        else:
            code, body = 404, "not found"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main(fd: int) -> None:
    listener = socket.socket(fileno=fd)
    listener.setblocking(False)  # serve.py's other child may take a connection first
    server = HTTPServer(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket = listener
    # SIGTERM: stop taking connections, finish the request in hand, exit
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main(int(sys.argv[1]))
