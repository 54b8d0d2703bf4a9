"""Configuration: the reference's YAML file, as msgspec structs.

Loading follows the reference (`ReadConfigFile`): `$VAR`/`${VAR}` expansion of the raw text (Go
os.Expand rules, `$PID` is the process id), YAML 1.1 scalars as yaml.v2 reads them (yes/no booleans,
quoted text stays text, a number in a string field is kept as written), durations as Go strings or
integer nanoseconds, defaults, per-db snapshot hoisting, path expansion, global replica defaults, then
validation with the reference's messages. Unlike the reference, an unknown key is an error that names
the key and its line, so a typo never silently disables a setting."""

from __future__ import annotations

import math
import os
import pwd
import re
from typing import Any

import msgspec
import yaml

from litestream.gofmt import Duration, format_duration, parse_duration, yaml_v2_resolve

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

DEFAULT_CONFIG_PATH = "/etc/litestream.yml"
DEFAULT_SOCKET_PATH = "/var/run/litestream.sock"
DEFAULT_LEVEL_INTERVALS = (30 * SECOND, 5 * MINUTE, HOUR)
DEFAULT_SNAPSHOT_INTERVAL = 24 * HOUR
DEFAULT_SNAPSHOT_RETENTION = 24 * HOUR
DEFAULT_L0_RETENTION = 5 * MINUTE
DEFAULT_L0_RETENTION_CHECK_INTERVAL = 15 * SECOND
DEFAULT_SHUTDOWN_SYNC_TIMEOUT = 30 * SECOND
DEFAULT_SHUTDOWN_SYNC_INTERVAL = 500 * 1_000_000
DEFAULT_SYNC_INTERVAL = SECOND
DEFAULT_MONITOR_INTERVAL = SECOND
DEFAULT_CHECKPOINT_INTERVAL = MINUTE
DEFAULT_BUSY_TIMEOUT = SECOND
DEFAULT_MIN_CHECKPOINT_PAGE_N = 1000
DEFAULT_TRUNCATE_PAGE_N = 121359
DEFAULT_MAX_SYNC_WAL_BYTES = 64 << 20
DEFAULT_MAX_SYNC_LTX_FILES = 256
MIN_HEARTBEAT_INTERVAL = MINUTE
REPLICA_TYPES = ("file", "s3", "gs", "abs", "sftp", "webdav", "nats", "oss")


class ConfigError(Exception):
    """A configuration problem; str() is the one-line message the CLI prints."""


class ByteSize(int):
    """A size such as 5MiB (humanize.ParseBytes rules), in bytes."""


class _Struct(msgspec.Struct, kw_only=True, rename="kebab", forbid_unknown_fields=True, omit_defaults=True):
    pass


class AgeConfig(_Struct):
    identities: list[str] | None = None
    recipients: list[str] | None = None


class ReplicaSettings(_Struct):
    """Keys valid on a replica and, as defaults for every replica, at the top level."""

    sync_interval: Duration | None = None
    validation_interval: Duration | None = None
    max_sync_ltx_files: int | None = None
    auto_recover: bool | None = None
    # S3 / OSS
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = ""
    bucket: str = ""
    endpoint: str = ""
    force_path_style: bool | None = None
    sign_payload: bool | None = None
    sign_accept_encoding: bool | None = None
    require_content_md5: bool | None = None
    skip_verify: bool = False
    storage_class: str = ""
    part_size: ByteSize | None = None
    concurrency: int | None = None
    sse_customer_algorithm: str = ""
    sse_customer_key: str = ""
    sse_customer_key_path: str = ""
    sse_kms_key_id: str = ""
    # Azure Blob Storage
    account_name: str = ""
    account_key: str = ""
    sas_token: str = ""
    # SFTP
    host: str = ""
    user: str = ""
    password: str = ""
    key_path: str = ""
    concurrent_writes: bool | None = None
    host_key: str = ""
    # WebDAV
    webdav_url: str = ""
    webdav_username: str = ""
    webdav_password: str = ""
    # NATS
    jwt: str = ""
    seed: str = ""
    creds: str = ""
    nkey: str = ""
    username: str = ""
    token: str = ""
    tls: bool | None = None
    root_cas: list[str] | None = None
    client_cert: str = ""
    client_key: str = ""
    max_reconnects: int | None = None
    reconnect_wait: Duration | None = None
    timeout: Duration | None = None
    # Removed in 0.5 (kept so a config that has it gets the reference's message).
    age: AgeConfig | None = None


