"""Structured logging that prints exactly what Litestream's Go ``slog`` setup prints.

Litestream (internal/log.go) installs one global slog handler:

* ``text`` (default): slog.TextHandler, e.g.
  ``time=2026-11-25T22:03:17.393Z level=INFO msg="database already exists, skipping"``
  (local time, milliseconds truncated, ``Z`` or ``±hh:mm``; keys/values quoted with
  strconv.Quote only when they need it).
* ``json``: slog.JSONHandler, ``{"time":"<RFC3339Nano>","level":"INFO","msg":"…",…}``
  (durations as integer nanoseconds).
* ``pretty``: github.com/lmittmann/tint with TimeFormat "15:04:05",
  ``00:40:23 INF msg key=value``; ANSI colour only when the stream is a terminal.

Levels are slog's: TRACE=-8 (printed TRACE through Litestream's ReplaceAttr), DEBUG=-4,
INFO=0, WARN=4, ERROR=8. ``LOG_LEVEL`` (when non-empty) overrides the configured level.
Before any config is read the handler is text on stdout at INFO (or ``$LOG_LEVEL``).

This sits on the standard ``logging`` module: records go through the ``litestream``
logger (which does not propagate to the root logger, so third-party libraries stay
quiet as in Go) and its single handler renders them. Plain ``logging`` calls on
``litestream.*`` loggers are rendered too, with ``record.getMessage()`` as msg.

Use::

    log = get_logger("store")                 # name only selects the stdlib logger
    log.info("snapshot complete", db="app.db", txid="0000000000000001", size=1475)
    log = log.with_attrs(system="store")      # slog's With: bound attributes come first
    log.info("replicating to", "type", "file", "sync-interval", Duration(10**9))

Keys that are not Python identifiers (``sync-interval``, ``txid.replica``) go in as
positional key/value pairs, like slog's variadic args.

Secrets are never printed (a deliberate difference from Go):

* an attribute whose key, lower-cased with ``_``/``.``/space read as ``-``, contains one of
  ``secret``, ``password``, ``passwd``, ``passphrase``, ``token``, ``credential``,
  ``private-key``/``privatekey``, ``account-key``/``accountkey``, ``customer-key``/``customerkey``,
  ``api-key``/``apikey``, ``authorization`` or ``cookie`` has its value replaced by
  ``[REDACTED]``. Identifiers and locations stay visible: ``key`` (object keys),
  ``access-key-id``, ``key-path``, ``sse-kms-key-id`` and the like are not matched;
  The words ``nkey``, ``seed``, ``jwt``, ``sas``, ``sig`` and ``signature`` count when they are a whole
  part of the key (``nats-nkey``, ``sas`` but not ``seeders``);
* in string values (and the message) a URL password is masked as Go's url.Redacted does:
  ``scheme://user:pass@host`` → ``scheme://user:xxxxx@host``, and so is the value of a query parameter
  that carries a credential (``sig``, ``signature``, ``X-Amz-Signature``, ``X-Amz-Security-Token``,
  ``X-Goog-Signature``, ``token``, ``access_token``, ``password``, ``secret``): ``?sig=REDACTED``;
* as a last safety net, every secret value known to the process (registered with add_secret(): the
  config's credentials and URL passwords, see config.py, and the credential environment variables read
  at init_log()) is replaced by ``[REDACTED]`` wherever it appears in a rendered line, whatever the
  attribute or the message that carried it. redact_text() applies the same rules to any other text
  meant for the user (the CLI's ``Error:`` line).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import IO, Any, NamedTuple

from litestream.gofmt import (
    Duration,
    format_duration,
    format_float,
    format_rfc3339_milli,
    format_rfc3339_nano,
    format_time_only,
    go_json_dumps,
    go_json_float,
    go_quote,
    local_offset,
)

__all__ = [
    "DEBUG",
    "ERROR",
    "INFO",
    "TRACE",
    "WARN",
    "Attr",
    "Duration",
    "Logger",
    "SlogHandler",
    "add_secret",
    "configure",
    "current_level",
    "debug",
    "error",
    "get_logger",
    "info",
    "init_log",
    "is_secret_key",
    "level_name",
    "parse_level",
    "redact_text",
    "redact_url",
    "trace",
    "warn",
]

TRACE = -8
DEBUG = -4
INFO = 0
WARN = 4
ERROR = 8

# Python's logging numbers for the slog levels (TRACE gets its own name).
_STD_TRACE = 5
logging.addLevelName(_STD_TRACE, "TRACE")

_BAD_KEY = "!BADKEY"
_REDACTED = "[REDACTED]"


def _std_level(level: int) -> int:
    if level <= TRACE:
        return _STD_TRACE
    if level <= DEBUG:
        return logging.DEBUG
    if level <= INFO:
        return logging.INFO
    if level <= WARN:
        return logging.WARNING
    return logging.ERROR


def _slog_level(levelno: int) -> int:
    if levelno < logging.DEBUG:
        return TRACE
    if levelno < logging.INFO:
        return DEBUG
    if levelno < logging.WARNING:
        return INFO
    if levelno < logging.ERROR:
        return WARN
    return ERROR


def _go_upper(s: str) -> str:
    # strings.ToUpper uses simple (1:1) case mapping: "ß" stays "ß" where Python gives "SS".
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def parse_level(name: str | None) -> int:
    """Litestream's level names: trace, debug, info, warn/warning, error (any case); else INFO."""
    return {"TRACE": TRACE, "DEBUG": DEBUG, "INFO": INFO, "WARN": WARN, "WARNING": WARN,
            "ERROR": ERROR}.get(_go_upper(name or ""), INFO)


