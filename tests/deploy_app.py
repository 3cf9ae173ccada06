"""The sample web app the deploy tests ship: it answers its version on /, and /health
with 200 (or 500 when the release holds a file named BROKEN)."""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the http.server API
        version = (HERE / "VERSION").read_text().strip()
        if self.path == "/health":
            code, body = (500, "broken") if (HERE / "BROKEN").exists() else (200, "ok")
        else:
            code, body = 200, f"Shop v{version}"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