# Keys SetDefaults copies from the top level into each replica (part-size, concurrency, host-key and
# the webdav keys are not copied, as in the reference).
_INHERITED = (
    "sync_interval", "validation_interval", "max_sync_ltx_files", "auto_recover", "access_key_id",
    "secret_access_key", "region", "bucket", "endpoint", "force_path_style", "sign_payload",
    "sign_accept_encoding", "require_content_md5", "storage_class", "sse_customer_algorithm",
    "sse_customer_key", "sse_customer_key_path", "sse_kms_key_id", "account_name", "account_key",
    "sas_token", "host", "user", "password", "key_path", "concurrent_writes", "jwt", "seed", "creds",
    "nkey", "username", "token", "tls", "root_cas", "client_cert", "client_key", "max_reconnects",
    "reconnect_wait", "timeout",
)


class ReplicaConfig(ReplicaSettings):
    type: str = ""
    name: str = ""
    path: str = ""
    url: str = ""
    # Snapshot retention of this replica (the seed's `replica: {url, retention: 72h}` and v0.3's
    # `replicas: [{url, retention}]`); the global `snapshot.retention` when unset.
    retention: Duration | None = None

    def replica_type(self) -> str:
        """The URL's scheme wins over `type`; the default is a file replica."""
        if self.url:
            from litestream.backends.url import parse_replica_url

            try:
                scheme = parse_replica_url(self.url).replica_type
            except ValueError:
                scheme = ""
            if scheme:
                return scheme
        return self.type or "file"


class SnapshotConfig(_Struct):
    interval: Duration | None = None
    retention: Duration | None = None


class DBConfig(_Struct):
    path: str = ""
    dir: str = ""
    pattern: str = ""
    recursive: bool = False
    watch: bool = False
    snapshot: SnapshotConfig | None = None
    meta_path: str | None = None
    meta_dir: str | None = None
    monitor_interval: Duration | None = None
    checkpoint_interval: Duration | None = None
    busy_timeout: Duration | None = None
    min_checkpoint_page_count: int | None = None
    truncate_page_n: int | None = None
    max_sync_wal_bytes: int | None = None
    restore_if_db_not_exists: bool = False
    replica: ReplicaConfig | None = None
    replicas: list[ReplicaConfig] | None = None

    def replica_configs(self) -> list[ReplicaConfig]:
        if self.replica is None and not self.replicas:
            raise ConfigError("must specify replica for database")
        if self.replica is not None and self.replicas:
            raise ConfigError("cannot specify 'replica' and 'replicas' on a database")
        return [self.replica] if self.replica is not None else list(self.replicas or [])


class LevelConfig(_Struct):
    interval: Duration = Duration(0)
    # How long the level's files are kept once a higher level covers them (the seed's levels[].retention);
    # unset: until snapshot retention removes them, as in the reference.
    retention: Duration | None = None


class SocketConfig(_Struct):
    enabled: bool = False
    path: str = DEFAULT_SOCKET_PATH
    permissions: int = 0o600


class LoggingConfig(_Struct):
    level: str = ""
    type: str = ""
    stderr: bool = False
    source: bool = False


class RetentionConfig(_Struct):
    enabled: bool | None = None


class ValidationConfig(_Struct):
    interval: Duration | None = None


