"""Go's ``flag`` package as Litestream's subcommands use it (``flag.NewFlagSet(name, flag.ContinueOnError)``).

Command-line syntax (checked against the reference binary):

* ``-flag`` and ``--flag`` are the same; ``-flag=value`` works for every kind of flag.
* A non-bool flag takes the next argument as its value (even one starting with "-");
  a bool flag never does: ``-json false`` leaves ``false`` as a positional argument.
* Parsing stops at the first non-flag argument, at a lone "-" (kept as a positional),
  and after "--" (consumed).
* ``-h``/``-help`` (any number of dashes, any ``=value``) request help unless the set defines them.

What Litestream does on a parse failure (reproduced by :func:`report_parse_error`):

* error (``FlagError``): the flag package writes ``<msg>\\n`` to **stderr**, then calls the
  command's Usage, which prints the help text to **stdout**; the command returns the error
  and ``main`` writes ``Error: <msg>\\n`` to **stderr**; exit status 1.
  Merged output therefore reads: msg, usage text, "Error: msg".
* help (``HelpRequested``): Usage goes to **stdout**; ``main`` exits 0 only if one of the
  process arguments is exactly ``-h``, ``-help`` or ``--help`` (so ``--h`` and ``-h=1`` exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from litestream.gofmt import format_duration, go_quote, parse_bool, parse_duration, parse_int

__all__ = [
    "Flag",
    "FlagError",
    "FlagSet",
    "HelpRequested",
    "ParseResult",
    "report_parse_error",
]


class FlagError(Exception):
    """A flag parse error; ``message`` is exactly what Go prints (without "Error: ")."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HelpRequested(Exception):
    """flag.ErrHelp: -h or -help was given and the set does not define it."""

    def __init__(self) -> None:
        super().__init__("flag: help requested")


@dataclass
class Flag:
    name: str
    kind: str  # "bool", "string", "int", "duration" or "var"
    default: Any
    usage: str = ""
    parser: Callable[[str], Any] | None = None
    is_bool: bool = False
    formatter: Callable[[Any], str] | None = None

    def default_text(self) -> str:
        """The flag's default as Go's Value.String() shows it (used by PrintDefaults)."""
        v = self.default
        if self.formatter is not None:
            return self.formatter(v)
        if self.kind == "bool":
            return "true" if v else "false"
        if self.kind == "duration":
            return format_duration(v)
        return "" if v is None else str(v)


class ParseResult:
    """Flag values by name. Attribute access maps "-" to "_" (``r.if_db_not_exists``);
    item access takes the exact flag name (``r["if-db-not-exists"]``)."""

    def __init__(self, values: dict[str, Any], args: list[str], set_flags: list[str]) -> None:
        self._values = values
        self.args = args
        self.set_flags = frozenset(set_flags)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, attr: str) -> Any:
        values = self.__dict__.get("_values", {})
        if attr in values:
            return values[attr]
        dashed = attr.replace("_", "-")
        if dashed in values:
            return values[dashed]
        raise AttributeError(attr)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def is_set(self, name: str) -> bool:
        """Whether the flag appeared on the command line (Go's fs.Visit)."""
        return name in self.set_flags

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"ParseResult({self._values!r}, args={self.args!r})"


def _int_parser(s: str) -> int:
    try:
        return parse_int(s, 0, 64)
    except ValueError as e:
        # The flag package folds strconv errors into "parse error" / "value out of range".
        raise ValueError("value out of range" if str(e) == "value out of range" else "parse error") from None


def _duration_parser(s: str) -> int:
    try:
        return parse_duration(s)
    except ValueError:
        raise ValueError("parse error") from None


def _bool_parser(s: str) -> bool:
    try:
        return parse_bool(s)
    except ValueError:
        raise ValueError("parse error") from None


