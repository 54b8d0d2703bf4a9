"""Byte-exact reproductions of the Go formatting that Litestream's output depends on.

Litestream prints through Go's standard library (text/tabwriter, time, strconv,
encoding/json) and github.com/dustin/go-humanize. A drop-in replacement has to agree
with those byte for byte, including their odd corners, so each helper here follows the
Go algorithm rather than the nearest Python idiom. Only the standard library is used.

Strings: Go strings are bytes; Python strings are code points. Where the difference
shows (invalid UTF-8), a Python string is taken to carry undecodable bytes as
``surrogateescape`` code points (U+DC80..U+DCFF), which is what ``os.fsdecode`` and
``bytes.decode(errors="surrogateescape")`` produce.
"""

from __future__ import annotations

import base64
import math
import re
import time as _time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

__all__ = [
    "ALIGN_RIGHT",
    "DEBUG",
    "DISCARD_EMPTY_COLUMNS",
    "FILTER_HTML",
    "STRIP_ESCAPE",
    "TAB_INDENT",
    "Duration",
    "TabWriter",
    "YAMLDurationError",
    "format_duration",
    "format_float",
    "format_rfc3339",
    "format_rfc3339_milli",
    "format_rfc3339_nano",
    "format_time_only",
    "go_bytes",
    "go_json_dumps",
    "go_json_float",
    "go_quote",
    "go_time_quote",
    "humanize_bytes",
    "local_offset",
    "ms_to_ns",
    "parse_bool",
    "parse_duration",
    "parse_int",
    "parse_rfc3339",
    "parse_rfc3339_ns",
    "parse_yaml_duration",
    "tabwriter",
    "time_to_ns",
    "yaml_v2_resolve",
]

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


# ---------------------------------------------------------------------------
# Go strings


def go_bytes(s: str | bytes) -> bytes:
    """The bytes Go would hold for ``s``; surrogate escapes become the raw bytes they stand for."""
    if isinstance(s, bytes):
        return s
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates outside the escape range have no byte meaning; Go would only ever see
        # them as the 3 invalid bytes of their (forbidden) UTF-8 encoding.
        return s.encode("utf-8", "surrogatepass")


def _is_print(ch: str) -> bool:
    # strconv.IsPrint is "L, M, N, P, S and ASCII space", which is exactly what
    # str.isprintable() accepts; only the Unicode table versions can differ.
    return ch.isprintable()


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str | bytes) -> str:
    """strconv.Quote (what ``%q`` prints for a string)."""
    if isinstance(s, bytes):
        s = s.decode("utf-8", "surrogateescape")
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            # An undecodable byte (or an unencodable surrogate): Go prints every byte as \x.
            for b in go_bytes(ch):
                out.append(f"\\x{b:02x}")
        elif ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif _is_print(ch):
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def go_time_quote(s: str) -> str:
    """The time package's private quote(): used in ParseDuration/Parse errors.

    Unlike strconv.Quote it escapes every non-ASCII or control byte as ``\\xNN`` and keeps
    everything else (including DEL) raw.
    """
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if cp >= 0x80 or cp < 0x20:
            for b in go_bytes(ch):
                out.append(f"\\x{b:02x}")
        else:
            if ch == '"' or ch == "\\":
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------
# strconv number parsing (used by the flag package and by yaml.v2)


def parse_bool(s: str) -> bool:
    """strconv.ParseBool; raises ValueError("invalid syntax")."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("invalid syntax")


class _NumError(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__("value out of range" if kind == "range" else "invalid syntax")
        self.kind = kind


def _underscore_ok(s: str) -> bool:
    saw = "^"
    i = 0
    if s[:1] in ("-", "+"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in ("b", "o", "x"):
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and "a" <= c.lower() <= "f"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _parse_uint(s: str, base: int, bit_size: int) -> int:
    if s == "":
        raise _NumError("syntax")
    base0 = base == 0
    s0 = s
    if base == 0:
        base = 10
        if s[0] == "0":
            if len(s) >= 3 and s[1] in "bB":
                base, s = 2, s[2:]
            elif len(s) >= 3 and s[1] in "oO":
                base, s = 8, s[2:]
            elif len(s) >= 3 and s[1] in "xX":
                base, s = 16, s[2:]
            else:
                base, s = 8, s[1:]
    max_val = (1 << bit_size) - 1
    cutoff = _UINT64_MAX // base + 1
    n = 0
    underscores = False
    # Go walks bytes, so a non-ASCII character is simply an invalid digit.
    for b in go_bytes(s):
        if b == 0x5F and base0:
            underscores = True
            continue
        if 0x30 <= b <= 0x39:
            d = b - 0x30
        elif 0x61 <= (b | 0x20) <= 0x7A:
            d = (b | 0x20) - 0x61 + 10
        else:
            raise _NumError("syntax")
        if d >= base:
            raise _NumError("syntax")
        # Overflow is reported as soon as it happens, before later bad digits are seen.
        if n >= cutoff:
            raise _NumError("range")
        n = n * base + d
        if n > max_val:
            raise _NumError("range")
    if underscores and not _underscore_ok(s0):
        raise _NumError("syntax")
    return n


def parse_int(s: str, base: int = 0, bit_size: int = 64) -> int:
    """strconv.ParseInt. Raises ValueError("invalid syntax") or ValueError("value out of range")."""
    if s == "":
        raise _NumError("syntax")
    neg = False
    body = s
    if s[0] == "+":
        body = s[1:]
    elif s[0] == "-":
        neg, body = True, s[1:]
    un = _parse_uint(body, base, bit_size)
    cutoff = 1 << (bit_size - 1)
    if not neg and un >= cutoff:
        raise _NumError("range")
    if neg and un > cutoff:
        raise _NumError("range")
    return -un if neg else un


# ---------------------------------------------------------------------------
# time.Duration


class Duration(int):
    """An int of nanoseconds that prints like Go's time.Duration (slog renders it so)."""

    __slots__ = ()

    def __str__(self) -> str:
        return format_duration(int(self))

    def __repr__(self) -> str:
        return f"Duration({int(self)})"


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    # Digits after the point with trailing zeros dropped; no point at all if the fraction is 0.
    digits = []
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits.append(chr(0x30 + digit))
        v //= 10
    frac = ("." + "".join(reversed(digits))) if printed else ""
    return frac, v