class ExecHook(_Struct):
    """One entry of the list form of `exec` (the migration guide's hooks): a command run once, without a
    shell, when replication has started. Built only by _build_exec, which has already checked it."""

    cmd: list[str]


class Config(ReplicaSettings):
    addr: str = ""
    mcp_addr: str = ""
    # The reference's command line (a string: the application run as a child, see execs.py) or the
    # migration guide's list of hooks ({cmd: [argv...]}).
    exec: str | list[ExecHook] = ""
    socket: SocketConfig | None = None
    logging: LoggingConfig | None = None
    levels: list[LevelConfig] | None = None
    snapshot: SnapshotConfig | None = None
    l0_retention: Duration | None = None
    l0_retention_check_interval: Duration | None = None
    retention: RetentionConfig | None = None
    verify_compaction: bool = False
    validation: ValidationConfig | None = None
    shutdown_sync_timeout: Duration | None = None
    shutdown_sync_interval: Duration | None = None
    heartbeat_url: str = ""
    heartbeat_interval: Duration | None = None
    dbs: list[DBConfig] = msgspec.field(default_factory=list)

    def db_config(self, path: str) -> DBConfig | None:
        """The first entry for an (expanded) database path."""
        for db in self.dbs:
            if db.path == path:
                return db
        return None

    def db_configs(self, path: str) -> list[DBConfig]:
        """Every entry for a database path (one path may be listed with several replicas)."""
        return [db for db in self.dbs if db.path == path]

    def level_intervals(self) -> list[int]:
        return [int(lv.interval) for lv in (self.levels or [])]


def default_config() -> Config:
    return Config(
        levels=[LevelConfig(interval=Duration(v)) for v in DEFAULT_LEVEL_INTERVALS],
        snapshot=SnapshotConfig(interval=Duration(DEFAULT_SNAPSHOT_INTERVAL),
                                retention=Duration(DEFAULT_SNAPSHOT_RETENTION)),
        socket=SocketConfig(),
        logging=LoggingConfig(),
        l0_retention=Duration(DEFAULT_L0_RETENTION),
        l0_retention_check_interval=Duration(DEFAULT_L0_RETENTION_CHECK_INTERVAL),
        shutdown_sync_timeout=Duration(DEFAULT_SHUTDOWN_SYNC_TIMEOUT),
        shutdown_sync_interval=Duration(DEFAULT_SHUTDOWN_SYNC_INTERVAL),
    )


# ------------------------------------------------------------------------------------ env expansion

def _shell_name(s: str) -> tuple[str, int]:
    special = "*#$@!?-0123456789"
    if s[0] == "{":
        if len(s) > 2 and s[1] in special and s[2] == "}":
            return s[1:2], 3
        for i in range(1, len(s)):
            if s[i] == "}":
                if i == 1:
                    return "", 2
                return s[1:i], i + 1
        return "", 1
    if s[0] in special:
        return s[0:1], 1
    i = 0
    while i < len(s) and (s[i] == "_" or (s[i].isascii() and s[i].isalnum())):
        i += 1
    return s[:i], i


def expand_env(text: str, getenv=os.environ.get) -> str:
    """Go os.Expand with the reference's mapping: unset variables become "", $PID is our pid."""
    out: list[str] = []
    i = j = 0
    n = len(text)
    while j < n:
        if text[j] == "$" and j + 1 < n:
            out.append(text[i:j])
            name, w = _shell_name(text[j + 1:])
            if name == "" and w > 0:
                pass  # invalid syntax such as "${}" is eaten
            elif name == "":
                out.append("$")
            else:
                out.append(str(os.getpid()) if name == "PID" else getenv(name, "") or "")
            j += w
            i = j + 1
        j += 1
    out.append(text[i:])
    return "".join(out)


# -------------------------------------------------------------------------------------- path helpers

def strip_sqlite_prefix(s: str) -> str:
    for prefix in ("sqlite3://", "sqlite://"):
        if s.startswith(prefix):
            return s[len(prefix):]
    return s