class FlagSet:
    """A Go FlagSet with ContinueOnError handling.

    ``usage`` is the command's Usage function; parse() never calls it nor prints anything:
    errors are raised and the caller reproduces Go's output with report_parse_error().
    """

    def __init__(self, name: str, usage: Callable[[], None] | None = None) -> None:
        self.name = name
        self.usage = usage if usage is not None else self.default_usage
        self._formal: dict[str, Flag] = {}
        self._values: dict[str, Any] = {}
        self._actual: list[str] = []
        self._args: list[str] = []
        self._parsed = False

    # -- definitions

    def _define(self, flag: Flag) -> None:
        if flag.name.startswith("-"):
            raise ValueError(f"flag {go_quote(flag.name)} begins with -")
        if "=" in flag.name:
            raise ValueError(f"flag {go_quote(flag.name)} contains =")
        if flag.name in self._formal:
            prefix = f"{self.name} " if self.name else ""
            raise ValueError(f"{prefix}flag redefined: {flag.name}")
        self._formal[flag.name] = flag
        self._values[flag.name] = flag.default

    def bool(self, name: str, default: bool = False, usage: str = "") -> None:
        self._define(Flag(name, "bool", bool(default), usage, _bool_parser, is_bool=True))

    def string(self, name: str, default: str = "", usage: str = "") -> None:
        self._define(Flag(name, "string", default, usage, str))

    def int(self, name: str, default: int = 0, usage: str = "") -> None:
        self._define(Flag(name, "int", default, usage, _int_parser))

    def duration(self, name: str, default_ns: int = 0, usage: str = "") -> None:
        """A time.Duration flag; the value is integer nanoseconds."""
        self._define(Flag(name, "duration", default_ns, usage, _duration_parser))

    def var(self, name: str, parser: Callable[[str], Any], default: Any = None, usage: str = "", *,
            is_bool: bool = False, formatter: Callable[[Any], str] | None = None) -> None:
        """A custom flag.Value. ``parser`` returns the new value or raises ValueError(msg), which
        becomes ``invalid value "<arg>" for flag -<name>: <msg>``. With ``is_bool`` the flag
        behaves like a bool flag (no separate value argument; bare ``-name`` passes "true")."""
        self._define(Flag(name, "var", default, usage, parser, is_bool=is_bool, formatter=formatter))

    # -- queries

    def lookup(self, name: str) -> Flag | None:
        return self._formal.get(name)

    def value(self, name: str) -> Any:
        return self._values[name]

    def args(self) -> list[str]:
        return list(self._args)

    def nargs(self) -> int:
        return len(self._args)

    def arg(self, i: int) -> str:
        """fs.Arg(i): "" when out of range, as in Go."""
        return self._args[i] if 0 <= i < len(self._args) else ""

    def parsed(self) -> bool:
        return self._parsed

    def visit(self) -> Iterator[Flag]:
        """Flags set on the command line, in lexical order (Go's fs.Visit)."""
        for name in sorted(set(self._actual)):
            yield self._formal[name]

    def visit_all(self) -> Iterator[Flag]:
        for name in sorted(self._formal):
            yield self._formal[name]

    def set(self, name: str, value: str) -> None:
        """fs.Set: parse ``value`` into the flag and mark it as set."""
        flag = self._formal.get(name)
        if flag is None:
            raise FlagError(f"no such flag -{name}")
        assert flag.parser is not None
        self._values[name] = flag.parser(value)
        self._actual.append(name)

    # -- parsing

    def parse(self, arguments: Sequence[str]) -> ParseResult:
        """Parse ``arguments`` (without the command name). Raises FlagError or HelpRequested."""
        self._parsed = True
        self._args = list(arguments)
        while self._parse_one():
            pass
        return ParseResult(dict(self._values), list(self._args), sorted(set(self._actual)))

    def _parse_one(self) -> bool:
        if not self._args:
            return False
        s = self._args[0]
        if len(s) < 2 or s[0] != "-":
            return False
        num_minuses = 1
        if s[1] == "-":
            num_minuses += 1
            if len(s) == 2:
                self._args = self._args[1:]
                return False
        name = s[num_minuses:]
        if len(name) == 0 or name[0] in "-=":
            raise FlagError(f"bad flag syntax: {s}")

        self._args = self._args[1:]
        has_value = False
        value = ""
        eq = name.find("=", 1)
        if eq > 0:
            value = name[eq + 1:]
            has_value = True
            name = name[:eq]

        flag = self._formal.get(name)
        if flag is None:
            if name in ("help", "h"):
                raise HelpRequested()
            raise FlagError(f"flag provided but not defined: -{name}")

        assert flag.parser is not None
        if flag.is_bool:
            if has_value:
                try:
                    self._values[name] = flag.parser(value)
                except ValueError as e:
                    raise FlagError(f"invalid boolean value {go_quote(value)} for -{name}: {e}") from None
            else:
                try:
                    self._values[name] = flag.parser("true")
                except ValueError as e:
                    raise FlagError(f"invalid boolean flag {name}: {e}") from None
        else:
            if not has_value and self._args:
                has_value = True
                value, self._args = self._args[0], self._args[1:]
            if not has_value:
                raise FlagError(f"flag needs an argument: -{name}")
            try:
                self._values[name] = flag.parser(value)
            except ValueError as e:
                raise FlagError(f"invalid value {go_quote(value)} for flag -{name}: {e}") from None
        self._actual.append(name)
        return True

    # -- default usage (Litestream always installs its own, this is Go's fallback)

    def print_defaults(self, out: TextIO | None = None) -> None:
        """FlagSet.PrintDefaults, written to stderr by default as Go does."""
        out = out if out is not None else sys.stderr
        for flag in self.visit_all():
            line = f"  -{flag.name}"
            typename, usage = _unquote_usage(flag)
            if typename:
                line += " " + typename
            line += "\t" if len(line) <= 4 else "\n    \t"
            line += usage.replace("\n", "\n    \t")
            default = flag.default_text()
            if not _is_zero(flag, default):
                if flag.kind == "string":
                    line += f" (default {go_quote(default)})"
                else:
                    line += f" (default {default})"
            out.write(line + "\n")

    def default_usage(self) -> None:
        out = sys.stderr
        if self.name:
            out.write(f"Usage of {self.name}:\n")
        else:
            out.write("Usage:\n")
        self.print_defaults(out)