def level_name(level: int) -> str:
    """slog.Level.String() with Litestream's TRACE replacement: -8 "TRACE", -6 "DEBUG-2", 2 "INFO+2"."""
    if level == TRACE:
        return "TRACE"
    for base, name in ((ERROR, "ERROR"), (WARN, "WARN"), (INFO, "INFO"), (DEBUG, "DEBUG")):
        if level >= base or base == DEBUG:
            delta = level - base
            if delta == 0:
                return name
            return f"{name}{delta:+d}"
    raise AssertionError("unreachable")


def _tint_level(level: int) -> str:
    if level < INFO:
        base, name = DEBUG, "DBG"
    elif level < WARN:
        base, name = INFO, "INF"
    elif level < ERROR:
        base, name = WARN, "WRN"
    else:
        base, name = ERROR, "ERR"
    delta = level - base
    return name if delta == 0 else f"{name}{delta:+d}"


# ---------------------------------------------------------------------------
# Attributes


class Attr(NamedTuple):
    """slog.Attr; may be passed positionally to any logging call or to with_attrs()."""

    key: str
    value: Any


def _args_to_attrs(args: Iterable[Any], kwargs: Mapping[str, Any]) -> list[Attr]:
    # slog's argsToAttr: a string is a key taking the next argument as its value; an Attr is
    # used as is; anything else (or a key with no value left) is filed under "!BADKEY".
    out: list[Attr] = []
    items = list(args)
    i = 0
    while i < len(items):
        a = items[i]
        if isinstance(a, Attr):
            out.append(a)
            i += 1
        elif isinstance(a, str):
            if i + 1 >= len(items):
                out.append(Attr(_BAD_KEY, a))
                i += 1
            else:
                out.append(Attr(a, items[i + 1]))
                i += 2
        else:
            out.append(Attr(_BAD_KEY, a))
            i += 1
    out.extend(Attr(k, v) for k, v in kwargs.items())
    return out


_SECRET_WORDS = (
    "secret", "password", "passwd", "passphrase", "token", "credential", "private-key", "privatekey",
    "account-key", "accountkey", "customer-key", "customerkey", "api-key", "apikey", "authorization",
    "cookie",
)


# Too short or too common to match inside a longer word: only as a whole part of the key.
_SECRET_PARTS = frozenset(("nkey", "seed", "jwt", "sas", "sig", "signature"))


def is_secret_key(key: str) -> bool:
    """Whether an attribute with this key gets its value replaced by "[REDACTED]"."""
    k = key.lower().replace("_", "-").replace(".", "-").replace(" ", "-")
    return any(w in k for w in _SECRET_WORDS) or not _SECRET_PARTS.isdisjoint(k.split("-"))


# userinfo ends at the last "@" before the path, as in net/url; the password is what follows
# the first ":" of it.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s@:]*):([^/?#\s]*)@")