def expand_path(s: str) -> str:
    """The reference's expand(): strip sqlite:// prefixes, expand ~/, make absolute."""
    s = strip_sqlite_prefix(s)
    if s == "~" or s.startswith("~/"):
        # Go's user.Current().HomeDir: the account's home directory, not $HOME.
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = ""
        if not home:
            raise ConfigError(f"cannot expand path {s}, no home directory available")
        return home if s == "~" else os.path.join(home, s[2:])
    return os.path.abspath(s)


# ------------------------------------------------------------------------------------- YAML decoding

_BYTE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000**2, "mb": 1000**2,
    "mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "ti": 1024**4, "tib": 1024**4, "p": 1000**5, "pb": 1000**5,
    "pi": 1024**5, "pib": 1024**5, "e": 1000**6, "eb": 1000**6, "ei": 1024**6, "eib": 1024**6,
}
_BYTES_RE = re.compile(r"^\s*([0-9.,]+)\s*([a-zA-Z]*)\s*$")


def parse_byte_size(s: str) -> int:
    """humanize.ParseBytes: 5MB = 5,000,000, 5MiB = 5,242,880, a bare number is bytes."""
    m = _BYTES_RE.match(s)
    if not s.strip():
        raise ValueError("empty size string")
    if not m:
        raise ValueError(f"invalid size format: {s!r}")
    unit = m.group(2).lower()
    if unit not in _BYTE_UNITS:
        raise ValueError(f"invalid size format: unhandled size name: {unit}")
    try:
        num = float(m.group(1).replace(",", ""))
    except ValueError:
        raise ValueError(f"invalid size format: {s!r}") from None
    return int(num * _BYTE_UNITS[unit])


class _NodeError(Exception):
    def __init__(self, node: yaml.Node, path: str, msg: str) -> None:
        super().__init__(msg)
        self.node, self.path, self.msg = node, path, msg


