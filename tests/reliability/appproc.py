"""An application process for crash tests: a real SQLite writer (apsw) in a subprocess of its own, driven
one command at a time over a pipe, that can be SIGKILLed at any point, in the middle of a transaction
included.

It has to be a process of its own: POSIX locks are per process, so only another process shows what
SQLite does when the replicator or the application dies (the WAL index is rebuilt when the last process
that had the database open is gone, and SQLite's checkpoint lock held by us blocks only other
processes)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

_SERVER = r'''
import json, sys
import apsw

path, page_size = sys.argv[1], int(sys.argv[2])
conn = apsw.Connection(path)
conn.set_busy_timeout(5000)
conn.execute(f"PRAGMA page_size={page_size}")
conn.execute("PRAGMA journal_mode=wal")
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
reader = None
for line in sys.stdin:
    cmd = json.loads(line)
    op, out = cmd["op"], None
    if op == "sql":
        with conn:
            for sql, args in cmd["stmts"]:
                conn.execute(sql, args)
    elif op == "checkpoint":
        out = list(conn.execute(f"PRAGMA wal_checkpoint({cmd['mode']})").fetchall()[0])
    elif op == "hold_reader":
        # An application reader: checkpoints stop at its snapshot, and the WAL cannot restart.
        reader = apsw.Connection(path)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchall()
    elif op == "release_reader":
        reader.close()
        reader = None
    elif op == "spill":
        # A transaction too big for its cache: its frames reach the WAL before it commits (it never does).
        conn.execute("PRAGMA cache_size=2")
        conn.execute("BEGIN")
        conn.execute(cmd["sql"])
    print(json.dumps({"ok": True, "out": out}), flush=True)
'''


class AppProcess:
    def __init__(self, path: str, page_size: int = 4096) -> None:
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, path, str(page_size)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def _call(self, **cmd: Any) -> Any:
        assert self.proc.poll() is None, "application process is not running"
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"application process died (exit {self.proc.wait()})")
        return json.loads(line)["out"]

    def sql(self, *stmts: str | tuple[str, list]) -> None:
        """One transaction of the given statements."""
        self._call(op="sql", stmts=[(s, []) if isinstance(s, str) else (s[0], list(s[1])) for s in stmts])

    def insert(self, n: int = 1, size: int = 900) -> None:
        self.sql(*[f"INSERT INTO t(v) VALUES (randomblob({size}))"] * n)

    def update(self, first: int, last: int, size: int = 900) -> None:
        self.sql(f"UPDATE t SET v = randomblob({size}) WHERE id BETWEEN {first} AND {last}")

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        return tuple(self._call(op="checkpoint", mode=mode))

    def hold_reader(self) -> None:
        self._call(op="hold_reader")

    def release_reader(self) -> None:
        self._call(op="release_reader")

    def spill(self, sql: str = "UPDATE t SET v = randomblob(900)") -> None:
        self._call(op="spill", sql=sql)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc.stdout.close()
