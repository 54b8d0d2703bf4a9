"""The crash loop's workload, shared by the writer process (which commits it) and the checker (which
replays it to know what every committed prefix must hold).

Transaction k (k = 1, 2, ...) is a pure function of the seed, k and the state after transaction k-1: a
writer killed in the middle of transaction k loses it, and the next writer, reading k-1 back from the
database, commits the very same transaction k. So the state after k is the same however often writers
died, and the checker can rebuild it for any k.

Each transaction inserts, updates or deletes rows with random 10..5000-byte payloads (sometimes a bulk
insert large enough to spill to the WAL before it commits) and records k and the next row id in `meta`.
Each row stores the sha256 of its payload, so a restored row proves its own bytes. Past MAX_ROWS rows,
deletes outweigh inserts, so that a long run keeps a steady database size (~10 MB)."""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass, field

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rows(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, payload BLOB NOT NULL, "
    "h TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, v INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta(name, v) VALUES ('seq', 0), ('next_id', 1)",
)
MAX_ROWS = 4000


def workload_version() -> str:
    """A hash of this file: the writer and the checker must replay the same workload."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def payload_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:32]


@dataclass
class Action:
    kind: str  # insert | update | delete
    row_id: int
    payload: bytes = b""


@dataclass
class State:
    """What the database holds after some transaction: row id -> payload hash."""

    seq: int = 0
    next_id: int = 1
    rows: dict[int, str] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)  # sorted keys of rows

    def copy(self) -> State:
        return State(self.seq, self.next_id, dict(self.rows), list(self.ids))

    def pick(self, rng: random.Random) -> int | None:
        """An existing row, chosen from the state alone (so writer and checker pick the same one)."""
        return self.ids[rng.randrange(len(self.ids))] if self.ids else None


def plan(seed: int, state: State) -> list[Action]:
    """The actions of transaction state.seq + 1."""
    k = state.seq + 1
    rng = random.Random(f"{seed}:{k}")
    r = rng.random()
    actions: list[Action] = []
    next_id = state.next_id
    crowded = len(state.ids) > MAX_ROWS
    if r < 0.004:
        n, sizes = rng.randint(40, 120), (2000, 5000)  # a bulk insert: spills before it commits
    elif r < (0.30 if crowded else 0.45) or len(state.ids) < 20:
        n, sizes = rng.randint(1, 3), (10, 5000)
    else:
        n = 0
    for _ in range(n):
        actions.append(Action("insert", next_id, rng.randbytes(rng.randint(*sizes))))
        next_id += 1
    if n == 0:
        row = state.pick(rng)
        if r < (0.55 if crowded else 0.80):
            actions.append(Action("update", row, rng.randbytes(rng.randint(10, 5000))))
            other = state.pick(rng)
            if rng.random() < 0.3 and other != row:
                actions.append(Action("update", other, rng.randbytes(rng.randint(10, 5000))))
        else:
            gone = {row}
            for _ in range(2 if crowded else 0):
                other = state.pick(rng)
                if other not in gone:
                    gone.add(other)
            actions.extend(Action("delete", g) for g in sorted(gone))
    return actions


def apply(state: State, actions: list[Action]) -> None:
    """Advance state by one transaction (the checker's side of what the writer commits)."""
    for a in actions:
        if a.kind == "insert":
            state.rows[a.row_id] = payload_hash(a.payload)
            state.ids.append(a.row_id)  # ids only grow
            state.next_id = a.row_id + 1
        elif a.kind == "update":
            state.rows[a.row_id] = payload_hash(a.payload)
        else:
            del state.rows[a.row_id]
            state.ids.pop(bisect.bisect_left(state.ids, a.row_id))
    state.seq += 1


class Replayer:
    """States of the workload at any seq, replayed from the start, with saved states to jump back to."""

    EVERY = 2000

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.saved: dict[int, State] = {0: State()}
        self.cur = State()

    def state_at(self, seq: int) -> State:
        if seq < self.cur.seq:
            self.cur = self.saved[max(s for s in self.saved if s <= seq)].copy()
        while self.cur.seq < seq:
            apply(self.cur, plan(self.seed, self.cur))
            if self.cur.seq % self.EVERY == 0:
                self.saved[self.cur.seq] = self.cur.copy()
        return self.cur
