"""The crash loop's application: `python -m tests.reliability.crash_writer DB SEED PAGE_SIZE RATE VERSION`.

A real SQLite writer as an application runs one: apsw, WAL, synchronous=NORMAL, SQLite's default
autocheckpoint (1000 pages), 1% of its commits followed by its own wal_checkpoint(PASSIVE). It commits
the workload of crashload.py at about RATE transactions a second (default 150) plus bursts, and on
SIGUSR1 / SIGUSR2 runs a PASSIVE / TRUNCATE checkpoint between transactions (the loop sends them while
the replicator is down). Some transactions pause between their statements, so that a SIGKILL can land
inside one. SIGTERM ends it after the transaction in progress."""

from __future__ import annotations

import random
import signal
import sys
import time

import apsw

from tests.reliability.crashload import SCHEMA, State, apply, payload_hash, plan, workload_version

BUSY_TIMEOUT_MS = 5000


def load_state(conn: apsw.Connection) -> State:
    st = State()
    meta = dict(conn.execute("SELECT name, v FROM meta").fetchall())
    st.seq, st.next_id = meta["seq"], meta["next_id"]
    for row_id, h in conn.execute("SELECT id, h FROM rows ORDER BY id"):
        st.rows[row_id] = h
        st.ids.append(row_id)
    return st


def main() -> int:
    path, seed, page_size, rate, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), \
        sys.argv[5]
    if version != workload_version():
        print(f"crash_writer: workload {workload_version()} is not the checker's {version} (edited during a run?)",
              file=sys.stderr)
        return 2
    pending: list[str] = []
    stop = []
    signal.signal(signal.SIGUSR1, lambda *_: pending.append("PASSIVE"))
    signal.signal(signal.SIGUSR2, lambda *_: pending.append("TRUNCATE"))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn = apsw.Connection(path)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-512")  # small: bulk transactions spill frames before they commit
    with conn:
        for sql in SCHEMA:
            conn.execute(sql)
    state = load_state(conn)
    jitter = random.Random()  # timing only: never decides what is written
    burst = 0
    while not stop:
        actions = plan(seed, state)
        pause = jitter.random() < 0.1
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, a in enumerate(actions):
                if a.kind == "insert":
                    conn.execute("INSERT INTO rows(id, k, payload, h) VALUES (?, ?, ?, ?)",
                                 (a.row_id, state.seq + 1, a.payload, payload_hash(a.payload)))
                elif a.kind == "update":
                    conn.execute("UPDATE rows SET k = ?, payload = ?, h = ? WHERE id = ?",
                                 (state.seq + 1, a.payload, payload_hash(a.payload), a.row_id))
                else:
                    conn.execute("DELETE FROM rows WHERE id = ?", (a.row_id,))
                if pause and i == 0:
                    time.sleep(jitter.uniform(0.002, 0.02))
            next_id = max([state.next_id] + [a.row_id + 1 for a in actions if a.kind == "insert"])
            conn.execute("UPDATE meta SET v = ? WHERE name = 'seq'", (state.seq + 1,))
            conn.execute("UPDATE meta SET v = ? WHERE name = 'next_id'", (next_id,))
            conn.execute("COMMIT")
        except BaseException:
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
        apply(state, actions)
        if jitter.random() < 0.01:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        while pending:
            conn.execute(f"PRAGMA wal_checkpoint({pending.pop(0)})").fetchall()
        if burst:
            burst -= 1
        elif jitter.random() < 0.005:
            burst = jitter.randint(50, 300)  # back to back, as fast as SQLite goes
        else:
            time.sleep(jitter.expovariate(rate))
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
