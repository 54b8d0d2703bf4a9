"""What the backend-specific tests (tests/backends/test_*_extra.py) share: a client made from a replica
mapping as a config file would give it, and a server's environment applied to this process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from litestream.backends import new_replica_client
from tests.servers import Server, replica_config


def client_for(mapping: Mapping[str, Any]) -> Any:
    """An initialised client for the replica `mapping`; the caller closes it."""
    c = new_replica_client(replica_config(mapping))
    c.init()
    return c


def init_error(mapping: Mapping[str, Any], expected: type[BaseException], match: str | None = None
               ) -> BaseException:
    """The `expected` error init() fails with for the replica `mapping` (the test fails if it does not,
    or if `match`, as pytest.raises takes it, does not), the client closed either way."""
    c = new_replica_client(replica_config(mapping))
    try:
        with pytest.raises(expected, match=match) as e:
            c.init()
    finally:
        c.close()
    return e.value


def apply_env(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The server, with its environment (emulator hosts, credentials) set in this process for the test,
    as in-process clients read it from there."""
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    return server
