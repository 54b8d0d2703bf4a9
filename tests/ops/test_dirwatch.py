"""Directory replication (`dir:` + `pattern`, `recursive`, `watch`, `meta-dir`; reference §2.3, §3.13).

The scan, the per-database replica and meta layout (compared with what the reference binary makes from the
same config), its errors, the `databases`/`status` quirks, both-ways interop, and watch mode with a real
`replicate` process: databases added, removed, renamed and created in new subdirectories while others
keep replicating."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import apsw
import pytest

from litestream import dirwatch
from litestream.config import ConfigError, DBConfig, ReplicaConfig
from tests.cliutil import (
    Background,
    add_rows,
    l0_files,
    log_line,
    make_db,
    read_rows,
    restore,
    run_both,
    strip_times,
    wait_for,
    write_config,
)
from tests.conftest import run_ours
from tests.refbin import run_ref

FAST = "monitor-interval: 50ms"


# ------------------------------------------------------------------------------------ pattern matching

@pytest.mark.parametrize("pattern,name,want", [
    ("*.db", "a.db", True),
    ("*.db", "a.db-wal", False),
    ("*.db", ".db", True),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("[a-c]x", "bx", True),
    ("[^a-c]x", "bx", False),
    ("[^a-c]x", "dx", True),
    ("[!a]x", "!x", True),  # Go has no `!` negation: it is a member of the class
    ("[!a]x", "bx", False),
    (r"\*x", "*x", True),
    (r"\*x", "ax", False),
    ("[z-a]", "q", False),  # an empty range is valid in Go, it matches nothing
    ("*", "", True),
    ("", "", True),
    ("", "a", False),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "aXbYcZ", False),
    ("*x", "xx", True),
    ("t[e]n*.s?lite", "tenant1.sqlite", True),
    ("[\\]]", "]", True),
])
def test_go_match(pattern: str, name: str, want: bool) -> None:
    assert dirwatch.match(pattern, name) is want


@pytest.mark.parametrize("pattern", ["[", "[]a]", "[a-]", "a\\", "[^]", "*.[db", "[a-\\"])
def test_go_match_bad_patterns(pattern: str) -> None:
    with pytest.raises(dirwatch.PatternError, match="syntax error in pattern"):
        dirwatch.match(pattern, "anything")


# ------------------------------------------------------------------------------------------ startup scan

def _tree(root: Path) -> None:
    """SQLite files, a non-SQLite file with a matching name, sidecars, a nested tree."""
    (root / "sub" / "deep").mkdir(parents=True)
    for rel in ("a.db", "b.sqlite", "sub/c.db", "sub/deep/d.db"):
        make_db(root / rel)
    (root / "fake.db").write_text("not a database at all")
    (root / "short.db").write_bytes(b"SQLite format 3")  # 15 bytes: no header
    (root / "x.db-wal").write_bytes(b"SQLite format 3\0")  # a sidecar never counts, whatever it holds
    (root / "notes.txt").write_text("hello")


def test_find_databases_recursive_pattern_and_header(tmp_path: Path) -> None:
    _tree(tmp_path)
    d = str(tmp_path)
    assert dirwatch.find_databases(d, "*.db", False) == [f"{d}/a.db"]
    assert dirwatch.find_databases(d, "*.db", True) == [f"{d}/a.db", f"{d}/sub/c.db", f"{d}/sub/deep/d.db"]
    assert dirwatch.find_databases(d, "*", False) == [f"{d}/a.db", f"{d}/b.sqlite"]
    assert dirwatch.find_databases(d, "*.sqlite", True) == [f"{d}/b.sqlite"]
    assert dirwatch.find_databases(d, "?.db", True) == [f"{d}/a.db", f"{d}/sub/c.db", f"{d}/sub/deep/d.db"]
    # `dir` naming a database file replicates just that file.
    assert dirwatch.find_databases(f"{d}/a.db", "*.db", True) == [f"{d}/a.db"]
    with pytest.raises(ConfigError, match=f"^failed to scan directory {d}/nope: lstat {d}/nope: no such file or "
                                          "directory$"):
        dirwatch.find_databases(f"{d}/nope", "*.db", False)
    with pytest.raises(ConfigError, match=rf"^failed to scan directory {d}: syntax error in pattern$"):
        dirwatch.find_databases(d, "[", False)


def test_derived_layout_matches_reference_rules(tmp_path: Path) -> None:
    """The reference's own unit expectations (main_test.go) for replica and meta paths."""
    d = str(tmp_path)
    db = f"{d}/team-b/nested/db3.db"

    def derive(**kw) -> DBConfig:
        return dirwatch.derive_config(DBConfig(dir=d, pattern="*.db", recursive=True, **kw), d, db)

    assert derive(replica=ReplicaConfig(type="file", path="/backup")).replica.path == "/backup/team-b/nested/db3.db"
    assert derive(replica=ReplicaConfig(url="s3://bkt/backups")).replica.url == "s3://bkt/backups/team-b/nested/db3.db"
    assert derive(replica=ReplicaConfig(url="s3://bkt")).replica.url == "s3://bkt/team-b/nested/db3.db"
    assert derive(replica=ReplicaConfig(type="s3", path="base/")).replica.path == "base/team-b/nested/db3.db"
    assert derive(replicas=[ReplicaConfig(url="s3://b/p?region=x")]).replicas[0].url == \
        "s3://b/p/team-b/nested/db3.db?region=x"
    assert derive(replica=ReplicaConfig(url="file:///w/rep?x=1")).replica.path == "/w/rep/team-b/nested/db3.db"
    assert derive(replica=ReplicaConfig(url="file://w/rep")).replica.path == "/w/rep/team-b/nested/db3.db"
    assert derive(meta_dir="/m").meta_path == "/m/team-b/nested/db3.db-litestream"
    assert derive(meta_path="/m").meta_path == "/m/team-b/nested/.db3.db-litestream"
    assert derive(replica=ReplicaConfig(path="/r")).meta_path is None  # the default, next to the database
    # Names a URL must escape: an object store gets the name as it is; a file replica given as a URL gets
    # the escaped text as its directory name, as the reference's file backend keeps it.
    from litestream.backends import new_replica_client

    odd = f"{d}/tenant #1 100%?ü.db"
    for url, attr, want in (("s3://bkt/pre", "path", "pre/tenant #1 100%?ü.db"),
                            ("file:///w/rep", "path", "/w/rep/tenant%20%231%20100%25%3F%C3%BC.db")):
        rc = dirwatch.derive_config(DBConfig(dir=d, pattern="*.db", replica=ReplicaConfig(url=url)), d, odd)
        assert getattr(new_replica_client(rc.replica), attr) == want
    rc = dirwatch.derive_config(DBConfig(dir=d, pattern="*.db", replica=ReplicaConfig(path="/w/rep")), d, odd)
    assert new_replica_client(rc.replica).path == "/w/rep/tenant #1 100%?ü.db"