# Query parameters whose value is a credential (Azure SAS signatures, presigned S3/GCS URLs, tokens).
_SECRET_QUERY = re.compile(
    r"([?&](?:sig|signature|x-amz-signature|x-amz-security-token|x-goog-signature|token|access_token|"
    r"password|secret)=)[^&#\s\"'<>]+", re.IGNORECASE)


def redact_url(s: str) -> str:
    """Mask URL passwords in ``s`` the way Go's url.URL.Redacted() does ("xxxxx"), and the values of
    credential query parameters ("REDACTED")."""
    if "://" in s:
        s = _URL_USERINFO.sub(lambda m: m.group(1) + ":xxxxx@", s)
    if "=" in s and ("?" in s or "&" in s):
        s = _SECRET_QUERY.sub(lambda m: m.group(1) + "REDACTED", s)
    return s


# Secret values known to this process, as they may appear in a rendered line: raw, and escaped the way
# the text and JSON handlers escape a string (a password holding a quote or a backslash).
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words; key and URL rules still apply to them
_secrets: list[str] = []  # longest first, so that a secret containing another is masked whole
_secrets_lock = threading.Lock()

# Credentials the backends read from the environment (values, never names, are registered).
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "LITESTREAM_SECRET_ACCESS_KEY", "LITESTREAM_AZURE_ACCOUNT_KEY",
    "LITESTREAM_AZURE_SAS_TOKEN", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_SECRET",
    "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "NATS_PASSWORD", "NATS_TOKEN",
)


def add_secret(value: str | None) -> None:
    """Never print this value: it is replaced by "[REDACTED]" in every log line and in redact_text()."""
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    global _secrets
    forms = {value, go_quote(value)[1:-1], _json_string(value)[1:-1], _text_string(value).strip('"')}
    with _secrets_lock:
        known = set(_secrets) | {f for f in forms if len(f) >= _MIN_SECRET_LEN}
        _secrets = sorted(known, key=len, reverse=True)  # replaced whole: readers need no lock


def _mask_known(s: str) -> str:
    for secret in _secrets:
        if secret in s:
            s = s.replace(secret, _REDACTED)
    return s


def redact_text(s: str) -> str:
    """Any text for the user (an error message): URL passwords, credential query parameters and every
    known secret value masked."""
    return _mask_known(redact_url(s))


def _redact(attr: Attr) -> Attr:
    if is_secret_key(attr.key):
        return Attr(attr.key, _REDACTED)
    v = attr.value
    if isinstance(v, str):
        r = redact_url(v)
        if r is not v:
            return Attr(attr.key, r)
    elif isinstance(v, BaseException):
        text = str(v)
        r = redact_url(text)
        if r != text:
            # slog prints an error as its text in every format, so the masked text can stand in.
            return Attr(attr.key, r)
    return attr


# ---------------------------------------------------------------------------
# Value rendering

# slog's safeSet: JSON-safe ASCII. Litestream's text output quotes a string if it is empty
# or has a byte outside it, a space or '=' (a backslash alone does not force quotes).
_SLOG_UNSAFE = frozenset(chr(c) for c in range(0x20)) | {'"', " ", "="}
# tint's copy also treats ESC as safe.
_TINT_UNSAFE = _SLOG_UNSAFE - {"\x1b"}


def _needs_quoting(s: str, unsafe: frozenset[str] = _SLOG_UNSAFE) -> bool:
    if s == "":
        return True
    for ch in s:
        if ch < "\x80":
            if ch in unsafe:
                return True
        elif ch == "\ufffd" or not ch.isprintable():
            # Go's decoder reports U+FFFD like an invalid byte, so even a real one forces quotes.
            return True
    return False


def _text_string(s: str) -> str:
    return go_quote(s) if _needs_quoting(s) else s


