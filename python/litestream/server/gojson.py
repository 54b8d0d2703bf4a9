"""Go's encoding/json decoding into a struct, with Go's error messages: the control socket's request
bodies (json.Decoder.Decode, as server.go reads them) and its replies in the client commands
(json.Unmarshal). What a client sees in `details` or after `failed to parse response:` is then what the
reference prints for the same bytes.

Two passes, like Go: a syntax scan of one JSON value (Go's scanner messages: `invalid character 'b'
looking for beginning of object key string`, `unexpected EOF`, ...), then the typed decode, which keeps
going after a type mismatch and reports the first one (`json: cannot unmarshal number into Go struct
field StartRequest.path of type string`). Keys match fields exactly or else case-insensitively; unknown
keys are ignored; null leaves the zero value; invalid UTF-8 and lone surrogates become U+FFFD."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from litestream.gofmt import go_quote, parse_rfc3339_ns

__all__ = ["ANY", "BOOL", "INT", "INT64", "STRING", "TIME", "TIME_PTR", "UINT64", "GoJSONError", "GoTime",
           "Slice", "Struct", "decode", "format_time"]

MAX_DEPTH = 10000  # Go's scanner limit on nesting


class GoJSONError(ValueError):
    """The message Go's decoder returns for the same input."""


@dataclass(frozen=True)
class Struct:
    name: str  # Go's qualified type name, e.g. "litestream.StartRequest"
    fields: dict[str, Any]  # JSON name -> type

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Slice:
    elem: Any

    @property
    def name(self) -> str:
        return "[]" + _type_name(self.elem)


class GoTime(NamedTuple):
    ns: int  # unix nanoseconds
    offset: int  # seconds east of UTC, as parsed


STRING, BOOL, INT, INT64, UINT64 = "string", "bool", "int", "int64", "uint64"
TIME, TIME_PTR, ANY = "time", "*time", "any"  # time.Time, *time.Time, interface{}
_INT_RANGE = {INT: (-(1 << 63), (1 << 63) - 1), INT64: (-(1 << 63), (1 << 63) - 1), UINT64: (0, (1 << 64) - 1)}
ZERO_TIME = GoTime(-62135596800 * 10**9, 0)  # Go's time.Time{} (0001-01-01T00:00:00Z)


def format_time(t: GoTime, nano: bool = True) -> str:
    from litestream.gofmt import format_rfc3339, format_rfc3339_nano

    return (format_rfc3339_nano if nano else format_rfc3339)(t.ns, t.offset)


def _type_name(t: Any) -> str:
    if isinstance(t, Struct | Slice):
        return t.name
    return {TIME: "time.Time", TIME_PTR: "time.Time", ANY: "interface {}"}.get(t, t)


def _zero(t: Any) -> Any:
    if isinstance(t, Struct):
        return {k: _zero(v) for k, v in t.fields.items()}
    if not isinstance(t, str):
        return None  # a slice: Go's nil
    return {STRING: "", BOOL: False, INT: 0, INT64: 0, UINT64: 0, TIME: ZERO_TIME}.get(t)


# ------------------------------------------------------------------------------------------ syntax

class _Syntax(Exception):
    pass


class _EOF(Exception):
    pass


_WS = b" \t\r\n"
_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"


def _quote_char(c: int) -> str:
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


def _bad(c: int, context: str) -> _Syntax:
    return _Syntax(f"invalid character {_quote_char(c)} {context}")


