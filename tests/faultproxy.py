"""An HTTP proxy on loopback that sits in front of a real S3 server and misbehaves on purpose.

A share of requests is answered 503 SlowDown or 500 InternalError without reaching the server, and some
connections are dropped without an answer, either before the request is forwarded or after (so the server
did the work but the client never hears of it). Everything else is passed through unchanged, Host header
included, so SigV4 signatures still verify.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "expect"}
SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b"<Message>We encountered an internal error. Please try again.</Message></Error>")


class FaultProxy:
    """`FaultProxy(upstream, slowdown=0.1, error=0.05, drop=0.05).start()`; `counts` says what it did."""

    def __init__(self, upstream: str, slowdown: float = 0.1, error: float = 0.05, drop: float = 0.05,
                 seed: int = 1):
        parts = urlparse(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rates = {"slowdown": slowdown, "error": error, "drop": drop}
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def faults(self) -> int:
        return sum(n for name, n in self.counts.items() if name != "forwarded")

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def decide(self) -> str:
        with self.lock:
            roll = self.random.random()
            for name, rate in self.rates.items():
                if roll < rate:
                    return name
                roll -= rate
            return "forward"

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_Handler):
            pass

        Handler.proxy = proxy
        return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
    proxy: FaultProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._read_body()
        decision = self.proxy.decide()
        if decision == "slowdown":
            self.proxy.count("slowdown")
            return self._answer(503, SLOWDOWN)
        if decision == "error":
            self.proxy.count("error")
            return self._answer(500, INTERNAL)
        if decision == "drop" and self.proxy.random.random() < 0.5:
            self.proxy.count("dropped before forwarding")
            return self._drop()
        status, headers, payload = self._forward(body)
        if decision == "drop":
            self.proxy.count("dropped after forwarding")
            return self._drop()
        self.proxy.count("forwarded")
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and (name.lower() != "content-length" or self.command == "HEAD"):
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in {"PUT", "POST"}:
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        try:
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.getheaders(), payload
        finally:
            connection.close()

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self) -> None:
        """Hang up without a word: the client sees the connection closed before any answer."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