# --------------------------------------------------------------------------------- errors, CLI quirks

def test_no_databases_error_matches_reference(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.db").write_text("no header")
    write_config(tmp_path / "c.yml", """
        dbs:
          - dir: data
            pattern: "*.db"
            replica: {path: ./rep}
        """)
    ours, ref = run_both("replicate", "-config", "c.yml", cwd=tmp_path, timeout=30)
    want = f"no SQLite databases found in directory {tmp_path}/data with pattern *.db"
    assert ours.returncode == ref.returncode == 1
    assert ours.stderr.splitlines()[-1] == ref.stderr.splitlines()[-1] == f"Error: {want}"
    assert "Traceback" not in ours.stderr
    # A missing directory.
    write_config(tmp_path / "m.yml", "dbs:\n  - dir: missing\n    pattern: '*.db'\n    replica: {path: ./rep}\n")
    ours, ref = run_both("replicate", "-config", "m.yml", cwd=tmp_path, timeout=30)
    assert ours.returncode == ref.returncode == 1
    assert ours.stderr.splitlines()[-1] == ref.stderr.splitlines()[-1] == \
        f"Error: failed to scan directory {tmp_path}/missing: lstat {tmp_path}/missing: no such file or directory"


def test_bad_pattern_and_bad_replica_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    make_db(tmp_path / "data" / "a.db")
    write_config(tmp_path / "p.yml", "dbs:\n  - dir: data\n    pattern: '[a-'\n    replica: {path: ./rep}\n")
    ours, ref = run_both("replicate", "-config", "p.yml", cwd=tmp_path, timeout=30)
    assert ours.returncode == ref.returncode == 1
    assert ours.stderr.splitlines()[-1] == ref.stderr.splitlines()[-1] == \
        f"Error: failed to scan directory {tmp_path}/data: syntax error in pattern"
    write_config(tmp_path / "r.yml", "dbs:\n  - dir: data\n    pattern: '*.db'\n"
                                     "    replica: {url: 'file:///r', path: /x}\n")
    ours = run_ours("replicate", "-config", "r.yml", cwd=tmp_path, timeout=30)
    assert ours.returncode == 1
    assert ours.stderr.splitlines()[-1] == \
        f"Error: failed to create DB for {tmp_path}/data/a.db: cannot specify url & path for file replica"


def test_meta_path_collision_is_an_error(tmp_path: Path) -> None:
    """Two directories with the same meta-dir and the same file name would share a meta directory."""
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        make_db(tmp_path / d / "app.db")
    write_config(tmp_path / "c.yml", f"""
        dbs:
          - dir: one
            pattern: "*.db"
            meta-dir: {tmp_path}/meta
            replica: {{path: ./rep1}}
          - dir: two
            pattern: "*.db"
            meta-dir: {tmp_path}/meta
            replica: {{path: ./rep2}}
        """)
    ours = run_ours("replicate", "-config", "c.yml", cwd=tmp_path, timeout=30)
    assert ours.returncode == 1
    assert ours.stderr.splitlines()[-1] == (
        f"Error: meta-path collision: databases {tmp_path}/one/app.db and {tmp_path}/two/app.db would share "
        f"meta-path {tmp_path}/meta/app.db-litestream, causing replication state corruption")
    assert not (tmp_path / "meta").exists()


def test_databases_and_status_show_dir_entries_like_reference(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    make_db(tmp_path / "data" / "a.db")
    write_config(tmp_path / "c.yml", """
        dbs:
          - dir: data
            pattern: "*.db"
            replica: {url: "file:///tmp/rep"}
          - path: data/a.db
            replica: {path: ./rep2}
        """)
    write_config(tmp_path / "m.yml", "dbs:\n  - dir: data\n    pattern: '*.db'\n    meta-dir: ./m\n"
                                     "    replica: {path: ./rep}\n")
    for cmd in ("databases", "status"):
        for cfg in ("c.yml", "m.yml"):
            for extra in ((), ("-json",)):
                ours, ref = run_both(cmd, "-config", cfg, *extra, cwd=tmp_path)
                assert (ours.returncode, ours.stdout, ours.stderr) == (ref.returncode, ref.stdout, ref.stderr)
    ours = run_ours("databases", "-config", "c.yml", cwd=tmp_path)
    assert ours.stdout.splitlines()[1].split() == [str(tmp_path), "file"]
    assert run_ours("status", "-config", "m.yml", cwd=tmp_path).stderr == \
        "Error: 'meta-dir' can only be used with a directory\n"


# ----------------------------------------------------------------------------- layout and interop (-once)

def _once_config(root: Path, replica: str = "url: file://{root}/rep") -> Path:
    return write_config(root / "c.yml", f"""
        dbs:
          - dir: data
            pattern: "*.db"
            recursive: true
            meta-dir: {root}/meta
            replica:
              {replica.format(root=root)}
        """)


def _ltx_dirs(root: Path) -> set[str]:
    return {str(p.parent.relative_to(root)) for p in root.rglob("*.ltx")}


def test_layout_identical_to_reference_and_both_way_restores(tmp_path: Path) -> None:
    """The verified example of §3.13 and more: the same tree replicated (-once) by each binary gives the
    same replica and meta directories; every database restores with the other binary."""
    trees = {}
    for who in ("ours", "ref"):
        root = tmp_path / who
        (root / "data" / "sub" / "deep").mkdir(parents=True)
        for i, rel in enumerate(("a.db", "sub/b.db", "sub/deep/c.db", "sub/deep/my db.db", "ü.db")):
            make_db(root / "data" / rel, [f"{rel}-{i}-{j}" for j in range(5)])
        (root / "data" / "skip.db").write_text("not sqlite")
        make_db(root / "data" / "other.sqlite")  # pattern mismatch
        _once_config(root)
        runner = run_ref if who == "ref" else run_ours
        proc = runner("replicate", "-once", "-config", "c.yml", cwd=root, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "found databases in directory" in proc.stdout + proc.stderr
        trees[who] = (_ltx_dirs(root / "rep"), _ltx_dirs(root / "meta"))
    assert trees["ours"] == trees["ref"]
    # The reference's file backend keeps a file:// URL's path escaped: so do the replica directories.
    assert trees["ours"][0] == {"a.db/ltx/0", "sub/b.db/ltx/0", "sub/deep/c.db/ltx/0", "sub/deep/my%20db.db/ltx/0",
                                "%C3%BC.db/ltx/0"}
    assert trees["ours"][1] == {"a.db-litestream/ltx/0", "sub/b.db-litestream/ltx/0", "sub/deep/c.db-litestream/ltx/0",
                                "sub/deep/my db.db-litestream/ltx/0", "ü.db-litestream/ltx/0"}
    for who, other_is_ref in (("ours", True), ("ref", False)):
        root = tmp_path / who
        for rel, rep in (("a.db", "a.db"), ("sub/b.db", "sub/b.db"), ("sub/deep/c.db", "sub/deep/c.db"),
                         ("sub/deep/my db.db", "sub/deep/my%20db.db")):
            out = tmp_path / f"restored-{who}-{rel.replace('/', '_')}"
            proc = restore(f"file://{root}/rep/{rep}", out, ref=other_is_ref, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
            assert read_rows(out) == read_rows(root / "data" / rel)


def test_path_replica_and_meta_path_layout_matches_reference(tmp_path: Path) -> None:
    trees = {}
    for who in ("ours", "ref"):
        root = tmp_path / who
        (root / "data" / "t").mkdir(parents=True)
        make_db(root / "data" / "x.db")
        make_db(root / "data" / "t" / "y.db")
        write_config(root / "c.yml", f"""
            dbs:
              - dir: data
                pattern: "*.db"
                recursive: true
                meta-path: {root}/mp
                replica:
                  path: ./rep
            """)
        runner = run_ref if who == "ref" else run_ours
        proc = runner("replicate", "-once", "-config", "c.yml", cwd=root, timeout=60)
        assert proc.returncode == 0, proc.stderr
        trees[who] = (_ltx_dirs(root / "rep"), _ltx_dirs(root / "mp"))
    assert trees["ours"] == trees["ref"] == ({"x.db/ltx/0", "t/y.db/ltx/0"},
                                             {".x.db-litestream/ltx/0", "t/.y.db-litestream/ltx/0"})


# ------------------------------------------------------------------------------------------- watch mode

def _watch_config(root: Path, recursive: bool = True) -> Path:
    return write_config(root / "w.yml", f"""
        dbs:
          - dir: data
            pattern: "*.db"
            recursive: {'true' if recursive else 'false'}
            watch: true
            {FAST}
            replica:
              url: file://{root}/rep
              sync-interval: 50ms
        """)


def _replicated(root: Path, rel: str, n: int = 1) -> bool:
    return len(l0_files(root / "rep" / rel)) >= n


def _restores_to(root: Path, rel: str, want: list[str], ref: bool = False) -> bool:
    out = root / f"check-{rel.replace('/', '_')}-{os.getpid()}.db"
    out.unlink(missing_ok=True)
    proc = restore(root / "rep" / rel, out, ref=ref, cwd=root)
    ok = proc.returncode == 0 and read_rows(out) == want
    out.unlink(missing_ok=True)
    return ok


def _logged(bg: Background, msg: str, path: Path) -> bool:
    return any(f'msg="{msg}"' in ln and ln.endswith(f"path={path}") for ln in bg.output().splitlines())


def test_watch_add_remove_rename_and_new_subdirectory(tmp_path: Path) -> None:
    root = tmp_path
    (root / "data").mkdir()
    make_db(root / "data" / "one.db", ["o1"])
    make_db(root / "data" / "two.db", ["t1"])
    _watch_config(root)
    bg = Background(["replicate", "-config", "w.yml"], ref=False, cwd=root)
    try:
        assert wait_for(lambda: _replicated(root, "one.db") and _replicated(root, "two.db"), 15), bg.output()
        assert 'msg="found databases in directory" dir=data count=2 watch=true' in strip_times(bg.output())

        # A new database appears in the replica and restores (with the reference too).
        make_db(root / "data" / "three.db", ["n1", "n2"])
        assert wait_for(lambda: _logged(bg, "added database to replication", root / "data" / "three.db"), 10)
        assert f"dir={root}/data" in log_line(bg.output(), "added database to replication")
        assert wait_for(lambda: _restores_to(root, "three.db", ["n1", "n2"], ref=True), 10)

        # Removed: released (final sync), while the others keep replicating.
        add_rows(root / "data" / "two.db", ["t2"])
        assert wait_for(lambda: _restores_to(root, "two.db", ["t1", "t2"]), 10)
        for suffix in ("", "-wal", "-shm"):
            (root / "data" / f"two.db{suffix}").unlink(missing_ok=True)
        assert wait_for(lambda: _logged(bg, "removed database from replication", root / "data" / "two.db"), 10)
        before = l0_files(root / "rep" / "one.db")
        add_rows(root / "data" / "one.db", ["o2"])
        assert wait_for(lambda: len(l0_files(root / "rep" / "one.db")) > len(before), 10)
        assert wait_for(lambda: _restores_to(root, "one.db", ["o1", "o2"]), 10)
        assert _restores_to(root, "two.db", ["t1", "t2"])  # what it had when it went

        # Renamed: the old name is released, the new one replicated under its new name.
        add_rows(root / "data" / "three.db", ["n3"])
        assert wait_for(lambda: _restores_to(root, "three.db", ["n1", "n2", "n3"]), 10)
        # The application has closed it; our read transaction kept its close from checkpointing, and the
        # rename leaves the frames in three.db-wal unless we copy them in before letting go.
        os.rename(root / "data" / "three.db", root / "data" / "four.db")
        assert wait_for(lambda: _logged(bg, "removed database from replication", root / "data" / "three.db"), 10)
        assert wait_for(lambda: _logged(bg, "added database to replication", root / "data" / "four.db"), 10)
        add_rows(root / "data" / "four.db", ["n4"])
        assert wait_for(lambda: _restores_to(root, "four.db", ["n1", "n2", "n3", "n4"]), 10)
        stale = l0_files(root / "rep" / "three.db")

        # A new subdirectory with a database (recursive).
        (root / "data" / "sub" / "deeper").mkdir(parents=True)
        make_db(root / "data" / "sub" / "deeper" / "five.db", ["f1"])
        assert wait_for(lambda: _restores_to(root, "sub/deeper/five.db", ["f1"]), 10), bg.output()
        add_rows(root / "data" / "sub" / "deeper" / "five.db", ["f2"])
        assert wait_for(lambda: _restores_to(root, "sub/deeper/five.db", ["f1", "f2"]), 10)
        assert (root / "data" / ".five.db-litestream").exists() is False
        assert (root / "data" / "sub" / "deeper" / ".five.db-litestream").is_dir()

        # Released databases stay released.
        assert l0_files(root / "rep" / "three.db") == stale
        assert not (root / "rep" / "two.db" / "ltx" / "0").exists() or \
            _restores_to(root, "two.db", ["t1", "t2"])
    finally:
        bg.signal()
        rc = bg.finish(timeout=60)
    assert rc == 0, bg.stderr
    assert "Traceback" not in bg.stdout + bg.stderr


def test_watch_empty_file_gets_header_later_and_dir_removal(tmp_path: Path) -> None:
    """SQLite creates the file and writes page 1 later: picked up when the header appears. Files that are
    not databases, or do not match, are ignored. Removing a directory releases every database below."""
    root = tmp_path
    (root / "data" / "grp").mkdir(parents=True)
    make_db(root / "data" / "grp" / "g1.db", ["g"])
    _watch_config(root)
    bg = Background(["replicate", "-config", "w.yml"], ref=False, cwd=root)
    try:
        assert wait_for(lambda: _replicated(root, "grp/g1.db"), 15), bg.output()
        late = root / "data" / "late.db"
        late.touch()
        (root / "data" / "junk.db").write_text("junk")
        make_db(root / "data" / "other.sqlite")
        # Well past the debounce: the empty file was looked at and is still not a database.
        assert not wait_for(lambda: (root / "rep" / "late.db").exists(), 1.0)
        conn = apsw.Connection(str(late))  # the same file, now written by SQLite, kept open
        try:
            list(conn.execute("PRAGMA journal_mode=WAL"))
            with conn:
                conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
                conn.execute("INSERT INTO t(v) VALUES ('late')")
            assert wait_for(lambda: _restores_to(root, "late.db", ["late"]), 10), bg.output()
        finally:
            conn.close()
        assert not (root / "rep" / "junk.db").exists()
        assert not (root / "rep" / "other.sqlite").exists()

        make_db(root / "data" / "grp" / "g2.db", ["h"])
        (root / "data" / "mv" / "inner").mkdir(parents=True)
        make_db(root / "data" / "mv" / "inner" / "m1.db", ["m"])
        assert wait_for(lambda: _replicated(root, "grp/g2.db") and _replicated(root, "mv/inner/m1.db"), 10)
        add_rows(root / "data" / "mv" / "inner" / "m1.db", ["m2"])  # written while we hold it open
        assert wait_for(lambda: _restores_to(root, "mv/inner/m1.db", ["m", "m2"]), 10)
        shutil.rmtree(root / "data" / "grp")
        os.rename(root / "data" / "mv", root / "moved-away")  # out of the watched tree: its databases go too
        for rel in ("grp/g1.db", "grp/g2.db", "mv/inner/m1.db"):
            assert wait_for(lambda rel=rel: _logged(bg, "removed database from replication", root / "data" / rel),
                            10), bg.output()
        stale = l0_files(root / "rep" / "mv" / "inner" / "m1.db")
        # Its -wal moved with it: what was written while we held it is still there.
        add_rows(root / "moved-away" / "inner" / "m1.db", ["after the move"])
        assert read_rows(root / "moved-away" / "inner" / "m1.db") == ["m", "m2", "after the move"]
        add_rows(late, ["later"])
        assert wait_for(lambda: _restores_to(root, "late.db", ["late", "later"]), 10)
        assert l0_files(root / "rep" / "mv" / "inner" / "m1.db") == stale
    finally:
        bg.signal()
        rc = bg.finish(timeout=60)
    assert rc == 0, bg.stderr
    assert "error" not in bg.stdout.lower().replace("level=info", ""), bg.stdout


def test_watch_non_recursive_ignores_subdirectories_and_starts_empty(tmp_path: Path) -> None:
    root = tmp_path
    (root / "data").mkdir()
    _watch_config(root, recursive=False)
    bg = Background(["replicate", "-config", "w.yml"], ref=False, cwd=root)
    try:
        assert wait_for(lambda: "found databases in directory" in bg.output(), 15)
        assert "count=0" in log_line(bg.output(), "found databases in directory")
        (root / "data" / "sub").mkdir()
        make_db(root / "data" / "sub" / "deep.db")
        make_db(root / "data" / "top.db", ["x"])
        assert wait_for(lambda: _restores_to(root, "top.db", ["x"]), 10), bg.output()
        assert not (root / "rep" / "sub").exists()
    finally:
        bg.signal()
        assert bg.finish(timeout=60) == 0, bg.stderr


def test_reference_watch_replica_restores_with_ours(tmp_path: Path) -> None:
    """The reference in watch mode replicates a database created after its start; ours restores it."""
    root = tmp_path
    (root / "data").mkdir()
    make_db(root / "data" / "first.db", ["a"])
    _watch_config(root)
    bg = Background(["replicate", "-config", "w.yml"], ref=True, cwd=root)
    try:
        assert wait_for(lambda: _replicated(root, "first.db"), 15), bg.output()
        (root / "data" / "s").mkdir()
        make_db(root / "data" / "s" / "later.db", ["b", "c"])
        assert wait_for(lambda: _restores_to(root, "s/later.db", ["b", "c"]), 15), bg.output()
        assert wait_for(lambda: _restores_to(root, "first.db", ["a"]), 10)
    finally:
        bg.signal()
        bg.finish(timeout=60)


# ------------------------------------------------------------------------------------------ resource limits

def test_limits_warn_once_when_inotify_watches_are_too_few() -> None:
    """The kernel's limit is a sysctl shared by the machine: the check runs against a lowered copy of it."""
    import io

    from litestream import logs

    buf = io.StringIO()
    logs.init_log(buf, "INFO", "text", False)
    try:
        limits = dirwatch.Limits()
        assert limits.max_watches == int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
        limits.check(dbs=10, dir_watches=1)
        assert buf.getvalue() == ""
        limits.max_watches = 8
        limits.check(dbs=10, dir_watches=1)
        limits.check(dbs=20, dir_watches=1)  # said once
    finally:
        logs.init_log("stdout", "INFO", "text", False)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    assert 'level=WARN msg="inotify watch limit too low for the number of databases;' in lines[0]
    assert "databases=10 needed=11 limit=8" in lines[0]
    assert "fs.inotify.max_user_watches" in lines[0]


def test_replicate_warns_when_the_open_file_limit_is_too_low(tmp_path: Path) -> None:
    """A hard limit replicate cannot raise: each database needs several descriptors; the warning names the
    limit, and the databases that fit still replicate."""
    import resource
    import signal
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    for i in range(30):
        make_db(tmp_path / "data" / f"d{i:02d}.db")
    _watch_config(tmp_path, recursive=False)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    out = tmp_path / "out.log"
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "litestream", "replicate", "-config", "w.yml"], cwd=tmp_path,
                                stdout=fh, stderr=subprocess.STDOUT, preexec_fn=low_limit)
    try:
        assert wait_for(lambda: "open file limit too low" in out.read_text(), 20), out.read_text()
        assert wait_for(lambda: all(_replicated(tmp_path, f"d{i:02d}.db") for i in range(30)), 20), out.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    line = log_line(out.read_text(), "open file limit too low for the number of databases")
    assert line is not None and "databases=30" in line and "limit=256" in line
