"""Bad input to `litestream restore` and `litestream ltx`, through the CLI exactly as a user runs it.

Every case works on a copy of a reference replica (tests/vectors/v1_ps4096, file mtimes set from the
header timestamps as Litestream sets them) and checks the whole contract:
- exit status 1, no traceback;
- stderr is one line `Error: ...` naming the problem and the file (or exactly the reference's text where
  the reference binary prints a specific message: checked against litestream 0.5.17 by hand);
- the output path does not exist afterwards and nothing else (temp files) was left in its directory;
- the replica itself is unchanged.
Restores that must still work are compared with the sha256 the reference produced (manifest.json).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from litestream import _ltxcore as core
from tests.conftest import VECTORS, run_ours

V1 = VECTORS / "v1_ps4096"
MANIFEST = json.loads((V1 / "manifest.json").read_text())
SHA_BY_TXID = {r["txid"]: r["sha256"] for r in MANIFEST["restores"] if r["txid"]}
SHA_LATEST = MANIFEST["restored_latest"]["sha256"]


def name(min_txid: int, max_txid: int | None = None) -> str:
    return f"{min_txid:016x}-{max_txid if max_txid is not None else min_txid:016x}.ltx"


def txid(n: int) -> str:
    return f"{n:016x}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_mtime_from_header(path: Path) -> None:
    ts_ms = struct.unpack(">q", path.read_bytes()[32:40])[0]
    os.utime(path, ns=(ts_ms * 1_000_000, ts_ms * 1_000_000))


def copy_replica(dst: Path, levels: set[int] | None = None) -> Path:
    """Copy of the v1 replica (only `levels` if given), writable, mtimes = header timestamps."""
    for src in sorted((V1 / "replica").glob("ltx/*/*.ltx")):
        level = int(src.parent.name)
        if levels is not None and level not in levels:
            continue
        out = dst / "ltx" / str(level) / src.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(src.read_bytes())
        set_mtime_from_header(out)
    return dst


def snapshot_tree(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (sha256(p), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def l0_replica(tmp_path) -> Path:
    """Only the L0 files: every TXID has exactly one file, so every restore reads the file we break."""
    return copy_replica(tmp_path / "replica", {0})


@pytest.fixture
def full_replica(tmp_path) -> Path:
    return copy_replica(tmp_path / "replica")


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def restore(replica: Path, out: Path, *flags: str):
    return run_ours("restore", *flags, "-o", str(out), f"file://{replica}", timeout=120)


def assert_one_line_error(proc, *must_contain: str, exact: str | None = None) -> str:
    """Exit 1, no traceback, stderr a single `Error: ` line containing the given pieces of text."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    if exact is not None:
        assert proc.stderr == exact + "\n"
    for piece in must_contain:
        assert piece in line, (piece, line)
    return line


def assert_no_output(out: Path, allowed: set[str] = frozenset()) -> None:
    """Nothing at the output path and no temp or partial files next to it."""
    assert not out.exists(), f"{out} was left behind"
    left = set(os.listdir(out.parent)) - set(allowed)
    assert not left, f"files left in the output directory: {sorted(left)}"


# --------------------------------------------------------------------------------------- file anatomy


@dataclass
class Layout:
    """Where the sections of a valid LTX file are (from its page index)."""

    size: int
    frames: list[tuple[int, int, int]]  # (pgno, offset, size) of every page frame
    end_marker: int
    index: int
    index_len: int
    post_apply: int
    file_checksum: int

    def payload(self, i: int) -> tuple[int, int]:
        _, off, size = self.frames[i]
        return off + 10, off + size


def layout(path: Path) -> Layout:
    data = path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        ix = core.PageIndex(fd, len(data))
        frames = [(p, *ix.find(p)) for p in ix.pgnos()]
        end_marker = ix.end_marker_offset
    finally:
        os.close(fd)
    size = len(data)
    return Layout(size, frames, end_marker, end_marker + 6, size - 24, size - 16, size - 8)


def detected_payload_offset(path: Path, lay: Layout, frame: int) -> int:
    """A byte in the middle of a compressed payload whose flip the decoder detects (a few payload bits
    are ignored by LZ4, so the first candidates are checked in process)."""
    data = path.read_bytes()
    start, end = lay.payload(frame)
    for off in range((start + end) // 2, end):
        b = bytearray(data)
        b[off] ^= 0xFF
        try:
            core.Decoder(io.BytesIO(bytes(b))).verify()
        except core.LTXError:
            return off
    raise AssertionError("no detectable payload byte")


def rewrite(path: Path, data: bytes) -> None:
    """Replace a file's content, keeping its mtime (the file's CreatedAt)."""
    mtime = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(mtime, mtime))


def flip(path: Path, off: int, xor: int = 0xFF) -> None:
    b = bytearray(path.read_bytes())
    b[off] ^= xor
    rewrite(path, bytes(b))


