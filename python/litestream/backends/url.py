"""Replica URL parsing, as the reference parses them (replica_url.go)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

_URL_RE = re.compile(r"^\w+://")


def is_url(s: str) -> bool:
    return bool(_URL_RE.match(s))


@dataclass(frozen=True)
class ReplicaURL:
    scheme: str
    host: str
    path: str  # without a leading slash for non-file schemes; absolute and cleaned for file://
    query: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None

    @property
    def replica_type(self) -> str:
        return "webdav" if self.scheme == "webdavs" else self.scheme


def go_clean(p: str) -> str:
    if p == "":
        return "."
    out = posixpath.normpath(p)
    # posixpath keeps a leading "//"; Go collapses it.
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def _go_port(netloc: str, raw: str) -> str:
    """The port of a URL's host as Go's url.Parse takes it: digits only, not range-checked; anything else
    is its error (with a password in the URL masked)."""
    hostport = netloc.rpartition("@")[2]
    colon = hostport.rfind(":")
    if colon < 0 or colon < hostport.rfind("]"):
        return ""
    port = hostport[colon + 1:]
    if not port.isascii() or not (port.isdigit() or port == ""):
        from litestream.logs import redact_url

        raise ValueError(f'parse "{redact_url(raw)}": invalid port ":{port}" after host')
    return port


def parse_replica_url(s: str) -> ReplicaURL:
    """Split a replica URL. `file://a/b` becomes `/a/b` (the host is the first path segment), a missing
    path becomes `.` as path.Clean("") does."""
    if s.lower().startswith("s3://arn:"):
        # An access point ARN is no URL host (its colons would be read as a port): S3 splits it.
        from litestream.backends.s3common import split_access_point_url

        bucket, key, query = split_access_point_url(s)
        return ReplicaURL("s3", bucket, key, query)
    u = urlsplit(s)
    scheme = u.scheme.lower()
    if not scheme:
        raise ValueError(f"replica url scheme required: {s}")
    query = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    if scheme == "file":
        # Like the reference, the host is just the first path segment: file://a/b is /a/b, and %XX stays
        # as written (file:///data/a%20b replicates to a directory named `a%20b`, as the reference does).
        rest = s.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
        return ReplicaURL(scheme, "", go_clean("/" + rest.lstrip("/")))
    # TrimPrefix(path.Clean(u.Path), "/"): "" for "s3://bucket/", "." for "s3://bucket".
    path = go_clean(unquote(u.path)).removeprefix("/")
    host = u.hostname or ""
    port = _go_port(u.netloc, s)
    if port:
        host = f"{host}:{port}"
    return ReplicaURL(scheme, host, path, query,
                      unquote(u.username) if u.username is not None else None,
                      unquote(u.password) if u.password is not None else None)
