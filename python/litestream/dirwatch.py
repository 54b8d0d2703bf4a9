"""Directory replication (`dir:` + `pattern`, `recursive`, `watch`, `meta-dir`), as the reference's
FindSQLiteDatabases / NewDBsFromDirectoryConfig / DirectoryMonitor (§3.13).

At startup `expand_dir` finds the SQLite files below `dir` and derives one per-database config from the
entry: the replica gets the database's path relative to `dir` appended (URL path, backend path, or a
file path join) and the meta directory is `<meta-dir>/<rel>-litestream`, `<meta-path>/<reldir>/.<name>
-litestream`, or the usual one next to the database.

With `watch: true` the service started by `start(daemon)` follows the directory with inotify: one
thread for every watched directory of the process, blocked in poll() while nothing happens (the 250 ms
debounce is that poll's timeout, one deadline per directory entry, never a timer per database). The
directory watches do not ask for IN_MODIFY, which would deliver every WAL write of every database; a
file that matches the pattern but has no SQLite header yet (SQLite creates the file, then writes page 1)
gets its own IN_MODIFY/IN_CLOSE_WRITE watch until the header appears."""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import select
import stat
import struct
import threading
import time
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import msgspec

from litestream import logs
from litestream.config import ConfigError, DBConfig, ReplicaConfig, expand_path
from litestream.db.meta import META_SUFFIX
from litestream.watch import (
    IN_CLOEXEC,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_TO,
    IN_NONBLOCK,
    _libc,
)

log = logs.get_logger("dirwatch")

SQLITE_HEADER = b"SQLite format 3\x00"
DEBOUNCE_S = 0.25  # the reference's debounceInterval
SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
FDS_PER_DB = 8  # measured: our three descriptors, SQLite's three, a spare connection's while syncing

IN_MOVED_FROM = 0x00000040
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
DIR_MASK = (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
            | IN_ONLYDIR)
FILE_MASK = IN_MODIFY | IN_CLOSE_WRITE
_EVENT = struct.Struct("iIII")


# ------------------------------------------------------------------------------------ pattern matching

class PatternError(ValueError):
    def __init__(self) -> None:
        super().__init__("syntax error in pattern")  # Go's filepath.ErrBadPattern


def _class_char(p: str, i: int) -> tuple[str, int]:
    """One character of a [...] range at p[i] (Go's getEsc): `-` and `]` must be escaped, and the class
    must go on after it."""
    if i >= len(p) or p[i] in "-]":
        raise PatternError
    if p[i] == "\\":
        i += 1
        if i >= len(p):
            raise PatternError
    if i + 1 >= len(p):
        raise PatternError  # unterminated class
    return p[i], i + 1


def compile_pattern(pattern: str) -> list:
    """Go filepath.Match syntax as tokens: "*", "?", a literal (str of length 1), or (negated, ranges).
    Raises PatternError for what Go rejects (a bad pattern always fails in Go, whatever the name)."""
    tokens: list = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if not tokens or tokens[-1] != "*":
                tokens.append("*")
            i += 1
        elif c == "?":
            tokens.append("?")
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise PatternError
            tokens.append(("lit", pattern[i + 1]))
            i += 2
        elif c == "[":
            i += 1
            negated = i < n and pattern[i] == "^"
            if negated:
                i += 1
            ranges = []
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _class_char(pattern, i)
                hi = lo
                if pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                ranges.append((lo, hi))
            tokens.append((negated, tuple(ranges)))
        else:
            tokens.append(("lit", c))
            i += 1
    return tokens


def _token_matches(tok, ch: str) -> bool:
    if tok == "?":
        return ch != "/"
    if tok[0] == "lit":
        return tok[1] == ch
    negated, ranges = tok
    return any(lo <= ch <= hi for lo, hi in ranges) != negated


def match_tokens(tokens: list, name: str) -> bool:
    """Glob matching with backtracking to the last star (a star never crosses '/')."""
    ti = ni = 0
    star_ti, star_ni = -1, 0
    while ni < len(name):
        if ti < len(tokens) and tokens[ti] == "*":
            star_ti, star_ni = ti, ni
            ti += 1
        elif ti < len(tokens) and _token_matches(tokens[ti], name[ni]):
            ti += 1
            ni += 1
        elif star_ti >= 0 and name[star_ni] != "/":
            star_ni += 1
            ti, ni = star_ti + 1, star_ni
        else:
            return False
    while ti < len(tokens) and tokens[ti] == "*":
        ti += 1
    return ti == len(tokens)


