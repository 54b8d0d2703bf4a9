"""Replica backends behind one small protocol (base.ReplicaClient). Cloud SDKs are imported only by
the backend that needs them, so `litestream version` or a file-replica restore never loads boto3."""

from __future__ import annotations

from litestream.backends.base import BackendError, ReplicaClient
from litestream.config import REPLICA_TYPES, ConfigError, ReplicaConfig, expand_path

__all__ = ["BackendError", "ReplicaClient", "new_replica_client"]


def new_replica_client(rc: ReplicaConfig) -> ReplicaClient:
    """Build the client for one replica config (or a bare URL wrapped in one)."""
    from litestream.backends.url import is_url, parse_replica_url

    if rc.path and is_url(rc.path):
        raise ConfigError(f"replica path cannot be a url, please use the 'url' field instead: {rc.path}")
    if rc.age is not None and (rc.age.identities or rc.age.recipients):
        raise ConfigError("age encryption is not currently supported, if you need encryption please revert "
                          "back to Litestream v0.3.x")
    rtype = rc.replica_type()
    if rtype == "file":
        from litestream.backends.file import FileReplicaClient

        if rc.url and rc.path:
            raise ConfigError("cannot specify url & path for file replica")
        path = rc.path
        if rc.url:
            try:
                path = parse_replica_url(rc.url).path
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if not path:
            raise ConfigError("file replica path required")
        return FileReplicaClient(expand_path(path))
    if rtype in REPLICA_TYPES:
        raise ConfigError(f"{rtype} replicas are not supported by this version of litestream-py yet")
    raise ConfigError(f"unknown replica type in config: {rtype!r}".replace("'", '"'))