def put(path: Path, off: int, value: int, width: int) -> None:
    b = bytearray(path.read_bytes())
    b[off:off + width] = value.to_bytes(width, "big")
    rewrite(path, bytes(b))


def truncate(path: Path, n: int) -> None:
    rewrite(path, path.read_bytes()[:n])


# ---------------------------------------------------------------------------------------- truncation

TRUNCATED = re.compile(r"unexpected end of file|truncated|too short")

# (id, where to cut: function of the layout)
TRUNCATIONS = [
    ("after-header", lambda lay: 100),
    ("inside-page-header", lambda lay: lay.frames[0][1] + 3),
    ("inside-size-field", lambda lay: lay.frames[0][1] + 8),
    ("inside-first-payload", lambda lay: sum(lay.payload(0)) // 2),
    ("inside-last-payload", lambda lay: lay.payload(len(lay.frames) - 1)[1] - 1),
    ("at-end-marker", lambda lay: lay.end_marker),
    ("inside-end-marker", lambda lay: lay.end_marker + 3),
    ("inside-index", lambda lay: lay.index + 1),
    ("inside-index-length", lambda lay: lay.index_len + 4),
    ("before-trailer", lambda lay: lay.post_apply),
    ("inside-trailer", lambda lay: lay.post_apply + 5),
    ("one-byte-short", lambda lay: lay.size - 1),
]


@pytest.mark.parametrize("target", [1, 7], ids=["first-snapshot", "middle"])
@pytest.mark.parametrize("cut", [c[1] for c in TRUNCATIONS], ids=[c[0] for c in TRUNCATIONS])
def test_truncated_file(l0_replica, out_dir, target, cut):
    path = l0_replica / "ltx/0" / name(target)
    truncate(path, cut(layout(path)))
    before = snapshot_tree(l0_replica)
    out = out_dir / "restored.db"
    line = assert_one_line_error(restore(l0_replica, out), name(target), "level 0")
    assert TRUNCATED.search(line), line
    assert_no_output(out)
    assert snapshot_tree(l0_replica) == before


@pytest.mark.parametrize("size", [0, 1, 57, 99])
def test_file_shorter_than_a_header(l0_replica, out_dir, size):
    """The reference checks the listed size first and prints exactly this."""
    truncate(l0_replica / "ltx/0" / name(7), size)
    out = out_dir / "restored.db"
    assert_one_line_error(restore(l0_replica, out), exact=(
        f"Error: invalid ltx file: level=0 min={txid(7)} max={txid(7)} has size {size} bytes (minimum 100)"))
    assert_no_output(out)


# ------------------------------------------------------------------------------------------ bit flips

# (id, corruption(path, layout), regex the message must match besides the file name)
FLIPS = [
    ("magic", lambda p, lay: flip(p, 0, 0x01), r"magic"),
    ("magic-all", lambda p, lay: put(p, 0, int.from_bytes(b"LTX2", "big"), 4), r"magic"),
    ("header-flags-high-bit", lambda p, lay: flip(p, 4, 0x80), r"flags"),
    ("header-flags-bit0", lambda p, lay: flip(p, 7, 0x01), r"flags"),
    ("header-flags-checksums-on", lambda p, lay: flip(p, 7, 0x02), r"checksum"),
    ("page-size-not-power-of-two", lambda p, lay: put(p, 8, 4097, 4), r"page size"),
    ("page-size-too-small", lambda p, lay: put(p, 8, 256, 4), r"page size"),
    ("page-size-too-large", lambda p, lay: put(p, 8, 131072, 4), r"page size"),
    ("page-size-other-power", lambda p, lay: put(p, 8, 8192, 4), r""),
    ("commit", lambda p, lay: flip(p, 15, 0x01), r""),
    ("commit-zero", lambda p, lay: put(p, 12, 0, 4), r""),
    ("min-txid", lambda p, lay: flip(p, 23, 0x02), r""),
    ("max-txid", lambda p, lay: flip(p, 31, 0x10), r""),
    ("min-txid-zero", lambda p, lay: put(p, 16, 0, 8), r""),
    ("timestamp", lambda p, lay: flip(p, 39, 0x01), r"checksum"),
    ("pre-apply-checksum", lambda p, lay: flip(p, 47, 0x01), r"checksum"),
    ("wal-offset", lambda p, lay: flip(p, 55, 0x01), r""),
    ("wal-offset-negative", lambda p, lay: flip(p, 48, 0x80), r""),
    ("wal-size", lambda p, lay: flip(p, 63, 0x01), r""),
    ("wal-salt", lambda p, lay: flip(p, 67, 0x01), r"checksum"),
    ("node-id", lambda p, lay: flip(p, 79, 0x01), r"checksum"),
    ("reserved-first", lambda p, lay: flip(p, 80, 0x01), r"checksum"),
    ("reserved-last", lambda p, lay: flip(p, 99, 0x01), r"checksum"),
    ("page-header-pgno", lambda p, lay: flip(p, lay.frames[1][1] + 3, 0x04), r""),
    ("page-header-pgno-zero", lambda p, lay: put(p, lay.frames[1][1], 0, 4), r""),
    ("page-header-flags", lambda p, lay: flip(p, lay.frames[1][1] + 5, 0x02), r"flags"),
    ("page-header-no-size-flag", lambda p, lay: flip(p, lay.frames[1][1] + 5, 0x01), r""),
    ("page-size-field", lambda p, lay: flip(p, lay.frames[1][1] + 9, 0x01), r""),
    ("page-size-field-huge", lambda p, lay: put(p, lay.frames[1][1] + 6, 0xFFFFFFFF, 4), r""),
    ("compressed-payload", lambda p, lay: flip(p, detected_payload_offset(p, lay, 1)), r""),
    ("compressed-payload-last-byte", lambda p, lay: flip(p, lay.payload(1)[1] - 1), r""),
    ("end-marker", lambda p, lay: flip(p, lay.end_marker + 5, 0x01), r""),
    ("index-first-byte", lambda p, lay: flip(p, lay.index, 0x01), r"index"),
    ("index-offset-entry", lambda p, lay: flip(p, lay.index + 1, 0x01), r"index"),
    ("index-terminator", lambda p, lay: flip(p, lay.index_len - 1, 0x01), r""),
    ("index-length", lambda p, lay: flip(p, lay.index_len + 7, 0x01), r"index"),
    ("index-length-huge", lambda p, lay: put(p, lay.index_len, 1 << 62, 8), r"index"),
    ("post-apply-checksum", lambda p, lay: flip(p, lay.post_apply + 3, 0x01), r"checksum"),
    ("post-apply-checksum-flag-bit", lambda p, lay: flip(p, lay.post_apply, 0x80), r"checksum"),
    ("file-checksum", lambda p, lay: flip(p, lay.file_checksum + 7, 0x01), r"checksum"),
    ("file-checksum-flag-bit", lambda p, lay: flip(p, lay.file_checksum, 0x80), r"checksum"),
    ("trailing-garbage", lambda p, lay: rewrite(p, p.read_bytes() + b"\0"), r""),
]


@pytest.mark.parametrize("corrupt,problem", [(c[1], c[2]) for c in FLIPS], ids=[c[0] for c in FLIPS])
def test_corrupted_byte(l0_replica, out_dir, corrupt, problem):
    """A changed byte in any section of a file in the middle of the history (TXID 7, six pages)."""
    path = l0_replica / "ltx/0" / name(7)
    original = path.read_bytes()
    corrupt(path, layout(path))
    assert path.read_bytes() != original
    before = snapshot_tree(l0_replica)
    out = out_dir / "restored.db"
    line = assert_one_line_error(restore(l0_replica, out), name(7), "level 0")
    assert re.search(problem, line), (problem, line)
    assert_no_output(out)
    assert snapshot_tree(l0_replica) == before


@pytest.mark.parametrize("section", ["magic", "page-header-flags", "compressed-payload", "file-checksum"])
def test_corrupted_snapshot_at_the_start(l0_replica, out_dir, section):
    """The same for the first file of the history (the TXID 1 snapshot)."""
    corrupt, problem = next((c[1], c[2]) for c in FLIPS if c[0] == section)
    path = l0_replica / "ltx/0" / name(1)
    corrupt(path, layout(path))
    out = out_dir / "restored.db"
    line = assert_one_line_error(restore(l0_replica, out), name(1))
    assert re.search(problem, line), line
    assert_no_output(out)


@pytest.mark.parametrize("corruption", ["truncate", "payload", "checksum"])
def test_corruption_with_txid(l0_replica, out_dir, corruption):
    """-txid restores that include the broken file fail the same way; one that stops before it works."""
    path = l0_replica / "ltx/0" / name(7)
    lay = layout(path)
    if corruption == "truncate":
        truncate(path, sum(lay.payload(2)) // 2)
    elif corruption == "payload":
        flip(path, detected_payload_offset(path, lay, 2))
    else:
        flip(path, lay.file_checksum + 3, 0x20)
    out = out_dir / "restored.db"
    for n in (7, 8, 10):
        assert_one_line_error(restore(l0_replica, out, "-txid", txid(n)), name(7))
        assert_no_output(out)
    assert_one_line_error(restore(l0_replica, out), name(7))
    assert_no_output(out)
    proc = restore(l0_replica, out, "-txid", txid(6))
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_BY_TXID[txid(6)]


def test_corrupted_file_in_a_higher_level(full_replica, out_dir):
    """Latest restore of the full replica reads only the newest L9 snapshot: break it, the restore names it;
    a -txid restore planned through other files is unaffected."""
    l9 = full_replica / "ltx/9" / name(1, 10)
    flip(l9, detected_payload_offset(l9, layout(l9), 0))
    out = out_dir / "restored.db"
    assert_one_line_error(restore(full_replica, out), name(1, 10), "level 9")
    assert_no_output(out)
    proc = restore(full_replica, out, "-txid", txid(9))
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_BY_TXID[txid(9)]


def test_corrupted_l0_in_full_replica_with_txid(full_replica, out_dir):
    """In the full replica -txid 7 is planned as [L9 1-4, L0 5, L0 6, L0 7]."""
    path = full_replica / "ltx/0" / name(7)
    flip(path, layout(path).file_checksum + 7, 0x01)
    out = out_dir / "restored.db"
    assert_one_line_error(restore(full_replica, out, "-txid", txid(7)), name(7), "level 0", "checksum")
    assert_no_output(out)
    for n, want in ((6, SHA_BY_TXID[txid(6)]), (8, SHA_BY_TXID[txid(8)]), (0, SHA_LATEST)):
        flags = ("-txid", txid(n)) if n else ()
        proc = restore(full_replica, out, *flags)
        assert proc.returncode == 0, proc.stderr
        assert sha256(out) == want
        out.unlink()


def write_ltx(path: Path, header: tuple, pages: list[tuple[int, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        enc = core.Encoder(f.fileno())
        enc.write_header(header)
        for pgno, page in pages:
            enc.write_page(pgno, page)
        enc.finish()
    set_mtime_from_header(path)


def test_corrupted_commit_is_reported_as_corruption(tmp_path, out_dir):
    """BUG (reported): the database size (Commit) of the last plan file is trusted before that file's
    checksum is verified. A flipped Commit in a 64 KiB-page replica makes the restore ftruncate its temp
    file to 2^32 * 64 KiB and fail with `Error: restore <out>: File too large`, which does not name the
    corrupt file (the reference: `... close reader 1: file checksum mismatch`)."""
    replica = tmp_path / "replica"
    ps = 65536
    ts = 1_795_644_089_692
    write_ltx(replica / "ltx/0" / name(1), (core.FLAG_NO_CHECKSUM, ps, 2, 1, 1, ts, 0, 0, 0, 0, 0, 0),
              [(1, b"a" * ps), (2, b"b" * ps)])
    write_ltx(replica / "ltx/0" / name(2), (core.FLAG_NO_CHECKSUM, ps, 2, 2, 2, ts + 1000, 0, 0, 0, 0, 0, 0),
              [(2, b"c" * ps)])
    out = out_dir / "restored.db"
    proc = restore(replica, out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == b"a" * ps + b"c" * ps
    out.unlink()
    put(replica / "ltx/0" / name(2), 12, 0xFFFFFFFF, 4)
    line = assert_one_line_error(restore(replica, out), name(2), "level 0")
    assert "checksum" in line, line
    assert_no_output(out)


def test_corrupted_commit_does_not_make_the_restore_allocate_for_it(l0_replica, out_dir):
    """A flipped Commit (4 billion pages) in the last file must be caught as corruption without sizing
    anything by it first. Observed (questionable): about 540 MB of memory (the page bitmap) and a 16 TiB
    sparse temp file before the checksum error. Measured in a wrapper process whose only child is the
    restore, so RUSAGE_CHILDREN is the restore's own peak."""
    put(l0_replica / "ltx/0" / name(10), 12, 0xFFFFFFFF, 4)
    out = out_dir / "restored.db"
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "sys.stderr.write(p.stderr)\n"
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "litestream", "restore", "-o",
                           str(out), f"file://{l0_replica}"], capture_output=True, text=True, timeout=120)
    rc, maxrss_kb = (int(x) for x in proc.stdout.split())
    assert rc == 1
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("Error: ") and name(10) in line, proc.stderr
    assert_no_output(out)
    assert maxrss_kb < 200_000, f"restore peaked at {maxrss_kb // 1024} MiB for a corrupt 1.7 KB file"


# ------------------------------------------------------------------------------------------ file names


def test_file_name_does_not_match_header(l0_replica, out_dir):
    """TXID 4's bytes stored under TXID 3's name: the mismatch is reported for that file."""
    rewrite(l0_replica / "ltx/0" / name(3), (l0_replica / "ltx/0" / name(4)).read_bytes())
    out = out_dir / "restored.db"
    assert_one_line_error(restore(l0_replica, out), name(3), txid(4))
    assert_no_output(out)
    assert_one_line_error(restore(l0_replica, out, "-txid", txid(3)), name(3))
    assert_no_output(out)
    proc = restore(l0_replica, out, "-txid", txid(2))
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_BY_TXID[txid(2)]


def test_compacted_file_name_does_not_match_header(full_replica, out_dir):
    """An L9 snapshot whose header range differs from its name (1-9 stored as 1-a)."""
    src = full_replica / "ltx/9" / name(1, 9)
    (full_replica / "ltx/9" / name(1, 10)).write_bytes(src.read_bytes())
    set_mtime_from_header(full_replica / "ltx/9" / name(1, 10))
    out = out_dir / "restored.db"
    assert_one_line_error(restore(full_replica, out), name(1, 10), "level 9")
    assert_no_output(out)


JUNK_NAMES = [
    "foo.ltx",
    "0000000000000001-0000000000000001.ltx.tmp",
    "000000000000000B-000000000000000B.ltx",  # uppercase hex
    "000000000000000b-000000000000000b.LTX",
    "00000000000000b-00000000000000b.ltx",  # 15 digits
    "000000000000000000b-000000000000000b.ltx",  # 19 digits
    "000000000000000b_000000000000000b.ltx",
    "000000000000000b-000000000000000b.ltx~",
    ".000000000000000b-000000000000000b.ltx",
    "000000000000000b-000000000000000b",
    "0x0000000000000b-0x0000000000000b.ltx",
    " 000000000000000b-000000000000000b.ltx",
]


def test_non_txid_names_are_ignored(full_replica, out_dir, tmp_path):
    """Files whose names are not `%016x-%016x.ltx` are invisible to listings and restores, even when they
    hold garbage or a valid LTX file."""
    clean = copy_replica(tmp_path / "clean")
    rng = random.Random(7)
    for level in (0, 1, 9):
        for junk in JUNK_NAMES:
            p = full_replica / "ltx" / str(level) / junk
            p.write_bytes(rng.randbytes(200) if "tmp" not in junk else
                          (full_replica / "ltx/0" / name(1)).read_bytes()[:150])
    (full_replica / "ltx" / "10").mkdir()
    (full_replica / "ltx" / "10" / name(11)).write_bytes(b"junk")
    (full_replica / "ltx" / "x").mkdir()
    (full_replica / "ltx" / "x" / name(11)).write_bytes(b"junk")

    listings = (["ltx", "-level", "all"], ["ltx", "-level", "all", "-json"], ["ltx"], ["ltx", "-level", "9"])
    for args in listings:
        want = run_ours(*args, f"file://{clean}")
        got = run_ours(*args, f"file://{full_replica}")
        assert want.returncode == got.returncode == 0, got.stderr
        assert got.stdout == want.stdout.replace(str(clean), str(full_replica))
        assert got.stderr == ""
    # The reference's own listing of this replica, recorded when the vector was made.
    assert run_ours("ltx", "-level", "all", f"file://{full_replica}").stdout == \
        MANIFEST["ltx_cmd_outputs"]["ltx_all"]["stdout"]

    out = out_dir / "restored.db"
    proc = restore(full_replica, out)
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_LATEST
    assert sorted(os.listdir(out_dir)) == ["restored.db"]


# ----------------------------------------------------------------------------------- gaps in history

GAP_MESSAGE = ("Error: cannot calc restore plan: non-contiguous ltx files: have up to 0000000000000004 but "
               "next file starts at 0000000000000006")


def test_missing_file_in_the_middle_of_l0(l0_replica, out_dir):
    (l0_replica / "ltx/0" / name(5)).unlink()
    out = out_dir / "restored.db"
    assert_one_line_error(restore(l0_replica, out), exact=GAP_MESSAGE)
    assert_no_output(out)
    for n in (1, 3, 4):  # before the gap: still fine, and byte-identical to the reference's restore
        proc = restore(l0_replica, out, "-txid", txid(n))
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert sha256(out) == SHA_BY_TXID[txid(n)]
        out.unlink()
    for n in (5, 6, 10):  # at or after it
        assert_one_line_error(restore(l0_replica, out, "-txid", txid(n)),
                              exact="Error: no matching backup files available")
        assert_no_output(out)


def test_missing_file_covered_by_a_higher_level(full_replica, out_dir):
    """L0 TXID 5 is gone but L1 5-8, L2 1-8 and the snapshots still cover it."""
    (full_replica / "ltx/0" / name(5)).unlink()
    out = out_dir / "restored.db"
    proc = restore(full_replica, out)
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_LATEST
    out.unlink()
    proc = restore(full_replica, out, "-txid", txid(8))
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_BY_TXID[txid(8)]
    out.unlink()
    # Nothing that ends exactly at TXID 5 is left (the reference says the same).
    assert_one_line_error(restore(full_replica, out, "-txid", txid(5)),
                          exact="Error: no matching backup files available")
    assert_no_output(out)


def test_missing_first_snapshot(l0_replica, out_dir):
    """No file starts at TXID 1: nothing to restore from (the reference's message)."""
    (l0_replica / "ltx/0" / name(1)).unlink()
    out = out_dir / "restored.db"
    assert_one_line_error(restore(l0_replica, out), exact="Error: no matching backup files available")
    assert_no_output(out)


def test_empty_and_missing_replica(tmp_path, out_dir):
    out = out_dir / "restored.db"
    (tmp_path / "empty" / "ltx" / "0").mkdir(parents=True)
    for replica in (tmp_path / "nonexistent", tmp_path / "empty"):
        assert_one_line_error(restore(replica, out), exact="Error: no matching backup files available")
        assert_no_output(out)


# ------------------------------------------------------------------------------------ the output path


def test_existing_output_file(l0_replica, out_dir):
    out = out_dir / "restored.db"
    out.write_bytes(b"precious data")
    os.utime(out, ns=(1_000_000_000, 1_000_000_000))
    proc = restore(l0_replica, out)
    assert_one_line_error(proc, exact=f"Error: cannot restore, output path already exists and is not empty: "
                                      f"{out}. Use -force to overwrite")
    assert out.read_bytes() == b"precious data"
    assert out.stat().st_mtime_ns == 1_000_000_000
    assert os.listdir(out_dir) == ["restored.db"]


@pytest.mark.parametrize("sidecar", ["-wal", "-shm", "-journal"])
def test_existing_sidecar_next_to_an_empty_output(l0_replica, out_dir, sidecar):
    out = out_dir / "restored.db"
    out.write_bytes(b"")
    side = Path(str(out) + sidecar)
    side.write_bytes(b"sidecar")
    proc = restore(l0_replica, out)
    assert_one_line_error(proc, exact=f"Error: cannot restore, SQLite sidecar path already exists: {side}. "
                                      "Use -force to overwrite")
    assert out.read_bytes() == b"" and side.read_bytes() == b"sidecar"
    assert sorted(os.listdir(out_dir)) == sorted(["restored.db", side.name])


def test_output_path_is_a_directory(l0_replica, out_dir):
    out = out_dir / "restored.db"
    out.mkdir()
    (out / "keep").write_bytes(b"x")
    proc = restore(l0_replica, out)
    assert_one_line_error(proc, exact=f"Error: cannot restore, output path is a directory: {out}")
    assert (out / "keep").read_bytes() == b"x"
    assert os.listdir(out_dir) == ["restored.db"]


def test_force_overwrites_output_and_removes_sidecars(l0_replica, out_dir):
    out = out_dir / "restored.db"
    out.write_bytes(b"old database")
    for side in ("-wal", "-shm", "-journal"):
        Path(str(out) + side).write_bytes(b"stale")
    proc = restore(l0_replica, out, "-force")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr
    assert sha256(out) == SHA_LATEST
    assert os.listdir(out_dir) == ["restored.db"]


def test_force_with_a_failing_restore(l0_replica, out_dir):
    """-force with a corrupt replica: the error, and no temp or partial file. (Whether the old database
    survives is not asserted: the reference deletes it before restoring, and so do we.)"""
    path = l0_replica / "ltx/0" / name(7)
    flip(path, layout(path).file_checksum + 7)
    out = out_dir / "restored.db"
    out.write_bytes(b"old database")
    assert_one_line_error(restore(l0_replica, out, "-force"), name(7))
    assert not any(n.startswith(".") or n.endswith(".tmp") for n in os.listdir(out_dir)), os.listdir(out_dir)


def test_existing_empty_output_is_replaced_silently(l0_replica, out_dir):
    out = out_dir / "restored.db"
    out.write_bytes(b"")
    proc = restore(l0_replica, out)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr
    assert sha256(out) == SHA_LATEST
    assert os.listdir(out_dir) == ["restored.db"]


def test_restored_file_mode_matches_reference(l0_replica, out_dir):
    """BUG (reported): the reference creates the database with os.Create (0666 & ~umask, i.e. 0644 under
    the usual umask); ours keeps mkstemp's 0600, so other users/groups lose read access after a restore."""
    umask = os.umask(0)
    os.umask(umask)
    out = out_dir / "restored.db"
    proc = restore(l0_replica, out)
    assert proc.returncode == 0, proc.stderr
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~umask)


def test_output_in_a_missing_directory(l0_replica, tmp_path):
    """The parent directory is created (as the reference does)."""
    out = tmp_path / "a" / "b" / "restored.db"
    proc = restore(l0_replica, out)
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == SHA_LATEST


# ----------------------------------------------------------------------------------- flags and args


@pytest.fixture(scope="module")
def restore_usage() -> str:
    proc = run_ours("restore", "-h")
    assert proc.returncode == 0 and "Usage:" in proc.stdout
    return proc.stdout


def assert_flag_error(proc, message: str, usage: str) -> None:
    """The Go flag package's sequence: the message, the usage on stdout, then `Error: <message>`."""
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr == f"{message}\nError: {message}\n"
    assert proc.stdout == usage


BAD_TXIDS = [
    "4",  # the reference's own example: exactly 16 digits are required
    "000000000000000g",
    "00000000000000001",  # 17 digits
    "",
    "-000000000000001",
    # BUG (reported): Python's int(s, 16) accepts these, Go's strconv.ParseUint does not.
    "+000000000000004",
    "0x00000000000004",
    "0000_0000_000004",
    " 00000000000004 ",
]


@pytest.mark.parametrize("value", BAD_TXIDS)
def test_invalid_txid(l0_replica, out_dir, restore_usage, value):
    out = out_dir / "restored.db"
    proc = restore(l0_replica, out, "-txid", value)
    assert_flag_error(proc, f'invalid value "{value}" for flag -txid: invalid txid format', restore_usage)
    assert_no_output(out)


BAD_TIMESTAMPS = ["yesterday", "2026-11-25T22:01:33", "2026-11-25 22:01:33Z", "2026-11-25t22:01:33z",
                  "2026-02-30T22:01:33Z", "2026-11-25T24:01:33Z", "2026-11-25T22:01:33+0000", "1795644093",
                  " 2026-11-25T22:01:33Z"]


@pytest.mark.parametrize("value", BAD_TIMESTAMPS)
def test_invalid_timestamp(l0_replica, out_dir, value):
    out = out_dir / "restored.db"
    proc = restore(l0_replica, out, "-timestamp", value)
    assert_one_line_error(proc, exact="Error: invalid -timestamp, must specify in ISO 8601 format "
                                      "(e.g. 2000-01-01T00:00:00Z)")
    assert proc.stdout == ""
    assert_no_output(out)


@pytest.mark.parametrize("value", ["2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"])
def test_timestamp_outside_the_replica(full_replica, out_dir, value):
    out = out_dir / "restored.db"
    proc = restore(full_replica, out, "-timestamp", value)
    assert_one_line_error(proc, exact="Error: timestamp does not exist")
    assert_no_output(out)


@pytest.mark.parametrize("value", ["bogus", "", "QUICK", "full "])
def test_bad_integrity_check_value(l0_replica, out_dir, value):
    out = out_dir / "restored.db"
    proc = restore(l0_replica, out, "-integrity-check", value)
    assert_one_line_error(proc, exact=f"Error: invalid -integrity-check value: {value}")
    assert_no_output(out)


def test_txid_and_timestamp_together(full_replica, out_dir):
    out = out_dir / "restored.db"
    proc = restore(full_replica, out, "-txid", txid(4), "-timestamp", "2026-11-25T22:01:33Z")
    assert_one_line_error(proc, exact="Error: cannot specify index & timestamp to restore")
    assert_no_output(out)


def test_txid_and_timestamp_together_dry_run(full_replica, out_dir):
    """BUG (reported): with -dry-run the reference reaches CalcRestorePlan, whose message differs:
    observed `Error: cannot specify index & timestamp to restore`."""
    out = out_dir / "restored.db"
    proc = restore(full_replica, out, "-dry-run", "-txid", txid(4), "-timestamp", "2026-11-25T22:01:33Z")
    assert_one_line_error(proc, exact="Error: cannot specify both TXID & timestamp to restore")
    assert_no_output(out)


def test_txid_and_timestamp_outside_the_replica(full_replica, out_dir):
    """BUG (reported): the reference validates the timestamp against the replica (CalcRestoreTarget)
    before it looks at the -txid/-timestamp conflict; observed `Error: cannot specify index & timestamp to
    restore`."""
    out = out_dir / "restored.db"
    proc = restore(full_replica, out, "-txid", txid(4), "-timestamp", "2030-01-01T00:00:00Z")
    assert_one_line_error(proc, exact="Error: timestamp does not exist")
    assert_no_output(out)


def test_output_flag_missing_with_url(l0_replica, tmp_path):
    url = f"file://{l0_replica}"
    proc = run_ours("restore", url, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == (f"Error: -o is required when restoring from a replica URL\n"
                           f"Try: litestream restore -o /path/to/db {url}\n")
    assert proc.stdout == ""
    assert os.listdir(tmp_path) == ["replica"]


def test_no_arguments(tmp_path):
    proc = run_ours("restore", "-o", str(tmp_path / "x.db"), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == ("Error: database path or replica URL required\n"
                           "Try: litestream restore -o /path/to/db s3://bucket/prefix\n")
    assert os.listdir(tmp_path) == []


def test_too_many_arguments(l0_replica, out_dir):
    out = out_dir / "restored.db"
    proc = run_ours("restore", "-o", str(out), f"file://{l0_replica}", "extra")
    assert_one_line_error(proc, exact="Error: too many arguments")
    assert_no_output(out)
    proc = run_ours("ltx", f"file://{l0_replica}", "extra")
    assert_one_line_error(proc, exact="Error: too many arguments")


@pytest.mark.parametrize("flag", ["-bogus", "--bogus", "-x=1", "-o"])
def test_unknown_or_incomplete_flag(l0_replica, out_dir, restore_usage, flag):
    out = out_dir / "restored.db"
    args = [flag] if flag == "-o" else [flag, "-o", str(out), f"file://{l0_replica}"]
    proc = run_ours("restore", *args)
    name_ = flag.lstrip("-").split("=")[0]
    message = ("flag needs an argument: -o" if flag == "-o" else f"flag provided but not defined: -{name_}")
    assert_flag_error(proc, message, restore_usage)
    assert_no_output(out)


def test_ltx_bad_flags(l0_replica):
    usage = run_ours("ltx", "-h").stdout
    assert "Usage:" in usage
    url = f"file://{l0_replica}"
    assert_flag_error(run_ours("ltx", "-bogus", url), "flag provided but not defined: -bogus", usage)
    assert_flag_error(run_ours("ltx", "-level", "10", url),
                      'invalid value "10" for flag -level: level must be between 0 and 9', usage)
    assert_flag_error(run_ours("ltx", "-level", "x", url),
                      'invalid value "x" for flag -level: invalid level: must be 0-9 or "all"', usage)


# ------------------------------------------------------------- large files (segmented, parallel decode)

BIG_PAGES = 520  # 520 incompressible 64 KiB pages: a 34 MB file, above restore's 32 MiB segment threshold
BIG_PAGE_SIZE = 65536


@pytest.fixture(scope="module")
def big_replica(tmp_path_factory) -> tuple[Path, str]:
    """A replica holding one large snapshot written by our encoder, and the sha256 of its database."""
    root = tmp_path_factory.mktemp("big") / "replica"
    path = root / "ltx/0" / name(1)
    path.parent.mkdir(parents=True)
    rng = random.Random(1234)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        enc = core.Encoder(f.fileno())
        enc.write_header((core.FLAG_NO_CHECKSUM, BIG_PAGE_SIZE, BIG_PAGES, 1, 1, 1_795_644_089_692,
                          0, 0, 0, 0, 0, 0))
        for pgno in range(1, BIG_PAGES + 1):
            page = rng.randbytes(BIG_PAGE_SIZE - 64) + bytes(64)
            digest.update(page)
            enc.write_page(pgno, page)
        enc.finish()
    set_mtime_from_header(path)
    assert path.stat().st_size > 32 << 20
    return root, digest.hexdigest()


@pytest.fixture
def big_copy(big_replica, tmp_path) -> Path:
    root, _ = big_replica
    dst = tmp_path / "big"
    (dst / "ltx/0").mkdir(parents=True)
    shutil.copy2(root / "ltx/0" / name(1), dst / "ltx/0" / name(1))
    return dst


def test_large_file_restores(big_replica, out_dir):
    root, digest = big_replica
    out = out_dir / "restored.db"
    proc = restore(root, out)
    assert proc.returncode == 0, proc.stderr
    assert sha256(out) == digest


BIG_CORRUPTIONS = [
    ("late-payload", lambda p, lay: flip(p, sum(lay.payload(BIG_PAGES - 20)) // 2, 0x01), r"checksum"),
    ("early-payload", lambda p, lay: flip(p, sum(lay.payload(3)) // 2, 0x40), r"checksum"),
    ("page-header", lambda p, lay: flip(p, lay.frames[300][1] + 3, 0x01), r""),
    ("index-entry", lambda p, lay: flip(p, lay.index + 200, 0x01), r"index"),
    ("index-length", lambda p, lay: flip(p, lay.index_len + 7, 0x02), r"index"),
    ("truncated-middle", lambda p, lay: truncate(p, lay.size // 2), r""),
    ("file-checksum", lambda p, lay: flip(p, lay.file_checksum + 7, 0x01), r"checksum"),
]


@pytest.mark.parametrize("corrupt,problem", [(c[1], c[2]) for c in BIG_CORRUPTIONS],
                         ids=[c[0] for c in BIG_CORRUPTIONS])
def test_large_file_corruption(big_copy, out_dir, corrupt, problem):
    """Large files are decoded in parallel segments whose checksums are joined: corruption anywhere is
    still caught, and nothing is left behind."""
    path = big_copy / "ltx/0" / name(1)
    corrupt(path, layout(path))
    out = out_dir / "restored.db"
    line = assert_one_line_error(restore(big_copy, out), name(1), "level 0")
    assert re.search(problem, line), line
    assert_no_output(out)