def _go_sprint(v: Any) -> str:
    # fmt's %+v for the composite values a caller might pass.
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Duration | timedelta):
        return format_duration(_duration_ns(v))
    if isinstance(v, float):
        return format_float(v, "g")
    if isinstance(v, datetime):
        return str(v)
    if isinstance(v, bytes | bytearray):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(_go_sprint(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{_go_sprint(k)}:{_go_sprint(x)}" for k, x in items) + "]"
    return str(v)


def _duration_ns(v: Duration | timedelta) -> int:
    if isinstance(v, timedelta):
        return (v.days * 86400 + v.seconds) * 1_000_000_000 + v.microseconds * 1000
    return int(v)


def _text_value(v: Any) -> str:
    if isinstance(v, str):
        return _text_string(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Duration | timedelta):
        return _text_string(format_duration(_duration_ns(v)))
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_float(v, "g")
    if isinstance(v, datetime):
        return format_rfc3339_milli(v)
    if isinstance(v, bytes | bytearray):
        return go_quote(bytes(v))
    return _text_string(_go_sprint(v))


def _tint_string(s: str, color: bool) -> str:
    if not color:
        s = _strip_ansi(s)
    if not _needs_quoting(s, _TINT_UNSAFE):
        return s
    q = go_quote(s)
    # tint leaves escape sequences working inside quotes when colouring.
    return q.replace("\\x1b", "\x1b") if color else q


def _strip_ansi(s: str) -> str:
    # tint's cut(): drop from ESC through the next letter, and stop at the first invalid
    # byte or U+FFFD (Go's decoder cannot tell them apart), dropping the rest of the string.
    out = []
    in_escape = False
    for ch in s:
        if ch == "\ufffd" or "\ud800" <= ch <= "\udfff":
            break
        if ch == "\x1b":
            in_escape = True
        elif in_escape:
            if ch.isalpha():
                in_escape = False
        else:
            out.append(ch)
    return "".join(out)


def _tint_value(v: Any, color: bool) -> str:
    if isinstance(v, str):
        return _tint_string(v, color)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Duration | timedelta):
        return _tint_string(format_duration(_duration_ns(v)), color)
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_float(v, "g")
    if isinstance(v, datetime):
        return format_rfc3339_milli(v)
    return _tint_string(_go_sprint(v), color)


def _json_string(s: str) -> str:
    # slog's own JSON string escaper: like encoding/json without HTML escaping, but \b and \f
    # still come out as \u0008 and \u000c (checked against the binary).
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if cp < 0x80:
            if ch == '"' or ch == "\\":
                out.append("\\" + ch)
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\r":
                out.append("\\r")
            elif ch == "\t":
                out.append("\\t")
            elif cp < 0x20:
                out.append(f"\\u{cp:04x}")
            else:
                out.append(ch)
        elif 0xD800 <= cp <= 0xDFFF:
            out.append("\\ufffd")
        elif cp in (0x2028, 0x2029):
            out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_value(v: Any) -> str:
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Duration | timedelta):
        return str(_duration_ns(v))
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        try:
            return go_json_float(v)
        except ValueError as e:
            return _json_string(f"!ERROR:{e}")
    if isinstance(v, datetime):
        return '"' + format_rfc3339_nano(v) + '"'
    if isinstance(v, BaseException):
        return _json_string(str(v))
    try:
        return go_json_dumps(v, indent=None, newline=False, escape_html=False)
    except (TypeError, ValueError):
        return _json_string(str(v))


# ---------------------------------------------------------------------------
# Handler