class _Scanner:
    """One JSON value from data[pos:], checked byte by byte as Go's scanner does."""

    def __init__(self, data: bytes, top_number_may_end_at_eof: bool) -> None:
        self.d = data
        self.n = len(data)
        self.eof_ok = top_number_may_end_at_eof

    def _ws(self, i: int) -> int:
        while i < self.n and self.d[i] in _WS:
            i += 1
        return i

    def _at(self, i: int) -> int:
        if i >= self.n:
            raise _EOF
        return self.d[i]

    def value(self, i: int) -> int:
        """End offset of the value starting at (or after whitespace at) i."""
        stack: list[str] = []  # "obj" or "arr" per open container
        while True:
            i = self._ws(i)
            c = self._at(i)
            done = True
            if c == 0x7B:  # {
                i = self._ws(i + 1)
                if self._at(i) == 0x7D:
                    i += 1
                else:
                    i = self._key(i)
                    stack.append("obj")
                    done = False
            elif c == 0x5B:  # [
                i = self._ws(i + 1)
                if self._at(i) == 0x5D:
                    i += 1
                else:
                    stack.append("arr")
                    done = False
            elif c == 0x22:
                i = self._string(i)
            elif c == 0x2D or c in _DIGITS:
                i = self._number(i, top=not stack)
            elif c in b"tfn":
                i = self._literal(i)
            else:
                raise _bad(c, "looking for beginning of value")
            if len(stack) > MAX_DEPTH:
                raise _Syntax("exceeded max depth")
            if not done:
                continue
            # A value ended: close the containers it completes, or move on to the next element.
            while stack:
                i = self._ws(i)
                c = self._at(i)
                if stack[-1] == "obj":
                    if c == 0x2C:
                        i = self._key(self._ws(i + 1))
                        break
                    if c != 0x7D:
                        raise _bad(c, "after object key:value pair")
                else:
                    if c == 0x2C:
                        i += 1
                        break
                    if c != 0x5D:
                        raise _bad(c, "after array element")
                stack.pop()
                i += 1
            else:
                return i

    def _key(self, i: int) -> int:
        """A key and its colon; returns where its value starts."""
        c = self._at(i)
        if c != 0x22:
            raise _bad(c, "looking for beginning of object key string")
        i = self._ws(self._string(i))
        c = self._at(i)
        if c != 0x3A:
            raise _bad(c, "after object key")
        return i + 1

    def _string(self, i: int) -> int:
        i += 1
        while True:
            c = self._at(i)
            if c == 0x22:
                return i + 1
            if c == 0x5C:
                i += 1
                c = self._at(i)
                if c == 0x75:  # \uXXXX
                    for k in range(1, 5):
                        h = self._at(i + k)
                        if h not in _HEX:
                            raise _bad(h, "in \\u hexadecimal character escape")
                    i += 4
                elif c not in b'"\\/bfnrt':
                    raise _bad(c, "in string escape code")
            elif c < 0x20:
                raise _bad(c, "in string literal")
            i += 1

    def _peek_num(self, i: int, top: bool) -> int | None:
        """The byte at i, or None where the number may end at the end of the input."""
        if i >= self.n:
            if top and self.eof_ok:
                return None
            raise _EOF
        return self.d[i]

    def _number(self, i: int, top: bool) -> int:
        if self.d[i] == 0x2D:
            i += 1
            c = self._at(i)
            if c not in _DIGITS:
                raise _bad(c, "in numeric literal")
        if self.d[i] == 0x30:
            i += 1
        else:
            while i < self.n and self.d[i] in _DIGITS:
                i += 1
        c = self._peek_num(i, top)
        if c == 0x2E:
            i += 1
            c = self._at(i)
            if c not in _DIGITS:
                raise _bad(c, "after decimal point in numeric literal")
            while i < self.n and self.d[i] in _DIGITS:
                i += 1
            c = self._peek_num(i, top)
        if c in (0x65, 0x45):
            i += 1
            c = self._at(i)
            if c in (0x2B, 0x2D):
                i += 1
                c = self._at(i)
            if c not in _DIGITS:
                raise _bad(c, "in exponent of numeric literal")
            while i < self.n and self.d[i] in _DIGITS:
                i += 1
            self._peek_num(i, top)
        return i

    def _literal(self, i: int) -> int:
        word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[self.d[i]]
        for k in range(1, len(word)):
            c = self._at(i + k)
            if c != word[k]:
                raise _bad(c, f"in literal {word.decode()} (expecting {_quote_char(word[k])})")
        return i + len(word)


# -------------------------------------------------------------------------------------------- typed

class _Num(str):
    """A number literal as written (Go reports it in some errors)."""


