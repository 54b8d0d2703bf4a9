"""Replica backends behind one small protocol (base.ReplicaClient), found through a registry: each
backend module owns its URL form and how its config keys become a client (`from_config`). Cloud SDKs
are imported only by the backend that needs them (base.require_sdk), so `litestream version` or a
file-replica restore never loads boto3."""

from __future__ import annotations

import importlib

from litestream.backends.base import AuthError, BackendError, NotFoundError, ReplicaClient, Source
from litestream.config import REPLICA_TYPES, ConfigError, ReplicaConfig

__all__ = ["AuthError", "BackendError", "NotFoundError", "ReplicaClient", "Source", "new_replica_client"]

# replica type -> the module that builds it (`from_config(rc) -> ReplicaClient`).
REGISTRY: dict[str, str] = {
    "file": "litestream.backends.file",
    "s3": "litestream.backends.s3",
    "gs": "litestream.backends.gcs",
    "abs": "litestream.backends.abs",
    "nats": "litestream.backends.nats",
    "sftp": "litestream.backends.sftp",
    "webdav": "litestream.backends.webdav",
    "oss": "litestream.backends.oss",
}


def new_replica_client(rc: ReplicaConfig) -> ReplicaClient:
    """Build the client for one replica config (or a bare URL wrapped in one)."""
    from litestream.backends.url import is_url

    if rc.path and is_url(rc.path):
        raise ConfigError(f"replica path cannot be a url, please use the 'url' field instead: {rc.path}")
    if rc.age is not None and (rc.age.identities or rc.age.recipients):
        raise ConfigError("age encryption is not currently supported, if you need encryption please revert "
                          "back to Litestream v0.3.x")
    rtype = rc.replica_type()
    if rtype not in REPLICA_TYPES:
        raise ConfigError(f"unknown replica type in config: {rtype!r}".replace("'", '"'))
    try:
        module = importlib.import_module(REGISTRY[rtype])
    except ModuleNotFoundError as e:
        if e.name != REGISTRY[rtype]:
            raise
        raise ConfigError(f"{rtype} replicas are not supported by this version of litestream-py yet") from None
    return module.from_config(rc)