def match(pattern: str, name: str) -> bool:
    """Go's filepath.Match(pattern, name) (raises PatternError like its ErrBadPattern)."""
    return match_tokens(compile_pattern(pattern), name)


# ------------------------------------------------------------------------------------------ startup scan

def is_sqlite_database(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


def _skipped(name: str) -> bool:
    return name.endswith(SKIP_SUFFIXES)


def _os_error(op: str, path: str, e: OSError) -> str:
    msg = os.strerror(e.errno) if e.errno else str(e)
    return f"{op} {path}: {msg[:1].lower()}{msg[1:]}"  # Go's wording: "lstat /x: no such file or directory"


def find_databases(dir_path: str, pattern: str, recursive: bool) -> list[str]:
    """The SQLite files below dir_path whose base name matches pattern, in filepath.Walk's order (names
    sorted, subdirectories where their name sorts). Like Walk, symbolic links inside the tree are not
    followed into directories; `dir` itself may be a link to a directory (Walk would treat it as a file
    and find nothing). Raises ConfigError `failed to scan directory D: ...`."""
    tokens = _tokens_or_error(dir_path, pattern)
    found: list[str] = []

    def visit_file(path: str) -> None:
        name = os.path.basename(path)
        if not _skipped(name) and match_tokens(tokens, name) and is_sqlite_database(path):
            found.append(path)

    def walk(path: str) -> None:
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise ConfigError(f"failed to scan directory {dir_path}: {_os_error('open', path, e)}") from None
        for name in names:
            child = os.path.join(path, name)
            try:
                st = os.lstat(child)
            except FileNotFoundError:
                continue  # removed while we scan
            except OSError as e:
                raise ConfigError(f"failed to scan directory {dir_path}: {_os_error('lstat', child, e)}") from None
            if _is_dir(st.st_mode):
                if recursive and not _is_meta_dir_name(name):
                    walk(child)
            else:
                visit_file(child)

    try:
        st = os.stat(dir_path)
    except OSError as e:
        raise ConfigError(f"failed to scan directory {dir_path}: {_os_error('lstat', dir_path, e)}") from None
    if _is_dir(st.st_mode):
        walk(dir_path)
    else:
        visit_file(dir_path)  # Walk of a file visits just that file
    return found


def _is_meta_dir_name(name: str) -> bool:
    """A database's default meta directory (`.<name>-litestream`): it holds LTX files only."""
    return name.startswith(".") and name.endswith(META_SUFFIX)


def _is_dir(mode: int) -> bool:
    return stat.S_ISDIR(mode)


def _tokens_or_error(dir_path: str, pattern: str) -> list:
    try:
        return compile_pattern(pattern)
    except PatternError as e:
        raise ConfigError(f"failed to scan directory {dir_path}: {e}") from None


# ------------------------------------------------------------------------------- per-database configs

def _go_path_join(base: str, rel: str) -> str:
    out = posixpath.normpath(posixpath.join(base, rel))
    return "/" + out.lstrip("/") if out.startswith("//") else out


def _go_escape_path(p: str) -> str:
    # Go's url escaping of a path: letters, digits, -_.~ and $&+,/:;=@ stay, every other byte is %XX.
    return quote(p, safe="/$&+,:;=@")


def _joined_url_path(url: str, rel: str):
    """The reference's appendRelativePathToURL: (split URL, its unescaped path joined with rel, rooted)."""
    try:
        u = urlsplit(url)
    except ValueError as e:
        raise ConfigError(f"parse replica url: {e}") from None
    base = unquote(u.path)
    joined = _go_path_join(base, rel) if base else rel
    return u, "/" + joined.lstrip("/")


def _replica_with_rel(rc: ReplicaConfig, rel: str) -> ReplicaConfig:
    """cloneReplicaConfigWithRelativePath: the replica of one discovered database."""
    if rel in ("", "."):
        return msgspec.structs.replace(rc)
    if rc.url:
        u, joined = _joined_url_path(rc.url, rel)
        if u.scheme.lower() == "file" and not rc.path:
            # The reference re-serialises the URL and its file backend keeps the path as escaped text: a
            # database `my db.db` is replicated to `<dir>/my%20db.db`. Same directory here, given as a path
            # so that no second round of URL parsing is involved.
            escaped = _go_escape_path(joined)
            host = f"/{u.netloc}" if u.netloc else ""
            return msgspec.structs.replace(rc, url="", type="file", path=_go_path_join(host + escaped, "."))
        # Other backends use the unescaped path (s3 keys, etc.): put it back escaped, parsed again later.
        return msgspec.structs.replace(
            rc, url=urlunsplit((u.scheme, u.netloc, _go_escape_path(joined), u.query, u.fragment)))
    if rc.replica_type() == "file":
        return msgspec.structs.replace(rc, path=os.path.normpath(os.path.join(rc.path, rel)) if rc.path else rel)
    return msgspec.structs.replace(rc, path=_go_path_join(rc.path, rel) if rc.path else rel)


def _meta_path_with_rel(base: str, rel: str) -> str:
    """deriveMetaPathForDirectoryEntry: `<base>/<reldir>/.<name>-litestream`."""
    rel = os.path.normpath(rel)
    if rel in (".", ""):
        return base
    rel_dir, rel_file = os.path.split(rel)
    return os.path.normpath(os.path.join(base, rel_dir, f".{rel_file}{META_SUFFIX}"))


def derive_config(dbc: DBConfig, dir_path: str, db_path: str) -> DBConfig:
    """newDBFromDirectoryEntry: the entry's settings for one database found below dir_path."""
    rel = os.path.relpath(db_path, dir_path)
    meta_path = dbc.meta_path
    if dbc.meta_dir is not None:
        meta_path = os.path.join(expand_path(dbc.meta_dir), rel + META_SUFFIX)
    elif dbc.meta_path is not None:
        meta_path = _meta_path_with_rel(expand_path(dbc.meta_path), rel)
    try:
        replica = _replica_with_rel(dbc.replica, rel) if dbc.replica is not None else None
        replicas = [_replica_with_rel(r, rel) for r in dbc.replicas] if dbc.replicas else dbc.replicas
    except ConfigError as e:
        raise ConfigError(f"failed to configure replica for {db_path}: {e}") from None
    return msgspec.structs.replace(dbc, path=db_path, dir="", pattern="", recursive=False, watch=False,
                                   meta_path=meta_path, meta_dir=None, replica=replica, replicas=replicas)


def dir_path_of(dbc: DBConfig) -> str:
    return expand_path(dbc.dir)


def expand_dir(dbc: DBConfig) -> list[DBConfig]:
    """NewDBsFromDirectoryConfig without building the databases: one derived config per database found.
    No database and no watch is an error, as in the reference."""
    dir_path = dir_path_of(dbc)
    paths = find_databases(dir_path, dbc.pattern, dbc.recursive)
    if not paths and not dbc.watch:
        raise ConfigError(f"no SQLite databases found in directory {dir_path} with pattern {dbc.pattern}")
    return [derive_config(dbc, dir_path, p) for p in paths]


def collision_error(first: str, second: str, meta: str) -> ConfigError:
    return ConfigError(f"meta-path collision: databases {first} and {second} would share meta-path {meta}, "
                       "causing replication state corruption")


# ------------------------------------------------------------------------------------- resource limits

def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class Limits:
    """Warns (once per kind) when the process is about to run out of inotify watches or descriptors:
    without a WAL watch a database falls back to polling, without descriptors it cannot be opened."""

    def __init__(self) -> None:
        self.max_watches = _read_int("/proc/sys/fs/inotify/max_user_watches")
        self._warned: set[str] = set()

    def check(self, dbs: int, dir_watches: int) -> None:
        needed = dbs + dir_watches
        if self.max_watches is not None and needed > self.max_watches and "watches" not in self._warned:
            self._warned.add("watches")
            log.warn("inotify watch limit too low for the number of databases; databases beyond it are polled "
                     "every monitor-interval", databases=dbs, needed=needed, limit=self.max_watches,
                     hint="raise fs.inotify.max_user_watches (sysctl)")
        import resource

        try:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except (ValueError, OSError):
            return
        fds = dbs * FDS_PER_DB + 64
        if soft != resource.RLIM_INFINITY and fds > soft and "fds" not in self._warned:
            self._warned.add("fds")
            log.warn("open file limit too low for the number of databases", databases=dbs, needed=fds,
                     limit=soft, hint="raise the nofile limit (ulimit -n, LimitNOFILE=)")


# ----------------------------------------------------------------------------------------- watch mode

class Monitor:
    """One `dir:` entry with `watch: true`: its inotify instance, watched directories, pending paths."""

    def __init__(self, service: DirWatchService, dbc: DBConfig) -> None:
        self.service = service
        self.store = service.store
        self.dbc = dbc
        self.dir_path = dir_path_of(dbc)
        self.recursive = dbc.recursive
        self.tokens = _tokens_or_error(self.dir_path, dbc.pattern)
        self.meta_dir = expand_path(dbc.meta_dir) if dbc.meta_dir else None
        self.log = log.with_attrs(dir=self.dir_path)
        lib = service.lib
        self.fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.dirs: dict[str, int] = {}  # watched directory -> wd
        self.files: dict[str, int] = {}  # matching file without a SQLite header yet -> wd
        self.by_wd: dict[int, tuple[bool, str]] = {}  # wd -> (is a directory, path)
        self.dbs: dict[str, bool] = {}  # database path -> this entry added it to the store
        self.pending: dict[str, int] = {}
        self.deadline: float | None = None
        # The databases the startup scan found are ours already.
        for e in list(self.store.entries):
            if e.source == "dir" and self._covers(e.path):
                self.dbs[e.path] = True

    # ------------------------------------------------------------------------------------- helpers

    def _covers(self, path: str) -> bool:
        if path == self.dir_path:
            return True  # `dir` is the database file itself
        parent, name = os.path.split(path)
        under = parent == self.dir_path or (self.recursive and parent.startswith(self.dir_path + os.sep))
        return under and self._matches(name)

    def _skip_dir(self, path: str) -> bool:
        """Our own meta directories (`.<db>-litestream`, or meta-dir inside the tree): never databases, and
        watching them would deliver an event for every L0 file written."""
        return _is_meta_dir_name(os.path.basename(path)) or path == self.meta_dir

    def _matches(self, name: str) -> bool:
        return not _skipped(name) and match_tokens(self.tokens, name)

    def _add_watch(self, path: str, mask: int) -> int:
        wd = self.service.lib.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return wd

    def _rm_watch(self, wd: int) -> None:
        self.by_wd.pop(wd, None)
        self.service.lib.inotify_rm_watch(self.fd, wd)

    def watch_dir(self, path: str, strict: bool = False) -> None:
        if path in self.dirs:
            return
        try:
            wd = self._add_watch(path, DIR_MASK)
        except OSError as e:
            if strict:
                raise
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                self.log.error("add directory watch", path=path, error=e.strerror or str(e))
            return
        self.dirs[path] = wd
        self.by_wd[wd] = (True, path)
        self.log.debug("watching directory", path=path)

    def _watch_file(self, path: str) -> None:
        if path in self.files:
            return
        try:
            wd = self._add_watch(path, FILE_MASK)
        except OSError:
            return  # gone again; its removal event follows
        self.files[path] = wd
        self.by_wd[wd] = (False, path)

    def _unwatch_file(self, path: str) -> None:
        wd = self.files.pop(path, None)
        if wd is not None:
            self._rm_watch(wd)

    def _queue(self, path: str, mask: int) -> None:
        self.pending[path] = self.pending.get(path, 0) | mask
        if self.deadline is None:
            # Like the reference: one timer from the first event of a burst, not pushed back by the others.
            self.deadline = time.monotonic() + DEBOUNCE_S

    # ---------------------------------------------------------------------------------------- scan

    def start(self) -> None:
        """Watch the directory (and its subdirectories when recursive), then pick up what appeared
        since the startup scan."""
        if os.path.isdir(self.dir_path):
            self.watch_dir(self.dir_path, strict=True)
        self.scan(self.dir_path, at_start=True)

    def scan(self, top: str, at_start: bool = False) -> None:
        """Databases below top that we do not have yet: at start added at once (as the reference's
        scanDirectory), later queued like any new file; new subdirectories get watched first, so nothing
        created in them is missed."""
        def consider(path: str) -> None:
            if path in self.dbs or not self._matches(os.path.basename(path)):
                return
            if at_start and is_sqlite_database(path):
                self._add_db(path)
                if path in self.dbs:
                    return
            self._watch_file(path)  # before any later look at it, so no write in between is missed
            if not at_start:
                self._queue(path, IN_CREATE)

        if not os.path.isdir(top):
            if top == self.dir_path and os.path.exists(top):
                consider(top)
            return
        stack = [top]
        while stack:
            d = stack.pop()
            self.watch_dir(d)
            try:
                with os.scandir(d) as it:
                    entries = sorted(it, key=lambda x: x.name)
            except OSError:
                continue
            subdirs = []
            for ent in entries:
                try:
                    is_dir = ent.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if self.recursive and not self._skip_dir(ent.path):
                        subdirs.append(ent.path)
                else:
                    consider(ent.path)
            stack.extend(reversed(subdirs))

    # -------------------------------------------------------------------------------------- events

    def read_events(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            off = 0
            while off + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, off)
                raw = data[off + _EVENT.size:off + _EVENT.size + length].rstrip(b"\0")
                off += _EVENT.size + length
                try:
                    self.handle(wd, mask, os.fsdecode(raw))
                except Exception as e:  # one bad event must not end the watch
                    self.log.error("directory watcher error", error=repr(e))

    def handle(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            self.log.warn("directory watcher event queue overflowed, rescanning")
            self.rescan()
            return
        target = self.by_wd.get(wd)
        if target is None:
            return
        is_dir_watch, path = target
        if mask & IN_IGNORED:
            # The kernel dropped the watch (its file or directory is gone).
            self.by_wd.pop(wd, None)
            if is_dir_watch:
                if self.dirs.get(path) == wd:
                    self._drop_dir(path)
            elif self.files.get(path) == wd:
                del self.files[path]
            return
        if not is_dir_watch:
            if mask & (IN_MODIFY | IN_CLOSE_WRITE):
                self._queue(path, mask)  # the header may be there now
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            if path == self.dir_path:
                self.log.warn("watched directory removed, no longer watching it", path=path)
            self._drop_dir(path)
            return
        if not name or _skipped(name):
            return
        child = os.path.join(path, name)
        if mask & IN_ISDIR:
            if mask & (IN_DELETE | IN_MOVED_FROM):
                self._drop_dir(child)
            elif mask & (IN_CREATE | IN_MOVED_TO) and self.recursive and not self._skip_dir(child):
                self.scan(child)
            return
        if mask & (IN_DELETE | IN_MOVED_FROM):
            self.pending.pop(child, None)
            self._unwatch_file(child)
            self._remove_db(child, moved=bool(mask & IN_MOVED_FROM))
        elif mask & (IN_CREATE | IN_MOVED_TO):
            if not self._matches(name):
                return
            if child in self.dbs:
                # Another file now has this name (a rename over it): the old one goes, the new one comes.
                self._remove_db(child)
            self._watch_file(child)
            self._queue(child, mask)

    def flush(self) -> None:
        """The debounce expired: register what is a SQLite database by now."""
        pending, self.pending, self.deadline = self.pending, {}, None
        for path in sorted(pending):
            if self.service.stopping:
                return
            if path in self.dbs:
                self._unwatch_file(path)
                continue
            if not os.path.exists(path):
                self._unwatch_file(path)
                continue
            if is_sqlite_database(path):
                self._add_db(path)
                if path in self.dbs:
                    self._unwatch_file(path)
            # Otherwise the file keeps its watch: its next write may bring the header.

    def rescan(self) -> None:
        """After an event queue overflow: release what is gone, pick up what is new."""
        for path in [p for p in self.dbs if not os.path.exists(p)]:
            self._remove_db(path)
        for d in [d for d in self.dirs if not os.path.isdir(d)]:
            self._drop_dir(d)
        self.scan(self.dir_path)

    # ------------------------------------------------------------------------------ store changes

    def _add_db(self, path: str) -> None:
        from litestream.assemble import new_entry

        try:
            dbc = derive_config(self.dbc, self.dir_path, path)
            entry = new_entry(path, [dbc], source="dir")
        except Exception as e:  # ConfigError, BackendError: a bad replica for this one database only
            self.log.error("configure database", path=path, error=str(e))
            return
        meta = entry.db.meta.path
        for other in list(self.store.entries):
            if other.db.meta.path == meta and other.path != path:
                self.log.error("configure database", path=path, error=str(collision_error(other.path, path, meta)))
                return
        if not self.store.add(entry):
            if self.store.find(path) is not None:
                self.dbs[path] = False  # listed elsewhere in the config (or registered): not ours to remove
            return
        self.dbs[path] = True
        self.log.info("added database to replication", path=path)
        self.service.check_limits()

    def _remove_db(self, path: str, moved: bool = False) -> None:
        owned = self.dbs.pop(path, None)
        if not owned:
            return
        entry = self.store.find(path)
        if moved and entry is not None and self.store.is_open(entry):
            _checkpoint_moved(entry.db, self.log)
        self.store.remove(path)
        self.log.info("removed database from replication", path=path)

    def _drop_dir(self, path: str) -> None:
        """A directory went away (or was renamed): everything below it is released. No checkpoint as for a
        renamed file: each -wal moved along with its database."""
        prefix = path + os.sep
        for d in [d for d in self.dirs if d == path or d.startswith(prefix)]:
            self._rm_watch(self.dirs.pop(d))
        for f in [f for f in self.files if f.startswith(prefix)]:
            self._unwatch_file(f)
        for p in [p for p in self.pending if p.startswith(prefix)]:
            del self.pending[p]
        for p in sorted(p for p in self.dbs if p == path or p.startswith(prefix)):
            self._remove_db(p)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _checkpoint_moved(db, logger) -> None:
    """A database renamed away: our read transaction kept the application's last close from checkpointing,
    and SQLite never checkpoints a file that moved when it closes, so its committed frames would stay in the
    old name's -wal, invisible under the new name. Replicate them, then copy them into the file through the
    connection we have (the old name cannot be opened again). A frame written in between is copied too;
    the final sync's guard sees the copy counters past its position and re-bases (see sync.py)."""
    with db.lock:
        try:
            db.sync(checkpoint=False)
            conns = db.conns
            if conns is None or conns.reader is None:
                return
            conns.end_read()
            busy, log, done = conns.checkpoint_on(conns.reader, "PASSIVE")
            logger.debug("checkpoint before release", path=db.path, busy=busy, log=log, checkpointed=done)
        except Exception as e:  # the release goes ahead; the frames stay in the old -wal
            logger.warn("checkpoint before release failed", path=db.path, error=str(e))


class DirWatchService:
    """Every watching `dir:` entry of the process, served by one thread."""

    def __init__(self, store, lib) -> None:
        self.store = store
        self.lib = lib
        self.monitors: list[Monitor] = []
        self.stopping = False
        self.limits = Limits()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None

    def check_limits(self) -> None:
        self.limits.check(len(self.store.entries),
                          sum(len(m.dirs) + len(m.files) for m in self.monitors))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="litestream-dirwatch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        poller = select.poll()
        by_fd = {m.fd: m for m in self.monitors}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self.stopping:
            deadlines = [m.deadline for m in self.monitors if m.deadline is not None]
            timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic()) * 1000
            try:
                ready = poller.poll(timeout)
            except InterruptedError:
                continue
            if self.stopping:
                return
            for fd, _ in ready:
                m = by_fd.get(fd)
                if m is not None:
                    m.read_events()
            now = time.monotonic()
            for m in self.monitors:
                if m.deadline is not None and m.deadline <= now and not self.stopping:
                    try:
                        m.flush()
                    except Exception as e:
                        m.log.error("directory watcher error", error=repr(e))

    def close(self) -> None:
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            # A registration or a final sync in progress finishes first (bounded by shutdown-sync-timeout).
            self._thread.join(timeout=self.store.shutdown_sync_timeout_s + 30)
        for m in self.monitors:
            m.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


def start(daemon) -> DirWatchService | None:
    """The daemon's directory-monitor service: None unless some `dir:` entry has `watch: true`. Also
    warns when the inotify and descriptor limits are too low for the databases being replicated."""
    from litestream.daemon import ServiceError

    store = daemon.store
    entries = [d for d in daemon.config.dbs if d.dir and d.watch]
    if not entries:
        Limits().check(len(store.entries), 0)
        return None
    lib = _libc()
    if lib is None:
        raise ServiceError("directory watch: inotify is not available on this system")
    service = DirWatchService(store, lib)
    try:
        for dbc in entries:
            m = Monitor(service, dbc)
            service.monitors.append(m)
            try:
                m.start()
            except OSError as e:
                raise ServiceError(f"start directory monitor for {dbc.dir}: "
                                   f"{_os_error('inotify_add_watch', e.filename or m.dir_path, e)}") from None
    except BaseException:
        service.close()
        raise
    service.check_limits()
    service.start()
    return service
