"""A real HTTP tool endpoint on 127.0.0.1:0 for bridge tool tests (stdlib ``http.server`` in a thread).

Paths: ``/echo`` answers the posted JSON as ``{"echo": ...}``; ``/slow`` sleeps ``slow_s`` then answers;
``/big`` answers ``big_chars`` characters; ``/fail`` answers HTTP 500. Request bodies are kept in ``calls``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ToolServer:
    def __init__(self, slow_s: float = 2.0, big_chars: int = 10000) -> None:
        self.slow_s = slow_s
        self.big_chars = big_chars
        self.calls: list[tuple[str, Any]] = []
        self.url = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                server.calls.append((self.path, body))
                if self.path == "/fail":
                    self._reply(500, b"internal trouble")
                    return
                if self.path == "/slow":
                    time.sleep(server.slow_s)
                if self.path == "/big":
                    self._reply(200, ("x" * server.big_chars).encode())
                    return
                self._reply(200, json.dumps({"echo": body}).encode())

            def _reply(self, status: int, data: bytes) -> None:
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextlib.contextmanager
def tool_server(slow_s: float = 2.0, big_chars: int = 10000) -> Iterator[ToolServer]:
    """Run a :class:`ToolServer`; ``.url`` is ``http://127.0.0.1:PORT``."""
    ts = ToolServer(slow_s, big_chars)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ts.handler())
    httpd.daemon_threads = True
    ts.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield ts
    finally:
        httpd.shutdown()
        httpd.server_close()