class SlogHandler(logging.Handler):
    """Renders records as Litestream's slog handler of the given type would."""

    def __init__(self, stream: IO[str] | str = "stdout", type: str = "text", level: int = INFO,
                 add_source: bool = False, color: bool | None = None) -> None:
        if type not in ("text", "json", "pretty", ""):
            raise ValueError(f"invalid logging type {type!r}: must be \"text\", \"json\" or \"pretty\"")
        if isinstance(stream, str) and stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be a file object, \"stdout\" or \"stderr\", not {stream!r}")
        super().__init__(_std_level(level))
        self._stream = stream
        self.type = type or "text"
        self.slog_level = level
        self.add_source = add_source
        if color is None:
            color = self.type == "pretty" and _isatty(self.stream)
        self.color = color

    @property
    def stream(self) -> IO[str]:
        s = self._stream
        if isinstance(s, str):
            # Looked up at each write so that a replaced sys.stdout (tests, redirects) is used.
            return sys.stdout if s == "stdout" else sys.stderr
        return s

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.render(record)
        except Exception:
            self.handleError(record)
            return
        stream = self.stream
        try:
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):
            # slog ignores write errors (closed pipe, closed file); so do we.
            pass

    def render(self, record: logging.LogRecord) -> str:
        level = getattr(record, "slog_level", None)
        if level is None:
            level = _slog_level(record.levelno)
        ns = getattr(record, "slog_time_ns", None)
        if ns is None:
            ns = int(record.created * 1_000_000) * 1000
        attrs: list[Attr] = list(getattr(record, "slog_attrs", ()))
        msg = redact_url(record.getMessage())
        attrs = [_redact(a) for a in attrs]
        if self.type == "json":
            line = self._render_json(ns, level, msg, attrs, record)
        elif self.type == "pretty":
            line = self._render_pretty(ns, level, msg, attrs, record)
        else:
            line = self._render_text(ns, level, msg, attrs, record)
        # Whatever carried a known secret (an SDK's message, a dict value, a traceback), it is not printed.
        return _mask_known(line)

    def _source(self, record: logging.LogRecord) -> tuple[str, str, int]:
        path = record.pathname.replace(os.sep, "/")
        # Like Litestream's CleanSourcePath: the path inside the package ("store.py", "db/sync.py").
        idx = path.rfind("/litestream/")
        if idx >= 0:
            file = path[idx + len("/litestream/"):]
            module = "litestream." + file.removesuffix(".py").replace("/", ".")
        else:
            file = os.path.basename(path)
            module = record.module
        return f"{module}.{record.funcName}", file, record.lineno

    def _render_text(self, ns: int, level: int, msg: str, attrs: list[Attr],
                     record: logging.LogRecord) -> str:
        parts = [f"time={format_rfc3339_milli(ns, local_offset(ns))}", f"level={level_name(level)}"]
        if self.add_source:
            _, file, line = self._source(record)
            parts.append("source=" + _text_string(f"{file}:{line}"))
        parts.append("msg=" + _text_string(msg))
        for a in attrs:
            parts.append(_text_string(a.key) + "=" + _text_value(a.value))
        return " ".join(parts) + "\n"

    def _render_json(self, ns: int, level: int, msg: str, attrs: list[Attr],
                     record: logging.LogRecord) -> str:
        parts = [f'"time":"{format_rfc3339_nano(ns, local_offset(ns))}"', f'"level":"{level_name(level)}"']
        if self.add_source:
            func, file, line = self._source(record)
            parts.append(f'"source":{{"function":{_json_string(func)},"file":{_json_string(file)},"line":{line}}}')
        parts.append('"msg":' + _json_string(msg))
        for a in attrs:
            parts.append(_json_string(a.key) + ":" + _json_value(a.value))
        return "{" + ",".join(parts) + "}\n"

    def _render_pretty(self, ns: int, level: int, msg: str, attrs: list[Attr],
                       record: logging.LogRecord) -> str:
        color = self.color
        out: list[str] = []
        clock = format_time_only(ns, local_offset(ns))
        out.append(f"\x1b[2m{clock}\x1b[0m" if color else clock)
        if level == TRACE:
            # Litestream's ReplaceAttr turns the level into the plain string "TRACE".
            out.append("TRACE")
        elif not color:
            out.append(_tint_level(level))
        else:
            if level < INFO:
                out.append(_tint_level(level))
            else:
                code = "92" if level < WARN else "93" if level < ERROR else "91"
                out.append(f"\x1b[{code}m{_tint_level(level)}\x1b[0m")
        if self.add_source:
            _, file, line = self._source(record)
            head, _, base = file.rpartition("/")
            shown = f"{head.rpartition('/')[2]}/{base}" if head else base
            shown = f"{shown}:{line}"
            out.append(f"\x1b[2m{shown}\x1b[0m" if color else shown)
        out.append(msg)
        for a in attrs:
            key = _tint_string(a.key, color) + "="
            value = _tint_value(a.value, color)
            out.append(f"\x1b[2m{key}\x1b[0m{value}" if color else key + value)
        return " ".join(out) + "\n"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


# ---------------------------------------------------------------------------
# Global configuration (slog.SetDefault)

_ROOT_NAME = "litestream"
_lock = threading.Lock()
# Wall clock in ns, read once per record (a module attribute so tests can pin it).
_clock: Callable[[], int] = time.time_ns
_current_level = INFO