def format_duration(ns: int) -> str:
    """time.Duration.String(): "0s", "1.5s", "1m0s", "24h0m0s", "100ms", "1µs", "-1s"."""
    ns = int(ns)
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise OverflowError("duration out of int64 range")
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "µs"
        else:
            prec, unit = 6, "ms"
        frac, u = _fmt_frac(u, prec)
        s = f"{u}{frac}{unit}"
    else:
        frac, u = _fmt_frac(u, 9)
        s = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            s = f"{u % 60}m{s}"
            u //= 60
            if u > 0:
                s = f"{u}h{s}"
    return "-" + s if neg else s


_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


def _leading_int(s: str) -> tuple[int, str]:
    i = 0
    x = 0
    while i < len(s) and "0" <= s[i] <= "9":
        if x > (1 << 63) // 10:
            raise ValueError("overflow")
        x = x * 10 + ord(s[i]) - 0x30
        if x > 1 << 63:
            raise ValueError("overflow")
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    i = 0
    x = 0
    scale = 1.0
    overflow = False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if x > ((1 << 63) - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 0x30
                if y > 1 << 63:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_duration(s: str) -> int:
    """time.ParseDuration, returning integer nanoseconds; ValueError carries Go's message."""
    orig = s
    invalid = f"time: invalid duration {go_time_quote(orig)}"
    d = 0
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError(invalid)
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError(invalid)
        pl = len(s)
        try:
            v, s = _leading_int(s)
        except ValueError:
            raise ValueError(invalid) from None
        pre = pl != len(s)
        post = False
        f, scale = 0, 1.0
        if s and s[0] == ".":
            s = s[1:]
            pl = len(s)
            f, scale, s = _leading_fraction(s)
            post = pl != len(s)
        if not pre and not post:
            raise ValueError(invalid)
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_time_quote(orig)}")
        u, s = s[:i], s[i:]
        unit = _UNITS.get(u)
        if unit is None:
            raise ValueError(f"time: unknown unit {go_time_quote(u)} in duration {go_time_quote(orig)}")
        if v > (1 << 63) // unit:
            raise ValueError(invalid)
        v *= unit
        if f > 0:
            # Go does this step in float64 and truncates; Python floats are the same IEEE doubles.
            v += int(float(f) * (float(unit) / scale))
            if v > 1 << 63:
                raise ValueError(invalid)
        d += v
        if d > 1 << 63:
            raise ValueError(invalid)
    if neg:
        return -d
    if d > _INT64_MAX:
        raise ValueError(invalid)
    return d


# ---------------------------------------------------------------------------
# YAML durations (gopkg.in/yaml.v2 v2.4.0 decoding into *time.Duration)


class YAMLDurationError(ValueError):
    """yaml.v2's type error. str() is one entry of the list yaml prints after
    "yaml: unmarshal errors:\\n  " (entries joined by "\\n  ")."""

    def __init__(self, tag: str, text: str, line: int | None) -> None:
        raw = go_bytes(text)
        # yaml.v2 shortens long scalars to their first 7 bytes (even mid-rune).
        shown = text if len(raw) <= 10 else raw[:7].decode("utf-8", "surrogateescape") + "..."
        msg = f"cannot unmarshal {tag} `{shown}` into time.Duration"
        if line is not None:
            msg = f"line {line}: {msg}"
        super().__init__(msg)
        self.tag = tag
        self.text = text
        self.line = line


