"""A fault-injecting HTTP proxy for the S3 tests: it forwards each request to the real server, unchanged
(the Host header included, so SigV4 signatures still verify), and for a share of them answers 500, 503
or 429 instead, resets the connection, cuts the response body short, or answers slowly."""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("500", "503", "429", "reset", "truncate", "slow")
_XML = {"500": ("InternalError", "We encountered an internal error. Please try again."),
        "503": ("SlowDown", "Please reduce your request rate."),
        "429": ("TooManyRequests", "Too many requests.")}


class FaultProxy:
    def __init__(self, upstream_port: int, rate: float = 0.15, seed: int = 1) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.only: str | None = None  # set: every request gets this fault (a server that is down)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pick(self) -> str | None:
        with self.lock:
            if self.only is not None:
                self.injected[self.only] += 1
                return self.only
            if self.rate <= 0 or self.rnd.random() >= self.rate:
                return None
            fault = self.rnd.choice(FAULTS)
            self.injected[fault] += 1
            return fault

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        fault = self.pick()
        if fault in _XML:
            code, msg = _XML[fault]
            data = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{msg}</Message>'
                    f"</Error>").encode()
            h.send_response(int(fault))
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
            return
        if fault == "reset":
            with contextlib.suppress(OSError):
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                h.connection.close()
            h.close_connection = True
            return
        if fault == "slow":
            time.sleep(0.5)
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            up.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                up.putheader(k, v)
            up.endheaders(body or None)
            resp = up.getresponse()
            data = resp.read()
        finally:
            up.close()
        with self.lock:
            self.forwarded += 1
        h.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        if fault == "truncate" and len(data) > 1 and h.command == "GET":
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