# Set in the context of a command run inside a running daemon (the MCP tools, cli/capture.py): there
# init_log()/configure() validate their arguments but keep the daemon's handler, whose "stdout"/"stderr"
# streams are looked up at each write and so reach that command's captured output.
keep_config: ContextVar[bool] = ContextVar("litestream_logs_keep_config", default=False)


def _install(handler: SlogHandler) -> None:
    global _current_level
    root = logging.getLogger(_ROOT_NAME)
    with _lock:
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(handler)
        root.setLevel(_std_level(handler.slog_level))
        root.propagate = False
        _current_level = handler.slog_level


def init_log(stream: IO[str] | str = "stdout", level: str | None = "INFO", type: str = "text",
             add_source: bool = False, *, color: bool | None = None) -> SlogHandler:
    """internal.InitLog: install the global handler. ``$LOG_LEVEL``, when non-empty, replaces
    ``level``; unknown level names mean INFO. ``stream`` is a file object or "stdout"/"stderr"
    (resolved at each write). An unknown ``type`` raises ValueError (Go panics instead)."""
    env = os.environ.get("LOG_LEVEL", "")
    if env:
        level = env
    for name in _SECRET_ENV:
        add_secret(os.environ.get(name))
    handler = SlogHandler(stream, type, parse_level(level), add_source, color)
    if not keep_config.get():
        _install(handler)
    return handler


def configure(level: str | None = None, type: str = "text", stderr: bool = False,
              source: bool = False) -> SlogHandler:
    """Apply a config file's ``logging:`` section (level, type, stderr, source)."""
    return init_log("stderr" if stderr else "stdout", level, type, source)


def current_level() -> int:
    return _current_level


# ---------------------------------------------------------------------------
# Loggers


class Logger:
    """A slog.Logger: leveled calls with ordered key/value attributes; with_attrs() is With()."""

    __slots__ = ("_attrs", "_logger")

    def __init__(self, name: str = "", attrs: Iterable[Attr] = ()) -> None:
        self._logger = logging.getLogger(f"{_ROOT_NAME}.{name}" if name else _ROOT_NAME)
        self._attrs = tuple(attrs)

    def with_attrs(self, *args: Any, **kwargs: Any) -> Logger:
        child = Logger.__new__(Logger)
        child._logger = self._logger
        child._attrs = self._attrs + tuple(_args_to_attrs(args, kwargs))
        return child

    def enabled(self, level: int) -> bool:
        return level >= _current_level

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if level >= _current_level:
            self._emit(level, msg, args, kwargs)

    def _emit(self, level: int, msg: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        attrs = list(self._attrs)
        if args or kwargs:
            attrs.extend(_args_to_attrs(args, kwargs))
        extra = {"slog_level": level, "slog_time_ns": _clock(), "slog_attrs": attrs}
        # Three frames up is the code that called info()/debug()/...: that is the "source".
        self._logger.log(_std_level(level), "%s", msg, extra=extra, stacklevel=3)

    def trace(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if _current_level <= TRACE:
            self._emit(TRACE, msg, args, kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if _current_level <= DEBUG:
            self._emit(DEBUG, msg, args, kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if _current_level <= INFO:
            self._emit(INFO, msg, args, kwargs)

    def warn(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if _current_level <= WARN:
            self._emit(WARN, msg, args, kwargs)

    warning = warn

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if _current_level <= ERROR:
            self._emit(ERROR, msg, args, kwargs)


def get_logger(name: str = "") -> Logger:
    """A logger. ``name`` only picks the stdlib logger (litestream.<name>); Go prints no
    logger names, so add e.g. ``system="store"`` with with_attrs() where Litestream does."""
    return Logger(name)


_default = Logger()


def _module_call(level: int) -> Callable[..., None]:
    def call(msg: str, *args: Any, **kwargs: Any) -> None:
        if level >= _current_level:
            _default._emit(level, msg, args, kwargs)

    call.__name__ = level_name(level).lower()
    call.__doc__ = f"slog.{level_name(level).capitalize()} on the default logger."
    return call


trace = _module_call(TRACE)
debug = _module_call(DEBUG)
info = _module_call(INFO)
warn = _module_call(WARN)
error = _module_call(ERROR)


# main() calls InitLog(os.Stdout, "INFO", "text", false) before anything else.
init_log("stdout", "INFO", "text", False)