def _scalar(node: yaml.Node, path: str) -> tuple[str, Any]:
    """(yaml.v2 tag, value) of a scalar node; quoted and block scalars are always text."""
    if not isinstance(node, yaml.ScalarNode):
        kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        raise _NodeError(node, path, f"expected a single value, got {kind}")
    if node.style in ("'", '"', "|", ">"):
        return "!!str", node.value
    return yaml_v2_resolve(node.value)


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _build(node: yaml.Node, t: Any, path: str) -> Any:
    """Turn a YAML node into plain Python data shaped for type t, with yaml.v2's scalar rules."""
    info = t if isinstance(t, msgspec.inspect.Type) else msgspec.inspect.type_info(t)
    if isinstance(info, msgspec.inspect.UnionType):
        others = [x for x in info.types if not isinstance(x, msgspec.inspect.NoneType)]
        if isinstance(node, yaml.ScalarNode) and node.style is None and _scalar(node, path)[0] == "!!null":
            # yaml.v2 sets a field to its zero value: an empty list (so `levels: ~` means no levels), or
            # unset for everything that has a default.
            return [] if isinstance(others[0], msgspec.inspect.ListType) else None
        return _build(node, others[0], path)
    if isinstance(info, msgspec.inspect.StructType):
        if isinstance(node, yaml.ScalarNode) and _scalar(node, path)[0] == "!!null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise _NodeError(node, path, "expected a mapping")
        fields = {f.encode_name: f for f in info.fields}
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else str(knode)
            sub = f"{path}.{key}" if path else key
            f = fields.get(key)
            if f is None:
                raise _NodeError(knode, sub, "unknown key")
            if info.cls is Config and key == "exec":
                out[key] = _build_exec(vnode, sub)  # two forms, told apart by the node's shape
                continue
            out[key] = _build(vnode, f.type, sub)
        return out
    if isinstance(info, msgspec.inspect.ListType):
        if isinstance(node, yaml.ScalarNode) and _scalar(node, path)[0] == "!!null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise _NodeError(node, path, "expected a list")
        return [_build(item, info.item_type, f"{path}[{i}]") for i, item in enumerate(node.value)]
    tag, value = _scalar(node, path)
    if isinstance(info, msgspec.inspect.StrType):
        # yaml.v2 stores any scalar's text in a string field (a numeric password stays as written).
        return "" if tag == "!!null" else node.value
    if isinstance(info, msgspec.inspect.BoolType):
        if tag == "!!null":
            return False
        if tag != "!!bool":
            raise _NodeError(node, path, f"expected true or false, got {node.value!r}")
        return value
    if isinstance(info, msgspec.inspect.IntType):
        if tag == "!!null":
            return 0
        if tag == "!!float" and not math.isnan(value) and abs(value) < 2**63:
            return int(value)  # yaml.v2 truncates a float into an integer field
        if tag != "!!int":
            raise _NodeError(node, path, f"expected an integer, got {node.value!r}")
        return value
    if isinstance(info, msgspec.inspect.CustomType) and info.cls is Duration:
        if tag == "!!null":
            return None
        if tag == "!!int":
            return Duration(value)
        if tag == "!!float" and not math.isnan(value) and abs(value) < 2**63:
            return Duration(int(value))  # nanoseconds, truncated, as yaml.v2 decodes it
        if tag == "!!str":
            try:
                return Duration(parse_duration(value))
            except ValueError as e:
                raise _NodeError(node, path, str(e)) from None
        raise _NodeError(node, path, f"expected a duration such as 10s, got {node.value!r}")
    if isinstance(info, msgspec.inspect.CustomType) and info.cls is ByteSize:
        try:
            return ByteSize(parse_byte_size(node.value))
        except ValueError as e:
            raise _NodeError(node, path, str(e)) from None
    raise _NodeError(node, path, f"unsupported value for {_type_name(t)}")


_EXEC_FORMS = 'a command line ("app -flag") or a list of hooks ([{cmd: ["/path/to/cmd", "arg"]}])'


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style is None and yaml_v2_resolve(node.value)[0] == "!!null"


