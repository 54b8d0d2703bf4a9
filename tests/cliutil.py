"""Helpers for CLI tests that run our `litestream` and the reference binary side by side.

Everything here is test-only: small databases written with apsw (never the stdlib sqlite3), config files,
log-line parsing, background replicators and restores through `restore -o OUT file://REPLICA`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import apsw

from tests.conftest import run_ours
from tests.interop.workload import _open_readonly
from tests.refbin import ref_env, reference_binary, run_ref

OURS_ARGV = (sys.executable, "-m", "litestream")

_TIME_RE = re.compile(r"^time=\S+ ", re.M)


def ref_argv() -> tuple[str, ...]:
    return (str(reference_binary()),)


def write_config(path: str | os.PathLike[str], text: str) -> Path:
    """Write a YAML config (dedented, with a trailing newline) and return its path."""
    p = Path(path)
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def make_db(path: str | os.PathLike[str], rows: Sequence[str] = ("a", "b", "c")) -> Path:
    """Create a WAL-mode database with table t(id, v) holding `rows`; the connection is closed."""
    p = Path(path)
    conn = apsw.Connection(str(p))
    try:
        list(conn.execute("PRAGMA journal_mode=WAL"))
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany("INSERT INTO t(v) VALUES (?)", [(r,) for r in rows])
    finally:
        conn.close()
    return p


def add_rows(path: str | os.PathLike[str], rows: Sequence[str]) -> None:
    conn = apsw.Connection(str(path))
    try:
        conn.setbusytimeout(5000)
        with conn:
            conn.executemany("INSERT INTO t(v) VALUES (?)", [(r,) for r in rows])
    finally:
        conn.close()


def read_rows(path: str | os.PathLike[str]) -> list[str]:
    """Values of t, in id order (opened read-only, immutable when there is no WAL: no sidecars are made)."""
    conn = _open_readonly(path)
    try:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY id")]
    finally:
        conn.close()


def strip_times(text: str) -> str:
    """Log output without the leading `time=... ` of every slog line."""
    return _TIME_RE.sub("", text)


def log_messages(text: str) -> list[str]:
    """The msg= value of every slog text line, in order (quotes removed)."""
    out = []
    for m in re.finditer(r'\bmsg=("(?:[^"\\]|\\.)*"|\S+)', text):
        v = m.group(1)
        out.append(v[1:-1] if v.startswith('"') else v)
    return out


def log_line(text: str, msg: str) -> str | None:
    """The first log line whose message is `msg`, without its timestamp."""
    for line in strip_times(text).splitlines():
        if msg in log_messages(line):
            return line
    return None


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def run_both(*args: str, cwd: str | os.PathLike[str], env: dict[str, str] | None = None,
             timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """(ours, reference) results of the same command in the same directory."""
    ours = run_ours(*args, cwd=cwd, env=env, timeout=timeout)
    ref = run_ref(*args, cwd=cwd, env=env, timeout=timeout)
    return ours, ref


def restore(url_or_dir: str | os.PathLike[str], out: str | os.PathLike[str], *, ref: bool = False,
            cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """`restore -o OUT file://REPLICA` with ours (default) or the reference; a plain dir becomes a URL."""
    url = str(url_or_dir)
    if "://" not in url:
        url = "file://" + str(Path(url).resolve())
    runner = run_ref if ref else run_ours
    return runner("restore", "-o", str(out), url, cwd=cwd, timeout=60)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def l0_files(replica_dir: str | os.PathLike[str]) -> list[str]:
    d = Path(replica_dir) / "ltx" / "0"
    try:
        return sorted(p.name for p in d.iterdir() if p.name.endswith(".ltx"))
    except FileNotFoundError:
        return []


class Background:
    """A `litestream ...` process (ours or the reference) running in the background with captured output."""

    def __init__(self, args: Sequence[str], *, ref: bool, cwd: str | os.PathLike[str],
                 env: dict[str, str] | None = None) -> None:
        if ref:
            argv = [*ref_argv(), *args]
            full_env = ref_env(env)
        else:
            argv = [*OURS_ARGV, *args]
            full_env = dict(os.environ)
            if env:
                full_env.update(env)
        self.out_path = Path(cwd) / f".bg-{os.getpid()}-{id(self)}.out"
        self.err_path = Path(cwd) / f".bg-{os.getpid()}-{id(self)}.err"
        self._out = open(self.out_path, "w+")  # noqa: SIM115 - closed in finish()
        self._err = open(self.err_path, "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=self._out, stderr=self._err,
                                     text=True)
        self.stdout = ""
        self.stderr = ""

    def output(self) -> str:
        self._out.flush()
        return self.out_path.read_text()

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 30) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._out.close()
            self._err.close()
            self.stdout = self.out_path.read_text()
            self.stderr = self.err_path.read_text()
            self.out_path.unlink(missing_ok=True)
            self.err_path.unlink(missing_ok=True)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._out.closed:
            self._out.close()
            self._err.close()
