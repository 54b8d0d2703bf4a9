"""Go flag-package emulation (litestream.cli.goflag).

Expected strings come from the reference binary (litestream 0.5.17, /tmp/refvenv/bin/litestream),
captured with e.g. `litestream restore -bogus` (stderr shown after "Error:"), and from Go's
src/flag/flag.go, src/strconv/atoi.go and src/time/format.go semantics.
"""

from __future__ import annotations

import io

import pytest

from litestream.cli.goflag import FlagError, FlagSet, HelpRequested, report_parse_error


def _txid(s: str) -> int:
    # Stand-in for Litestream's txidVar: ltx.ParseTXID needs exactly 16 hex digits.
    if len(s) != 16 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise ValueError("invalid txid format")
    return int(s, 16)


def _level(s: str) -> int:
    # Stand-in for Litestream's levelVar (cmd/litestream/main.go).
    if s == "all":
        return -1
    try:
        n = int(s, 10)
    except ValueError:
        raise ValueError('invalid level: must be 0-9 or "all"') from None
    if not 0 <= n <= 9:
        raise ValueError("level must be between 0 and 9")
    return n


def restore_flags() -> FlagSet:
    """The flags `litestream restore` defines (cmd/litestream/restore.go)."""
    fs = FlagSet("litestream-restore", usage=lambda: None)
    fs.string("config", "")
    fs.bool("no-expand-env", False)
    fs.string("o", "")
    fs.var("txid", _txid, 0)
    fs.int("parallelism", 8)
    fs.bool("if-db-not-exists", False)
    fs.bool("if-replica-exists", False)
    fs.string("timestamp", "")
    fs.bool("dry-run", False)
    fs.bool("force", False)
    fs.bool("json", False)
    fs.bool("f", False)
    fs.duration("follow-interval", 1_000_000_000)
    fs.string("integrity-check", "none")
    return fs


# (argv after the command name, message printed by the reference binary)
ERRORS = [
    (["-bogus"], "flag provided but not defined: -bogus"),
    (["---x"], "bad flag syntax: ---x"),
    (["-=x"], "bad flag syntax: -=x"),
    (["--=x"], "bad flag syntax: --=x"),
    (["-o"], "flag needs an argument: -o"),
    (["-parallelism", "x"], 'invalid value "x" for flag -parallelism: parse error'),
    (["-parallelism", "99999999999999999999"],
     'invalid value "99999999999999999999" for flag -parallelism: value out of range'),
    (["-json=x"], 'invalid boolean value "x" for -json: parse error'),
    (["-txid", "zz"], 'invalid value "zz" for flag -txid: invalid txid format'),
    (["-follow-interval", "5"], 'invalid value "5" for flag -follow-interval: parse error'),
    (["-follow-interval", "5q"], 'invalid value "5q" for flag -follow-interval: parse error'),
    (["-follow-interval", "x"], 'invalid value "x" for flag -follow-interval: parse error'),
    # %q quoting of the bad value (strconv.Quote rules).
    (["-parallelism", 'a"b\tc\x01é'], 'invalid value "a\\"b\\tc\\x01é" for flag -parallelism: parse error'),
]


@pytest.mark.parametrize(("argv", "message"), ERRORS)
def test_parse_errors_match_reference(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as exc:
        restore_flags().parse(argv)
    assert exc.value.message == message
    assert str(exc.value) == message


def test_ltx_level_var_errors() -> None:
    # `litestream ltx -level x file:///tmp` (reference binary)
    fs = FlagSet("litestream-ltx", usage=lambda: None)
    fs.var("level", _level, 0)
    with pytest.raises(FlagError) as exc:
        fs.parse(["-level", "x", "file:///tmp"])
    assert exc.value.message == 'invalid value "x" for flag -level: invalid level: must be 0-9 or "all"'
    with pytest.raises(FlagError) as exc:
        fs.parse(["-level=10"])
    assert exc.value.message == 'invalid value "10" for flag -level: level must be between 0 and 9'
    assert fs.parse(["-level", "all", "db"]).level == -1


@pytest.mark.parametrize("argv", [["-h"], ["-help"], ["--help"], ["--h"], ["-h=1"], ["-help=x"],
                                  ["-o", "x", "-h"]])
def test_help_requested(argv: list[str]) -> None:
    with pytest.raises(HelpRequested):
        restore_flags().parse(argv)


def test_help_inside_values_or_after_positionals_is_not_help() -> None:
    r = restore_flags().parse(["-o", "-h", "db"])
    assert r.o == "-h" and r.args == ["db"]
    assert restore_flags().parse(["db", "-h"]).args == ["db", "-h"]


def test_syntax_forms() -> None:
    fs = restore_flags()
    r = fs.parse(["--o=/tmp/x", "-json", "--if-db-not-exists=true", "-txid", "000000000000000A",
                  "-parallelism=0x1_0", "-follow-interval", "1m30s", "file:///r", "-force"])
    assert r.o == "/tmp/x"
    assert r["if-db-not-exists"] is True and r.if_db_not_exists is True
    assert r.json is True
    assert r.txid == 10
    assert r.parallelism == 16
    assert r.follow_interval == 90_000_000_000
    assert r.force is False  # after the first positional nothing is parsed
    assert r.args == ["file:///r", "-force"]
    assert r.set_flags == {"o", "json", "if-db-not-exists", "txid", "parallelism", "follow-interval"}
    assert r.is_set("txid") and not r.is_set("f")
    assert [f.name for f in fs.visit()] == sorted(r.set_flags)
    assert fs.nargs() == 2 and fs.arg(0) == "file:///r" and fs.arg(5) == ""


def test_bool_flags_never_take_the_next_argument() -> None:
    # Reference §"Go flag conventions": `-json false` makes `false` a positional argument.
    r = restore_flags().parse(["-json", "false", "db"])
    assert r.json is True and r.args == ["false", "db"]
    for text, value in [("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
                        ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False),
                        ("False", False)]:
        assert restore_flags().parse([f"-json={text}"]).json is value
    with pytest.raises(FlagError, match='invalid boolean value "yes" for -json: parse error'):
        restore_flags().parse(["-json=yes"])


def test_terminators() -> None:
    assert restore_flags().parse(["--", "-json"]).args == ["-json"]
    r = restore_flags().parse(["-json", "--", "--", "x"])
    assert r.json is True and r.args == ["--", "x"]
    # A lone "-" is a positional argument and stops parsing.
    assert restore_flags().parse(["-", "-json"]).args == ["-", "-json"]
    # Non-bool flags take the next argument whatever it looks like.
    r = restore_flags().parse(["-o", "--", "x"])
    assert r.o == "--" and r.args == ["x"]
    # "=" inside the name splits at the first "=" only.
    assert restore_flags().parse(["-o=a=b"]).o == "a=b"
    assert restore_flags().parse(["-o="]).o == ""


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("10", 10), ("-10", -10), ("+7", 7), ("0x1F", 31), ("0X1f", 31), ("0o17", 15), ("017", 15),
    ("0b101", 5), ("1_000", 1000), ("0x_1F", 31), ("0_7", 7), ("9223372036854775807", 9223372036854775807),
    ("-9223372036854775808", -9223372036854775808),
])
def test_int_values(text: str, value: int) -> None:
    assert restore_flags().parse(["-parallelism", text]).parallelism == value