def _unquote_usage(flag: Flag) -> tuple[str, str]:
    usage = flag.usage
    start = usage.find("`")
    if start >= 0:
        end = usage.find("`", start + 1)
        if end >= 0:
            name = usage[start + 1:end]
            return name, usage[:start] + name + usage[end + 1:]
    if flag.is_bool:
        return "", usage
    return {"duration": "duration", "int": "int", "string": "string"}.get(flag.kind, "value"), usage


def _is_zero(flag: Flag, text: str) -> bool:
    zero = {"bool": "false", "int": "0", "duration": "0s", "string": ""}.get(flag.kind)
    if zero is None:
        return text == ""
    return text == zero


def report_parse_error(err: FlagError | HelpRequested, usage: Callable[[], None], argv: Sequence[str],
                       *, stderr: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Print what Litestream prints after fs.Parse fails and return the exit status.

    ``argv`` is the whole process argument list after the program name (os.Args[1:]),
    because main() looks there for a literal -h/-help/--help. ``usage`` prints the
    command's help text to stdout. Streams are flushed between writes so that a merged
    capture (2>&1) shows the same order as Go's unbuffered writes.
    """
    err_out = stderr if stderr is not None else sys.stderr
    std_out = stdout if stdout is not None else sys.stdout
    if isinstance(err, HelpRequested):
        usage()
        std_out.flush()
        return 0 if any(a in ("-h", "-help", "--help") for a in argv) else 1
    err_out.write(err.message + "\n")
    err_out.flush()
    usage()
    std_out.flush()
    err_out.write(f"Error: {err.message}\n")
    err_out.flush()
    return 1
