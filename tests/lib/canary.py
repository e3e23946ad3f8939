"""A loopback HTTP server that counts every request reaching it: the proof that an intercepted
request never left the process (interception and network-guard tests share it)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Canary:
    """A loopback HTTP server that counts every request that reaches it."""

    url: str
    hits: list[str] = field(default_factory=list)


@contextmanager
def serve() -> Iterator[Canary]:
    """A canary server on 127.0.0.1 for the block."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            hits.append(f"{self.command} {self.path}")
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            body = b'{"from": "network"}'
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Canary(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
