"""What the backend config tests (tests/unit/test_*_config.py) build clients with: a replica mapping, as
a config file's YAML would give it, made into a client or into the ConfigError it is refused with."""

from __future__ import annotations

from typing import Any

import pytest

from litestream.backends import new_replica_client
from litestream.config import ConfigError
from tests.servers import replica_config


def client(**mapping: Any) -> Any:
    return new_replica_client(replica_config(mapping))


def error(**mapping: Any) -> str:
    with pytest.raises(ConfigError) as e:
        client(**mapping)
    return str(e.value)