def _describe_node(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _string_value(node: yaml.Node, path: str, what: str) -> str:
    """A scalar that YAML reads as text (quoted, or plain and not a number, boolean or null). Strict on
    purpose: `cmd: [sleep, 5]` would run fine, but `[notify, yes]` would not be what was written."""
    if not isinstance(node, yaml.ScalarNode):
        raise _NodeError(node, path, f"expected {what}, got {_describe_node(node)}")
    tag, _ = _scalar(node, path)
    if tag != "!!str":
        raise _NodeError(node, path, f"expected {what}, got {node.value!r} (quote it to pass it as text)")
    return node.value


def _build_exec(node: yaml.Node, path: str) -> Any:
    """`exec`: the reference's string (returned as is; execs.py splits it) or the list of hooks, each
    {cmd: [argv...]} (or cmd as one string, split with the shell-words rules of the string form and no
    shell). Every shape problem is reported here with its key, e.g. `exec[0].cmd: ...`."""
    import shlex

    if _is_null(node):
        return ""
    if isinstance(node, yaml.ScalarNode):
        return _string_value(node, path, _EXEC_FORMS)
    if not isinstance(node, yaml.SequenceNode):
        raise _NodeError(node, path, f"expected {_EXEC_FORMS}, got {_describe_node(node)}")
    hooks = []
    for i, item in enumerate(node.value):
        sub = f"{path}[{i}]"
        if not isinstance(item, yaml.MappingNode):
            raise _NodeError(item, sub, f'expected a hook such as {{cmd: ["/path/to/cmd", "arg"]}}, '
                                        f"got {_describe_node(item)}")
        cmd_node = None
        for knode, vnode in item.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else str(knode)
            if key != "cmd":
                raise _NodeError(knode, f"{sub}.{key}", "unknown key (a hook has only cmd)")
            cmd_node = vnode
        if cmd_node is None or _is_null(cmd_node):
            raise _NodeError(item, f"{sub}.cmd", 'required: the command to run, e.g. cmd: ["/path/to/cmd", "arg"]')
        csub = f"{sub}.cmd"
        if isinstance(cmd_node, yaml.SequenceNode):
            argv = [_string_value(a, f"{csub}[{j}]", "a string") for j, a in enumerate(cmd_node.value)]
        elif isinstance(cmd_node, yaml.ScalarNode):
            text = _string_value(cmd_node, csub, "a list of strings or a command line")
            try:
                argv = shlex.split(text)
            except ValueError as e:
                raise _NodeError(cmd_node, csub, f"cannot parse command line: {e}") from None
        else:
            raise _NodeError(cmd_node, csub, "expected a list of strings, got a mapping")
        if not argv:
            raise _NodeError(cmd_node, csub, "must be a non-empty list of strings (the program and its arguments)")
        if not argv[0]:
            raise _NodeError(cmd_node, f"{csub}[0]", "the program must not be empty")
        hooks.append({"cmd": argv})
    return hooks


def _dec_hook(t: type, obj: Any) -> Any:
    if t in (Duration, ByteSize) and isinstance(obj, int):
        return t(obj)
    raise NotImplementedError


def parse_config(text: str, filename: str = "<config>", expand: bool = True) -> Config:
    """Parse config text (no defaults applied, no validation): YAML rules and key checking only."""
    if expand:
        text = expand_env(text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{filename}: yaml: {where}{e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{filename}: yaml: {e}") from None
    if node is None:
        data: dict[str, Any] = {}
    else:
        try:
            data = _build(node, Config, "")
        except _NodeError as e:
            raise ConfigError(f"{filename}: line {e.node.start_mark.line + 1}: {e.path}: {e.msg}" if e.path
                              else f"{filename}: line {e.node.start_mark.line + 1}: {e.msg}") from None
    try:
        return msgspec.convert(data, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{filename}: {e}") from None


def _fmt_dur(v: int) -> str:
    return format_duration(int(v))


def _validate(c: Config) -> None:
    def bad(field: str, msg: str, value: Any) -> ConfigError:
        return ConfigError(f"{field}: {msg} (got {value})")

    snap = c.snapshot
    if snap.interval is not None and snap.interval <= 0:
        raise bad("snapshot.interval", "snapshot interval must be greater than 0", _fmt_dur(snap.interval))
    if snap.retention is not None and snap.retention <= 0:
        raise bad("snapshot.retention", "snapshot retention must be greater than 0", _fmt_dur(snap.retention))
    if c.l0_retention is not None and c.l0_retention < 0:
        raise bad("l0-retention", "l0 retention must not be negative", _fmt_dur(c.l0_retention))
    if c.l0_retention_check_interval is not None and c.l0_retention_check_interval <= 0:
        raise bad("l0-retention-check-interval", "l0 retention check interval must be greater than 0",
                  _fmt_dur(c.l0_retention_check_interval))
    if c.shutdown_sync_timeout is not None and c.shutdown_sync_timeout < 0:
        raise bad("shutdown-sync-timeout", "shutdown-sync-timeout must be >= 0", _fmt_dur(c.shutdown_sync_timeout))
    if c.shutdown_sync_interval is not None and c.shutdown_sync_interval <= 0:
        raise bad("shutdown-sync-interval", "shutdown sync interval must be greater than 0",
                  _fmt_dur(c.shutdown_sync_interval))
    if c.heartbeat_url and not c.heartbeat_url.startswith(("http://", "https://")):
        raise bad("heartbeat-url", "heartbeat URL must be a valid HTTP or HTTPS URL", c.heartbeat_url)
    if c.heartbeat_interval is not None and c.heartbeat_interval < MIN_HEARTBEAT_INTERVAL:
        raise bad("heartbeat-interval", "heartbeat interval must be at least 1 minute",
                  _fmt_dur(c.heartbeat_interval))
    if c.levels and len(c.levels) > 8:
        raise ConfigError("levels: compaction level cannot exceed 8")
    for i, lv in enumerate(c.levels or []):
        if lv.interval <= 0:
            raise bad(f"levels[{i}].interval", "compaction interval must be greater than 0", _fmt_dur(lv.interval))
        if lv.retention is not None and lv.retention <= 0:
            raise bad(f"levels[{i}].retention", "level retention must be greater than 0", _fmt_dur(lv.retention))
    if c.logging.type not in ("", "text", "json", "pretty"):
        raise ConfigError(f"logging.type: unknown log type {c.logging.type!r} (use text, json or pretty)")
    for idx, db in enumerate(c.dbs, 1):
        if db.path and db.dir:
            raise ConfigError(f"database config #{idx}: cannot specify both 'path' and 'dir'")
        if not db.path and not db.dir:
            raise ConfigError(f"database config #{idx}: must specify either 'path' or 'dir'")
        if db.dir and not db.pattern:
            raise ConfigError(f"database config #{idx}: 'pattern' is required when using 'dir'")
        if db.watch and not db.dir:
            raise ConfigError(f"database config #{idx}: 'watch' can only be enabled with a directory")
        if db.meta_dir is not None and not db.dir:
            raise ConfigError(f"database config #{idx}: 'meta-dir' can only be used with a directory")
        if db.meta_path is not None and db.meta_dir is not None:
            raise ConfigError(f"database config #{idx}: cannot specify both 'meta-path' and 'meta-dir'")
        ident = db.path or db.dir
        if db.snapshot is not None:
            if db.snapshot.interval is not None and db.snapshot.interval <= 0:
                raise bad(f"dbs[{ident}].snapshot.interval", "snapshot interval must be greater than 0",
                          _fmt_dur(db.snapshot.interval))
            if db.snapshot.retention is not None and db.snapshot.retention <= 0:
                raise bad(f"dbs[{ident}].snapshot.retention", "snapshot retention must be greater than 0",
                          _fmt_dur(db.snapshot.retention))
        if db.replica is not None and db.replica.sync_interval is not None and db.replica.sync_interval <= 0:
            raise bad(f"dbs[{ident}].replica.sync-interval", "sync interval must be greater than 0",
                      _fmt_dur(db.replica.sync_interval))
        for i, r in enumerate(db.replicas or []):
            if r.sync_interval is not None and r.sync_interval <= 0:
                raise bad(f"dbs[{ident}].replicas[{i}].sync-interval", "sync interval must be greater than 0",
                          _fmt_dur(r.sync_interval))
        if db.min_checkpoint_page_count is not None and db.min_checkpoint_page_count <= 0:
            raise ConfigError(f"dbs[{ident}].min-checkpoint-page-count: minimum checkpoint page count required")


def _hoist_snapshots(c: Config, raw: Config) -> None:
    interval = retention = None
    interval_db = retention_db = ""
    for db in c.dbs:
        ident = db.path or db.dir
        s = db.snapshot
        if s is None:
            continue
        if s.interval is not None:
            if interval is not None and interval != s.interval:
                raise ConfigError(f"conflicting database snapshot intervals: {interval_db} has "
                                  f"{_fmt_dur(interval)}, {ident} has {_fmt_dur(s.interval)}")
            interval, interval_db = s.interval, ident
        if s.retention is not None:
            if retention is not None and retention != s.retention:
                raise ConfigError(f"conflicting database snapshot retentions: {retention_db} has "
                                  f"{_fmt_dur(retention)}, {ident} has {_fmt_dur(s.retention)}")
            retention, retention_db = s.retention, ident
    global_interval = raw.snapshot is not None and raw.snapshot.interval is not None
    global_retention = raw.snapshot is not None and raw.snapshot.retention is not None
    if not global_interval and interval is not None:
        c.snapshot.interval = interval
    if not global_retention and retention is not None:
        c.snapshot.retention = retention


def apply_defaults(raw: Config) -> Config:
    """Defaults, snapshot hoisting, path expansion and global replica defaults, then validation."""
    c = msgspec.structs.replace(raw)
    d = default_config()
    if c.levels is None:
        c.levels = d.levels
    c.snapshot = msgspec.structs.replace(raw.snapshot) if raw.snapshot is not None else SnapshotConfig()
    if c.snapshot.interval is None:
        c.snapshot.interval = d.snapshot.interval
    if c.snapshot.retention is None:
        c.snapshot.retention = d.snapshot.retention
    if c.socket is None:
        c.socket = SocketConfig()
    if c.logging is None:
        c.logging = LoggingConfig()
    for name in ("l0_retention", "l0_retention_check_interval", "shutdown_sync_timeout", "shutdown_sync_interval"):
        if getattr(c, name) is None:
            setattr(c, name, getattr(d, name))
    _hoist_snapshots(c, raw)
    for db in c.dbs:
        if db.path:
            db.path = expand_path(db.path)
        for r in ([db.replica] if db.replica is not None else []) + list(db.replicas or []):
            for name in _INHERITED:
                mine, glob = getattr(r, name), getattr(c, name)
                if mine is None or (mine == "" and isinstance(mine, str)) or (name == "root_cas" and not mine):
                    setattr(r, name, glob)
            if c.skip_verify:
                r.skip_verify = True
            if c.age is not None and r.age is None:
                r.age = c.age
    register_secrets(c)
    _validate(c)
    return c


# Credentials in the config (on a replica, or at the top level as defaults for every replica).
_SECRET_FIELDS = ("secret_access_key", "sse_customer_key", "account_key", "sas_token", "password",
                  "webdav_password", "jwt", "seed", "nkey", "token")
_URL_FIELDS = ("url", "endpoint", "webdav_url")


def _url_password(url: str) -> list[str]:
    """The password of scheme://user:pass@host, as written and percent-decoded."""
    _, sep, rest = url.partition("://")
    if not sep:
        return []
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return []
    from urllib.parse import unquote

    raw = userinfo.partition(":")[2]
    return [raw, unquote(raw)]


def register_secrets(c: Config) -> None:
    """Tell the log handler every credential of the config, so that no log line (nor `Error:` message)
    can print one, whichever code path carried it there (logs.add_secret)."""
    from litestream import logs

    holders: list[ReplicaSettings] = [c]
    for db in c.dbs:
        holders += ([db.replica] if db.replica is not None else []) + list(db.replicas or [])
    for h in holders:
        for name in _SECRET_FIELDS:
            value = getattr(h, name, "")
            if name == "nkey" and "/" in value:
                continue  # a file holding the seed: a path, which the logs may show
            logs.add_secret(value)
        if h.sas_token:
            m = re.search(r"(?:^|[?&])sig=([^&]+)", h.sas_token)
            if m:
                logs.add_secret(m.group(1))
        for name in _URL_FIELDS:
            for pw in _url_password(getattr(h, name, "") or ""):
                logs.add_secret(pw)


def config_path(path: str | None) -> str:
    """-config, else $LITESTREAM_CONFIG, else /etc/litestream.yml; expanded like the reference."""
    if not path:
        path = os.environ.get("LITESTREAM_CONFIG") or DEFAULT_CONFIG_PATH
    return expand_path(path)


def read_config_file(path: str | None, expand: bool = True) -> Config:
    filename = config_path(path)
    try:
        with open(filename, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {filename}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {filename}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {filename}: {e.strerror}") from None
    return apply_defaults(parse_config(text, filename, expand))