class _Obj(list):
    """An object's (key, value) pairs in order."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _fix(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s)


def _kind(v: Any) -> str:
    if isinstance(v, _Obj):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, _Num):
        return "number"
    if isinstance(v, bool):
        return "bool"
    return "string"


class _Decoder:
    def __init__(self) -> None:
        self.saved: GoJSONError | None = None  # Go keeps the first type mismatch and goes on

    def mismatch(self, what: str, t: Any, ctx: tuple[str, str] | None) -> None:
        if self.saved is not None:
            return
        where = f"Go struct field {ctx[0]}.{ctx[1]}" if ctx else "Go value"
        self.saved = GoJSONError(f"json: cannot unmarshal {what} into {where} of type {_type_name(t)}")

    def value(self, v: Any, t: Any, ctx: tuple[str, str] | None, current: Any) -> Any:
        if v is None:
            return current  # null leaves what is there
        if t == ANY:
            return _plain(v)
        if isinstance(t, Struct):
            if not isinstance(v, _Obj):
                self.mismatch(_kind(v), t, ctx)
                return current
            out = dict(current) if isinstance(current, dict) else _zero(t)
            folded = {k.casefold(): k for k in t.fields}
            for key, item in v:
                key = _fix(key)
                name = key if key in t.fields else folded.get(key.casefold())
                if name is None:
                    continue
                path = f"{ctx[1]}.{name}" if ctx else name
                out[name] = self.value(item, t.fields[name], (t.short, path), out[name])
            return out
        if isinstance(t, Slice):
            if not isinstance(v, list) or isinstance(v, _Obj):
                self.mismatch(_kind(v), t, ctx)
                return current
            return [self.value(item, t.elem, ctx, _zero(t.elem)) for item in v]
        if t in (TIME, TIME_PTR):
            if not isinstance(v, str) or isinstance(v, _Num):
                raise GoJSONError("Time.UnmarshalJSON: input is not a JSON string")
            try:
                return GoTime(*parse_rfc3339_ns(_fix(v)))
            except ValueError as e:
                raise GoJSONError(str(e)) from None  # an Unmarshaler's error ends the decode at once
        if t == STRING:
            if isinstance(v, str) and not isinstance(v, _Num):
                return _fix(v)
        elif t == BOOL:
            if isinstance(v, bool):
                return v
        elif t in _INT_RANGE and isinstance(v, _Num):
            lo, hi = _INT_RANGE[t]
            if re.fullmatch(r"-?[0-9]+", v) and lo <= int(v) <= hi:
                return int(v)
            self.mismatch(f"number {v}", t, ctx)
            return current
        self.mismatch(_kind(v), t, ctx)
        return current


def _plain(v: Any) -> Any:
    if isinstance(v, _Obj):
        return {_fix(k): _plain(x) for k, x in v}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, _Num):
        return float(v)
    if isinstance(v, str):
        return _fix(v)
    return v


def decode(data: bytes, t: Struct, stream: bool = True) -> dict[str, Any]:
    """The struct `t` decoded from `data`, as json.NewDecoder(r).Decode (stream: the first value, the
    rest ignored) or json.Unmarshal (the whole input) would fill it; GoJSONError with Go's message."""
    scanner = _Scanner(data, top_number_may_end_at_eof=True)
    start = scanner._ws(0)
    if start >= len(data):
        raise GoJSONError("EOF" if stream else "unexpected end of JSON input")
    try:
        end = scanner.value(start)
        if not stream:
            rest = scanner._ws(end)
            if rest < len(data):
                raise _bad(data[rest], "after top-level value")
    except _EOF:
        raise GoJSONError("unexpected EOF" if stream else "unexpected end of JSON input") from None
    except _Syntax as e:
        raise GoJSONError(str(e)) from None
    try:
        raw = json.loads(data[start:end].decode("utf-8", "replace"), parse_int=_Num, parse_float=_Num,
                         object_pairs_hook=_Obj)
    except RecursionError:
        raise GoJSONError("exceeded max depth") from None
    dec = _Decoder()
    out = dec.value(raw, t, None, _zero(t))
    if dec.saved is not None:
        raise dec.saved
    return out
