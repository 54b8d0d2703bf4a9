"""One real server per backend per session (tests/servers), and a fresh replica prefix per test."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.backends.helpers import apply_env
from tests.servers import SERVER_MODULES, Server, ServerNotInstalled, load, replica_config

_counter = itertools.count()


class _Servers:
    def __init__(self, factory) -> None:
        self.factory = factory
        self.running: dict[str, Server] = {}
        self.failed: dict[str, str] = {}

    def get(self, name: str) -> Server:
        if name in self.failed:
            pytest.fail(self.failed[name], pytrace=False)
        if name not in self.running:
            mod = load(name)
            try:
                self.running[name] = mod.start(self.factory.mktemp(f"server-{name}"))
            except ServerNotInstalled as e:
                self.failed[name] = f"{name} is not installed ({e}): run `bash ci/servers/{name}.sh`"
                pytest.fail(self.failed[name], pytrace=False)
            except Exception as e:
                self.failed[name] = f"{name} did not start: {e}"
                raise
        return self.running[name]

    def stop(self) -> None:
        for s in self.running.values():
            s.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    s = _Servers(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(params=SERVER_MODULES)
def server(request, servers) -> Server:
    return servers.get(request.param)


@pytest.fixture
def prefix(request) -> str:
    """A replica path no other test (or session run) uses."""
    return f"t{os.getpid()}-{next(_counter)}/{request.node.name.split('[')[0].replace('_', '-')}"


def _server(module: str):
    """A fixture for one server by its module's name (tests/servers/<module>.py), for the tests of one
    backend's specifics (test_*_extra.py)."""

    @pytest.fixture
    def fixture(servers) -> Server:
        return servers.get(module)

    return fixture


sw = _server("seaweedfs")
oss_server = _server("rclone_oss")
abs_server = _server("azurite")
ns = _server("nats")
sshd = _server("sshd")
dav = _server("apache_dav")


@pytest.fixture
def gcs_server(servers, monkeypatch) -> Server:
    """fake-gcs-server, its STORAGE_EMULATOR_HOST set: clients find the emulator only through it."""
    return apply_env(servers.get("fakegcs"), monkeypatch)


@pytest.fixture
def server_env(server, monkeypatch) -> Server:
    """The server, with its environment applied to this process (for in-process clients)."""
    return apply_env(server, monkeypatch)


@pytest.fixture
def client(server_env, prefix):
    from litestream.backends import new_replica_client

    c = new_replica_client(replica_config(server_env.replica(prefix)))
    c.init()
    yield c
    c.close()