_YAML_MAP: dict[str, tuple[str, Any]] = {}
for _tag, _val, _words in (
    ("!!bool", True, ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")),
    ("!!bool", False, ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")),
    ("!!null", None, ("", "~", "null", "Null", "NULL")),
    ("!!float", math.nan, (".nan", ".NaN", ".NAN")),
    ("!!float", math.inf, (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")),
    ("!!float", -math.inf, ("-.inf", "-.Inf", "-.INF")),
    ("!!merge", "<<", ("<<",)),
):
    for _w in _words:
        _YAML_MAP[_w] = (_tag, _val)

_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
# yaml.v2 tries time.Parse with "2006-1-2T15:4:5.999999999Z07:00" (also with "t"),
# "2006-1-2 15:4:5.999999999" and "2006-1-2"; this is a close approximation of those layouts.
_YAML_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:[Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
    r"| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:[.,][0-9]+)?)?\Z"
)


def _go_parse_float(s: str) -> float | None:
    if not _YAML_FLOAT.match(s):
        return None
    v = float(s)
    # strconv.ParseFloat reports overflow as an error, which yaml.v2 treats as "not a float".
    if math.isinf(v):
        return None
    return v


def yaml_v2_resolve(plain: str) -> tuple[str, Any]:
    """Resolve an unquoted (plain) YAML scalar like yaml.v2 does: returns (short tag, value).

    Quirks kept on purpose: YAML 1.1 booleans (yes/no/on/off), Go integer syntax (0x1F, 0o17,
    017 octal, 0b101, underscores anywhere), floats with exponent but no dot (1e3), and
    timestamps (2001-02-03).
    """
    hint = plain[:1]
    if plain in _YAML_MAP:
        return _YAML_MAP[plain]
    if hint == ".":
        v = _go_parse_float(plain)
        if v is not None:
            return "!!float", v
    elif hint and (hint in "+-" or "0" <= hint <= "9"):
        if _YAML_TIMESTAMP.match(plain):
            return "!!timestamp", plain
        body = plain.replace("_", "")
        try:
            return "!!int", parse_int(body, 0, 64)
        except ValueError:
            pass
        try:
            return "!!int", _parse_uint(body, 0, 64)
        except ValueError:
            pass
        v = _go_parse_float(body)
        if v is not None:
            return "!!float", v
        if body.startswith("0b"):
            try:
                return "!!int", parse_int(body[2:], 2, 64)
            except ValueError:
                pass
            try:
                return "!!int", _parse_uint(body[2:], 2, 64)
            except ValueError:
                pass
        elif body.startswith("-0b"):
            try:
                return "!!int", parse_int("-" + body[3:], 2, 64)
            except ValueError:
                pass
    return "!!str", plain


def _float_to_int64_amd64(v: float) -> int:
    # Go's int64(f) on amd64 (CVTTSD2SI): truncation, and 0x8000000000000000 for NaN/out of range.
    if math.isnan(v) or math.isinf(v):
        return _INT64_MIN
    t = int(v)
    if not _INT64_MIN <= t <= _INT64_MAX:
        return _INT64_MIN
    return t


def parse_yaml_duration(value: Any, *, quoted: bool = False, line: int | None = None,
                        text: str | None = None) -> int | None:
    """Decode a YAML scalar into a time.Duration (int ns) the way Litestream's config does.

    ``value`` is either the raw scalar text (str; resolved like yaml.v2 unless ``quoted``)
    or a value a YAML library already resolved (int/float/bool/None). A string goes through
    time.ParseDuration; an integer is nanoseconds; a float is truncated to int64 as Go does;
    null returns None (the field stays unset). Anything else raises YAMLDurationError with
    yaml.v2's message; ``text`` overrides the scalar text shown in it.
    """
    if isinstance(value, str) and not quoted:
        tag, resolved = yaml_v2_resolve(value)
        shown = value if text is None else text
    else:
        resolved = value
        shown = text if text is not None else _yaml_text(value)
        if isinstance(value, str):
            tag = "!!str"
        elif value is None:
            tag = "!!null"
        elif isinstance(value, bool):
            tag = "!!bool"
        elif isinstance(value, int):
            tag = "!!int"
        elif isinstance(value, float):
            tag = "!!float"
        else:
            tag = "!!" + type(value).__name__
    if tag == "!!null":
        return None
    if tag == "!!int" and isinstance(resolved, int) and not isinstance(resolved, bool):
        if _INT64_MIN <= resolved <= _INT64_MAX:
            return resolved
    elif tag == "!!float" and isinstance(resolved, float):
        if resolved <= 9.223372036854775807e18:
            return _float_to_int64_amd64(resolved)
    elif tag == "!!str" and isinstance(resolved, str):
        try:
            return parse_duration(resolved)
        except ValueError:
            pass
    raise YAMLDurationError(tag, shown, line)


def _yaml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------
# Time formatting and parsing

def local_offset(unix_ns: int) -> int:
    """UTC offset in seconds of the local zone (TZ / /etc/localtime, as Go's time.Local) at that instant."""
    return _time.localtime(unix_ns // SECOND).tm_gmtoff or 0


def time_to_ns(t: datetime | int) -> tuple[int, int]:
    """(unix ns, utc offset seconds) of a datetime; a naive datetime is local time, like Python's
    astimezone(). An int is already unix nanoseconds and is shown in UTC."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            t = t.astimezone()
        off = t.utcoffset()
        assert off is not None
        offset = off.days * 86400 + off.seconds
        naive = t.replace(tzinfo=None) - timedelta(seconds=offset)
        delta = naive - datetime(1970, 1, 1)
        ns = (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds * MICROSECOND
        return ns, offset
    return int(t), 0


def ms_to_ns(ms: int) -> int:
    """LTX header timestamps are unix milliseconds; convert without going through floats."""
    return int(ms) * MILLISECOND


def _civil_from_days(z: int) -> tuple[int, int, int]:
    # Proleptic Gregorian calendar for any day count, so year 0 (which Go accepts and Python's
    # date cannot hold) still formats.
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _civil(unix_ns: int, offset: int) -> tuple[str, int, int, int, int, int, int]:
    sec, nsec = divmod(unix_ns, SECOND)
    sec += offset
    days, sod = divmod(sec, 86400)
    y, m, d = _civil_from_days(days)
    year = f"{y:04d}" if y >= 0 else f"-{-y:04d}"
    return year, m, d, sod // 3600, sod // 60 % 60, sod % 60, nsec


def _zone(offset: int) -> str:
    if offset == 0:
        return "Z"
    # Go converts to whole minutes truncating toward zero, then prints the sign of that.
    zone = int(offset / 60)
    sign = "-" if zone < 0 else "+"
    zone = abs(zone)
    return f"{sign}{zone // 60:02d}:{zone % 60:02d}"


def _resolve(t: datetime | int, offset: int | None) -> tuple[int, int]:
    ns, off = time_to_ns(t)
    if offset is not None:
        off = offset
    return ns, off


def format_rfc3339(t: datetime | int, offset: int | None = None) -> str:
    """time.RFC3339 ("2006-01-02T15:04:05Z07:00"): whole seconds, fraction truncated.

    ``t`` is a datetime or unix nanoseconds; ``offset`` (seconds east of UTC) overrides the zone.
    """
    ns, off = _resolve(t, offset)
    y, mo, d, h, mi, s, _ = _civil(ns, off)
    return f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{_zone(off)}"


def format_rfc3339_nano(t: datetime | int, offset: int | None = None) -> str:
    """time.RFC3339Nano: nanoseconds with trailing zeros (and a bare point) removed."""
    ns, off = _resolve(t, offset)
    y, mo, d, h, mi, s, nsec = _civil(ns, off)
    frac = f".{nsec:09d}".rstrip("0") if nsec else ""
    return f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{_zone(off)}"


def format_rfc3339_milli(t: datetime | int, offset: int | None = None) -> str:
    """slog's time format: RFC3339 with exactly three (truncated) fractional digits."""
    ns, off = _resolve(t, offset)
    y, mo, d, h, mi, s, nsec = _civil(ns, off)
    return f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{nsec // MILLISECOND:03d}{_zone(off)}"


def format_time_only(t: datetime | int, offset: int | None = None) -> str:
    """time.TimeOnly ("15:04:05")."""
    ns, off = _resolve(t, offset)
    _, _, _, h, mi, s, _ = _civil(ns, off)
    return f"{h:02d}:{mi:02d}:{s:02d}"


_RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Works for year 0 too (Go accepts "0000-01-01T00:00:00Z"; Python's date does not).
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _is_digits(s: str) -> bool:
    return s != "" and all("0" <= c <= "9" for c in s)


def _parse_rfc3339_fast(s: str) -> tuple[int, int] | None:
    if len(s) < 19:
        return None
    parts = (s[0:4], s[5:7], s[8:10], s[11:13], s[14:16], s[17:19])
    if not all(len(p) == len(p.encode()) and _is_digits(p) for p in parts):
        return None
    year, month, day, hour, minute, sec = (int(p) for p in parts)
    if not (1 <= month <= 12 and 1 <= day <= _days_in(month, year) and hour <= 23 and minute <= 59
            and sec <= 59):
        return None
    if not (s[4] == "-" and s[7] == "-" and s[10] == "T" and s[13] == ":" and s[16] == ":"):
        return None
    rest = s[19:]
    nsec = 0
    if len(rest) >= 2 and rest[0] == "." and "0" <= rest[1] <= "9":
        n = 2
        while n < len(rest) and "0" <= rest[n] <= "9":
            n += 1
        nsec = int(rest[1:min(n, 10)].ljust(9, "0"))
        rest = rest[n:]
    offset = 0
    if rest != "Z":
        if len(rest) != 6:
            return None
        hh, mm = rest[1:3], rest[4:6]
        if not (_is_digits(hh) and _is_digits(mm)) or int(hh) > 23 or int(mm) > 59:
            return None
        if rest[0] not in "+-" or rest[3] != ":":
            return None
        offset = (int(hh) * 60 + int(mm)) * 60 * (-1 if rest[0] == "-" else 1)
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec - offset
    return secs * SECOND + nsec, offset


class _ParseError(ValueError):
    pass


def _perr(value: str, layout_elem: str, value_elem: str) -> _ParseError:
    return _ParseError(
        f"parsing time {go_time_quote(value)} as {go_time_quote(_RFC3339_LAYOUT)}: cannot parse "
        f"{go_time_quote(value_elem)} as {go_time_quote(layout_elem)}"
    )


def _perr_msg(value: str, msg: str) -> _ParseError:
    return _ParseError(f"parsing time {go_time_quote(value)}{msg}")


def _getnum(s: str, fixed: bool) -> tuple[int, str] | None:
    if not s or not "0" <= s[0] <= "9":
        return None
    if len(s) < 2 or not "0" <= s[1] <= "9":
        if fixed:
            return None
        return int(s[0]), s[1:]
    return int(s[:2]), s[2:]


def _parse_rfc3339_layout(value: str) -> tuple[int, int]:
    # time.Parse's general layout walk for "2006-01-02T15:04:05Z07:00". It is more lenient than
    # the fast path (1-digit hour, ',' before the fraction, +24:00 offsets), and time.Parse falls
    # back to it whenever the fast path rejects the input.
    v = value
    nsec = 0

    def skip(prefix: str) -> None:
        nonlocal v
        if not v.startswith(prefix):
            raise _perr(value, prefix, v)
        v = v[len(prefix):]

    hold = v
    if len(v) < 4 or not "0" <= v[0] <= "9" or not _is_digits(v[:4]):
        raise _perr(value, "2006", hold)
    year, v = int(v[:4]), v[4:]
    fields = []
    for prefix, elem, fixed, limit, name in (("-", "01", True, None, "month"), ("-", "02", True, None, ""),
                                             ("T", "15", False, 24, "hour"), (":", "04", True, 60, "minute"),
                                             (":", "05", True, 60, "second")):
        skip(prefix)
        hold = v
        got = _getnum(v, fixed)
        if got is None:
            raise _perr(value, elem, hold)
        num, v = got
        if name == "month" and not 1 <= num <= 12:
            raise _perr_msg(value, ": month out of range")
        if limit is not None and num >= limit:
            raise _perr_msg(value, f": {name} out of range")
        fields.append(num)
        if name == "second" and len(v) >= 2 and v[0] in ".," and "0" <= v[1] <= "9":
            n = 2
            while n < len(v) and "0" <= v[n] <= "9":
                n += 1
            nsec = int(v[1:min(n, 10)].ljust(9, "0"))
            v = v[n:]
    month, day, hour, minute, sec = fields
    hold = v
    offset = 0
    if v[:1] == "Z":
        v = v[1:]
    else:
        if len(v) < 6 or v[3] != ":":
            raise _perr(value, "Z07:00", hold)
        sign, hh, mm, v = v[0], v[1:3], v[4:6], v[6:]
        # Go parses the minutes only if the hours parsed, checks the ranges of whatever it
        # got, and reports a range problem before a syntax one.
        gh = _getnum(hh, True)
        gm = _getnum(mm, True) if gh is not None else None
        hr = gh[0] if gh is not None else 0
        mi = gm[0] if gm is not None else 0
        if mi > 60:
            raise _perr_msg(value, ": time zone offset minute out of range")
        if hr > 24:
            raise _perr_msg(value, ": time zone offset hour out of range")
        if gh is None or gm is None or sign not in "+-":
            raise _perr(value, "Z07:00", hold)
        offset = (hr * 60 + mi) * 60 * (-1 if sign == "-" else 1)
    if v:
        raise _perr_msg(value, f": extra text: {go_time_quote(v)}")
    if not 1 <= day <= _days_in(month, year):
        raise _perr_msg(value, ": day out of range")
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec - offset
    return secs * SECOND + nsec, offset


def parse_rfc3339_ns(s: str) -> tuple[int, int]:
    """time.Parse(time.RFC3339, s) as (unix nanoseconds, utc offset seconds).

    Accepts exactly what Go accepts: 'T' and 'Z' are case-sensitive, seconds are required,
    any number of fractional digits (truncated to ns; ',' also works), Z or ±hh:mm
    (the fallback path even allows a 1-digit hour and offsets up to +24:60).
    Raises ValueError with Go's message.
    """
    fast = _parse_rfc3339_fast(s)
    if fast is not None:
        return fast
    return _parse_rfc3339_layout(s)


def parse_rfc3339(s: str) -> datetime:
    """parse_rfc3339_ns as an aware datetime (microsecond precision; offsets Python cannot
    represent, i.e. >= 24h, are converted to UTC). Raises ValueError (year 0 included)."""
    ns, offset = parse_rfc3339_ns(s)
    us = ns // MICROSECOND
    try:
        utc = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    except OverflowError as e:
        raise ValueError(f"time {s!r} is outside the range Python datetimes can hold") from e
    if abs(offset) < 86400:
        return utc.astimezone(timezone(timedelta(seconds=offset)))
    return utc


# ---------------------------------------------------------------------------
# Floats


def _float_digits(x: float) -> tuple[str, int]:
    # Shortest round-trip digits (what Go's strconv uses for precision -1) and the decimal
    # point position: x == 0.DIGITS * 10**dp.
    if x == 0:
        return "", 0
    _sign, digits, exp = Decimal(repr(abs(x))).as_tuple()
    ds = "".join(map(str, digits)).lstrip("0")
    trimmed = ds.rstrip("0")
    assert isinstance(exp, int)
    exp += len(ds) - len(trimmed)
    return trimmed, len(trimmed) + exp


def _fmt_e(neg: bool, digits: str, dp: int) -> str:
    first = digits[0] if digits else "0"
    rest = digits[1:]
    exp = dp - 1 if digits else 0
    mant = first + ("." + rest if rest else "")
    sign = "-" if exp < 0 else "+"
    return ("-" if neg else "") + f"{mant}e{sign}{abs(exp):02d}"


def _fmt_f(neg: bool, digits: str, dp: int) -> str:
    ip = digits[:dp].ljust(dp, "0") if dp > 0 else "0"
    nfrac = max(len(digits) - dp, 0)
    frac = ""
    if nfrac:
        frac = "." + "".join(digits[i] if 0 <= i < len(digits) else "0" for i in range(dp, dp + nfrac))
    return ("-" if neg else "") + ip + frac


def format_float(x: float, fmt: str = "g") -> str:
    """strconv.FormatFloat(x, fmt, -1, 64) for fmt in 'e', 'f', 'g' (slog text uses 'g')."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    neg = math.copysign(1.0, x) < 0
    digits, dp = _float_digits(x)
    if fmt == "e":
        return _fmt_e(neg, digits, dp)
    if fmt == "f":
        return _fmt_f(neg, digits, dp)
    if fmt == "g":
        exp = dp - 1
        if digits and (exp < -4 or exp >= 6):
            return _fmt_e(neg, digits, dp)
        return _fmt_f(neg, digits, dp)
    raise ValueError(f"unsupported float format {fmt!r}")


def go_json_float(x: float) -> str:
    """encoding/json's float64 encoding."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"json: unsupported value: {format_float(x)}")
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = format_float(x, "e")
        # Go shortens a two-digit negative exponent: 1e-07 -> 1e-7.
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
        return s
    return format_float(x, "f")


# ---------------------------------------------------------------------------
# encoding/json MarshalIndent


def _json_str(s: str, escape_html: bool = True) -> str:
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
            elif ch == "\b":
                out.append("\\b")
            elif ch == "\f":
                out.append("\\f")
            elif cp < 0x20 or (escape_html and ch in "<>&"):
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


def _json_scalar(v: Any, escape_html: bool) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return go_json_float(v)
    if isinstance(v, str):
        return _json_str(v, escape_html)
    if isinstance(v, datetime):
        return '"' + format_rfc3339_nano(v) + '"'
    if isinstance(v, timedelta):
        return str((v.days * 86400 + v.seconds) * SECOND + v.microseconds * MICROSECOND)
    if isinstance(v, bytes | bytearray):
        return '"' + base64.b64encode(bytes(v)).decode("ascii") + '"'
    raise TypeError(f"json: unsupported type: {type(v).__name__}")


def _json_indent(v: Any, indent: str, level: int, out: list[str], escape_html: bool) -> None:
    if isinstance(v, dict):
        if not v:
            out.append("{}")
            return
        out.append("{")
        first = True
        for k, item in v.items():
            out.append("" if first else ",")
            first = False
            out.append("\n" + indent * (level + 1) + _json_str(str(k), escape_html) + ": ")
            _json_indent(item, indent, level + 1, out, escape_html)
        out.append("\n" + indent * level + "}")
    elif isinstance(v, list | tuple):
        if not v:
            out.append("[]")
            return
        out.append("[")
        for i, item in enumerate(v):
            out.append("," if i else "")
            out.append("\n" + indent * (level + 1))
            _json_indent(item, indent, level + 1, out, escape_html)
        out.append("\n" + indent * level + "]")
    else:
        out.append(_json_scalar(v, escape_html))


def go_json_dumps(obj: Any, indent: str | None = "  ", newline: bool = True, escape_html: bool = True) -> str:
    """json.MarshalIndent(obj, "", indent) (+ "\\n" as fmt.Println adds); indent=None is json.Marshal.

    Dict key order is kept as given (Go structs marshal in field order). A Go nil slice
    marshals as null: pass None for that; [] prints "[]". Strings get Go's escaping
    (<, >, & as \\u003c... unless escape_html is False, as with Encoder.SetEscapeHTML(false);
    \\b, \\f, \\n, \\r, \\t short forms; other controls, U+2028/U+2029 as \\u00XX/\\u2028;
    invalid UTF-8 as \\ufffd; other non-ASCII raw). Datetimes marshal as RFC3339Nano,
    timedeltas as integer nanoseconds, bytes as base64, as Go's time.Time/Duration/[]byte do.
    """
    if indent is None:
        text = _json_compact(obj, escape_html)
    else:
        parts: list[str] = []
        _json_indent(obj, indent, 0, parts, escape_html)
        text = "".join(parts)
    return text + "\n" if newline else text


def _json_compact(v: Any, escape_html: bool) -> str:
    if isinstance(v, dict):
        return "{" + ",".join(_json_str(str(k), escape_html) + ":" + _json_compact(x, escape_html)
                              for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_json_compact(x, escape_html) for x in v) + "]"
    return _json_scalar(v, escape_html)


# ---------------------------------------------------------------------------
# go-humanize


_SI_SIZES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def humanize_bytes(n: int) -> str:
    """humanize.Bytes (go-humanize v1.0.1): "0 B", "9 B", "1.0 kB", "21 kB", "1.2 MB", "10 MB"."""
    n = int(n)
    if n < 0:
        # Litestream passes uint64(size); a negative int64 wraps the same way.
        n &= _UINT64_MAX
    if n < 10:
        return f"{n} B"
    # Mirrors Go's float64 arithmetic: floor(log(n)/log(1000)), then round to one decimal with
    # floor(x*10+0.5)/10, and "%.0f"/"%.1f" (both sides round half to even on the binary value).
    e = math.floor(math.log(float(n)) / math.log(1000.0))
    val = math.floor(float(n) / math.pow(1000.0, e) * 10 + 0.5) / 10
    return (f"{val:.1f}" if val < 10 else f"{val:.0f}") + " " + _SI_SIZES[int(e)]


# ---------------------------------------------------------------------------
# text/tabwriter

FILTER_HTML = 1
STRIP_ESCAPE = 2
ALIGN_RIGHT = 4
DISCARD_EMPTY_COLUMNS = 8
TAB_INDENT = 16
DEBUG = 32

_ESCAPE = 0xFF


class TabWriter:
    """text/tabwriter.Writer (elastic tabstops), working on the UTF-8 bytes as Go does.

    Cells are terminated by '\\t' (or '\\v'); lines by '\\n' (or '\\f', which also flushes).
    The last cell of a line is never padded; a column is aligned only over a contiguous run
    of lines that have a cell in it. Widths count runes (invalid bytes count one each).
    Litestream uses TabWriter(minwidth=0, tabwidth=8, padding=2, padchar=' ', flags=0).
    """

    def __init__(self, minwidth: int = 0, tabwidth: int = 8, padding: int = 2, padchar: str = " ",
                 flags: int = 0) -> None:
        if minwidth < 0 or tabwidth < 0 or padding < 0:
            raise ValueError("negative minwidth, tabwidth, or padding")
        if len(padchar) != 1 or ord(padchar) > 0x7F:
            raise ValueError("padchar must be one ASCII character")
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padbyte = padchar.encode()
        if padchar == "\t":
            flags &= ~ALIGN_RIGHT
        self.flags = flags
        self._out = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._cell = [0, 0, False]  # size in bytes, width in runes, htab-terminated
        self._end_char = 0
        self._lines: list[list[list[Any]]] = [[]]
        self._widths: list[int] = []

    # -- output helpers

    def _write_padding(self, textw: int, cellw: int, use_tabs: bool) -> None:
        if self.padbyte == b"\t" or use_tabs:
            if self.tabwidth == 0:
                return
            cellw = (cellw + self.tabwidth - 1) // self.tabwidth * self.tabwidth
            n = cellw - textw
            if n < 0:
                raise RuntimeError("internal error")
            self._out += b"\t" * ((n + self.tabwidth - 1) // self.tabwidth)
            return
        self._out += self.padbyte * (cellw - textw)

    def _write_lines(self, pos: int, line0: int, line1: int) -> int:
        for i in range(line0, line1):
            line = self._lines[i]
            use_tabs = bool(self.flags & TAB_INDENT)
            for j, (size, width, _htab) in enumerate(line):
                if j > 0 and self.flags & DEBUG:
                    self._out += b"|"
                if size == 0:
                    if j < len(self._widths):
                        self._write_padding(width, self._widths[j], use_tabs)
                else:
                    use_tabs = False
                    if not self.flags & ALIGN_RIGHT:
                        self._out += self._buf[pos:pos + size]
                        pos += size
                        if j < len(self._widths):
                            self._write_padding(width, self._widths[j], False)
                    else:
                        if j < len(self._widths):
                            self._write_padding(width, self._widths[j], False)
                        self._out += self._buf[pos:pos + size]
                        pos += size
            if i + 1 == len(self._lines):
                size = self._cell[0]
                self._out += self._buf[pos:pos + size]
                pos += size
            else:
                self._out += b"\n"
        return pos

    def _format(self, pos: int, line0: int, line1: int) -> int:
        column = len(self._widths)
        this = line0
        while this < line1:
            line = self._lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            # A cell in this column starts a block: print what precedes it, then size the
            # column over the contiguous lines that have it and recurse for the columns right of it.
            pos = self._write_lines(pos, line0, this)
            line0 = this
            width = self.minwidth
            discardable = True
            while this < line1:
                line = self._lines[this]
                if column >= len(line) - 1:
                    break
                size_w = line[column][1] + self.padding
                if size_w > width:
                    width = size_w
                if line[column][1] > 0 or line[column][2]:
                    discardable = False
                this += 1
            if discardable and self.flags & DISCARD_EMPTY_COLUMNS:
                width = 0
            self._widths.append(width)
            pos = self._format(pos, line0, this)
            self._widths.pop()
            line0 = this
        return self._write_lines(pos, line0, line1)

    # -- input

    def _append(self, data: bytes | bytearray) -> None:
        self._buf += data
        self._cell[0] += len(data)

    def _update_width(self) -> None:
        seg = bytes(self._buf[self._pos:])
        self._cell[1] += len(seg.decode("utf-8", "surrogateescape"))
        self._pos = len(self._buf)

    def _start_escape(self, ch: int) -> None:
        self._end_char = {_ESCAPE: _ESCAPE, 0x3C: 0x3E, 0x26: 0x3B}[ch]

    def _end_escape(self) -> None:
        if self._end_char == _ESCAPE:
            self._update_width()
            if not self.flags & STRIP_ESCAPE:
                self._cell[1] -= 2
        elif self._end_char == 0x3B:
            self._cell[1] += 1
        self._pos = len(self._buf)
        self._end_char = 0

    def _terminate_cell(self, htab: bool) -> int:
        self._cell[2] = htab
        line = self._lines[-1]
        line.append(self._cell)
        self._cell = [0, 0, False]
        return len(line)

    def write(self, text: str | bytes) -> None:
        data = go_bytes(text)
        n = 0
        for i, ch in enumerate(data):
            if self._end_char == 0:
                if ch in (0x09, 0x0B, 0x0A, 0x0C):
                    self._append(data[n:i])
                    self._update_width()
                    n = i + 1
                    ncells = self._terminate_cell(ch == 0x09)
                    if ch in (0x0A, 0x0C):
                        self._lines.append([])
                        if ch == 0x0C or ncells == 1:
                            # Go flushes here; only '\f' changes the result (it ends all columns).
                            self.flush()
                            if ch == 0x0C and self.flags & DEBUG:
                                self._out += b"---\n"
                elif ch == _ESCAPE:
                    self._append(data[n:i])
                    self._update_width()
                    n = i + 1 if self.flags & STRIP_ESCAPE else i
                    self._start_escape(ch)
                elif ch in (0x3C, 0x26) and self.flags & FILTER_HTML:
                    self._append(data[n:i])
                    self._update_width()
                    n = i
                    self._start_escape(ch)
            elif ch == self._end_char:
                j = i if (ch == _ESCAPE and self.flags & STRIP_ESCAPE) else i + 1
                self._append(data[n:j])
                n = i + 1
                self._end_escape()
        self._append(data[n:])

    def flush(self) -> None:
        if self._cell[0] > 0:
            if self._end_char != 0:
                self._end_escape()
            self._terminate_cell(False)
        self._format(0, 0, len(self._lines))
        self._reset()

    def getvalue(self) -> str:
        """Everything written out so far (call flush() first), decoded like Go's bytes."""
        return bytes(self._out).decode("utf-8", "surrogateescape")

    def getbytes(self) -> bytes:
        return bytes(self._out)


def tabwriter(rows: Iterable[Sequence[Any]], minwidth: int = 0, tabwidth: int = 8, padding: int = 2,
              padchar: str = " ", flags: int = 0) -> str:
    """Format rows the way Litestream does with fmt.Fprintf(w, "%s\\t%s\\t...\\t%s\\n") + Flush.

    Cells are joined with tabs and each row ends with a newline; non-str cells use str().
    """
    tw = TabWriter(minwidth, tabwidth, padding, padchar, flags)
    tw.write("".join("\t".join(str(c) for c in row) + "\n" for row in rows))
    tw.flush()
    return tw.getvalue()