@pytest.mark.parametrize(("text", "reason"), [
    ("", "parse error"), ("+", "parse error"), ("08", "parse error"), ("0x", "parse error"),
    ("1__0", "parse error"), ("_1", "parse error"), ("1_", "parse error"), ("1.5", "parse error"),
    (" 1", "parse error"), ("\u0661", "parse error"),  # an Arabic-Indic digit one
    ("9223372036854775808", "value out of range"), ("-9223372036854775809", "value out of range"),
    # strconv reports the overflow before it sees the bad trailing byte.
    ("99999999999999999999x", "value out of range"),
])
def test_int_errors(text: str, reason: str) -> None:
    with pytest.raises(FlagError) as exc:
        restore_flags().parse(["-parallelism", text])
    assert exc.value.message.endswith(": " + reason)


def test_custom_bool_var() -> None:
    fs = FlagSet("x", usage=lambda: None)

    def strict(s: str) -> bool:
        if s != "true":
            raise ValueError("only true")
        return True

    fs.var("v", strict, False, is_bool=True)
    assert fs.parse(["-v", "a"]).args == ["a"]
    with pytest.raises(FlagError, match='invalid boolean value "no" for -v: only true'):
        fs.parse(["-v=no"])


def test_definition_errors() -> None:
    fs = FlagSet("litestream-x")
    fs.bool("a")
    with pytest.raises(ValueError, match="flag redefined: a"):
        fs.bool("a")
    with pytest.raises(ValueError, match="begins with -"):
        fs.bool("-b")
    with pytest.raises(ValueError, match="contains ="):
        fs.bool("b=c")


class _Stream(io.StringIO):
    """Records writes into a shared log so the interleaving of stdout/stderr is visible."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.name_ = name
        self.log = log

    def write(self, s: str) -> int:
        self.log.append((self.name_, s))
        return super().write(s)


def test_report_parse_error_sequence() -> None:
    # Reference: `litestream restore -bogus` prints "flag provided but not defined: -bogus" on stderr,
    # the restore help on stdout, then "Error: flag provided but not defined: -bogus" on stderr; exit 1.
    log: list[tuple[str, str]] = []
    out, err = _Stream("stdout", log), _Stream("stderr", log)
    with pytest.raises(FlagError) as exc:
        restore_flags().parse(["-bogus"])
    code = report_parse_error(exc.value, lambda: out.write("USAGE\n"), ["restore", "-bogus"],
                              stderr=err, stdout=out)
    assert code == 1
    assert log == [("stderr", "flag provided but not defined: -bogus\n"), ("stdout", "USAGE\n"),
                   ("stderr", "Error: flag provided but not defined: -bogus\n")]


@pytest.mark.parametrize(("argv", "code"), [
    # Exit codes of the reference binary.
    (["restore", "-h"], 0), (["restore", "-help"], 0), (["restore", "--help"], 0),
    (["restore", "-o", "x", "-h"], 0), (["restore", "--h"], 1), (["restore", "-h=1"], 1),
])
def test_report_help_exit_codes(argv: list[str], code: int) -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(HelpRequested) as exc:
        restore_flags().parse(argv[1:])
    assert report_parse_error(exc.value, lambda: out.write("USAGE\n"), argv, stderr=err, stdout=out) == code
    assert out.getvalue() == "USAGE\n" and err.getvalue() == ""


def test_print_defaults() -> None:
    # Go's PrintDefaults layout (Litestream never uses it, but FlagSet's fallback does).
    fs = FlagSet("demo")
    fs.bool("v", False, "verbose")
    fs.string("config", "/etc/x.yml", "config `path`")
    fs.int("n", 0, "count")
    fs.duration("interval", 1_000_000_000, "how often")
    buf = io.StringIO()
    fs.print_defaults(buf)
    assert buf.getvalue() == (
        "  -config path\n    \tconfig path (default \"/etc/x.yml\")\n"
        "  -interval duration\n    \thow often (default 1s)\n"
        "  -n int\n    \tcount\n"
        "  -v\tverbose\n"
    )
