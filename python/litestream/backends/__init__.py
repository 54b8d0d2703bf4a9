"""Replica backends behind one small protocol (base.ReplicaClient), found through a registry: each
backend module owns its URL form and how its config keys become a client (`from_config`). Cloud SDKs
are imported only by the backend that needs them (base.require_sdk), so `litestream version` or a
file-replica restore never loads boto3."""

from __future__ import annotations

import importlib

from litestream.backends.base import AuthError, BackendError, NotFoundError, ReplicaClient, Source
from litestream.config import REPLICA_TYPES, ConfigError, ReplicaConfig

__all__ = ["AuthError", "BackendError", "NotFoundError", "ReplicaClient", "Source", "client_from_url",
           "new_replica_client"]

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


def client_from_url(url: str) -> ReplicaClient:
    """The reference's URL factory (used by `register`): the URL alone. A backend whose URL form reads more
    here than in a config (S3: hyphen aliases, SSE keys, LITESTREAM_S3_ENDPOINT) has its own `from_url`."""
    from litestream.backends.base import parse_url

    scheme = parse_url(url).scheme  # the URL's own errors first (no scheme, bad port)
    rtype = "webdav" if scheme == "webdavs" else scheme
    if rtype not in REGISTRY:
        raise ConfigError(f'unsupported replica URL scheme: "{scheme}"')
    module = importlib.import_module(REGISTRY[rtype])
    factory = getattr(module, "from_url", None)
    if factory is not None:
        return factory(url)
    return module.from_config(ReplicaConfig(url=url))
