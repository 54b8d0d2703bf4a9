"""Wake-up on change: inotify on each database's WAL, and on the directory while a database file does not
exist yet. Without inotify, callers fall back to polling.

The watches are persistent; after handling a batch the thread pauses briefly so that the kernel merges
the many identical events of a busy writer into one (it coalesces an event with the one still unread
before it), which bounds the wake-ups to a few per second per database. One-shot watches would need no
pause, but re-adding one races with the removal of the previous one and can lose the mapping."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import threading
import time
from collections.abc import Callable

from litestream import logs

log = logs.get_logger("watch")

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_IGNORED = 0x00008000
IN_MASK_ADD = 0x20000000
IN_ONESHOT = 0x80000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_EVENT = struct.Struct("iIII")
COALESCE_S = 0.1


def _libc():
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        return lib
    except (OSError, AttributeError):
        return None


class Watcher:
    """Calls back when a watched file changes. add_file() watches are one-shot: call add_file() again
    (before reading the file) to be told about the next change."""

    def __init__(self) -> None:
        self._lib = _libc()
        self.fd = -1
        if self._lib is not None:
            self.fd = self._lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self.available = self.fd >= 0
        self._lock = threading.Lock()
        self._by_wd: dict[int, list[tuple[Callable[[], None], str | None]]] = {}
        self._wd_by_path: dict[str, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._stopped = False
        self._thread = None
        if self.available:
            self._thread = threading.Thread(target=self._loop, name="litestream-watch", daemon=True)
            self._thread.start()

    def _add(self, path: str, mask: int, callback: Callable[[], None], name: str | None) -> bool:
        if not self.available:
            return False
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:
                log.debug("inotify_add_watch failed", path=path, error=os.strerror(err))
            return False
        with self._lock:
            self._wd_by_path[path] = wd
            entries = self._by_wd.setdefault(wd, [])
            if (callback, name) not in entries:
                entries.append((callback, name))
        return True

    def remove(self, path: str, name: str | None = None) -> None:
        """Drop the callbacks for path (for `name` in it, when a directory); the kernel watch goes with
        the last one, so thousands of databases coming and going do not use up inotify watches."""
        if not self.available:
            return
        with self._lock:
            wd = self._wd_by_path.get(path)
            if wd is None:
                return
            entries = [x for x in self._by_wd.get(wd, ()) if x[1] != name]
            if entries:
                self._by_wd[wd] = entries
                return
            self._by_wd.pop(wd, None)
            self._wd_by_path.pop(path, None)
        self._lib.inotify_rm_watch(self.fd, wd)

    def remove_dir(self, directory: str, name: str) -> None:
        self.remove(directory, name)

    def add_file(self, path: str, callback: Callable[[], None]) -> bool:
        """Watch path for writes (False if it does not exist or inotify is unavailable)."""
        return self._add(path, IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF, callback, None)

    def add_dir(self, directory: str, name: str, callback: Callable[[], None]) -> bool:
        """Watch a directory for `name` appearing in it."""
        return self._add(directory, IN_CREATE | IN_MOVED_TO | IN_MASK_ADD, callback, name)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stopped:
            try:
                ready = poller.poll()
            except InterruptedError:
                continue
            if self._stopped:
                return
            if not any(fd == self.fd for fd, _ in ready):
                continue
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                continue
            callbacks = []
            off = 0
            while off + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, off)
                name = data[off + _EVENT.size:off + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
                off += _EVENT.size + length
                with self._lock:
                    if mask & IN_IGNORED:
                        self._by_wd.pop(wd, None)
                        for p, w in list(self._wd_by_path.items()):
                            if w == wd:
                                del self._wd_by_path[p]
                        continue
                    entries = list(self._by_wd.get(wd, ()))
                for cb, want in entries:
                    if (want is None or name == want) and cb not in callbacks:
                        callbacks.append(cb)
            for cb in callbacks:
                try:
                    cb()
                except Exception as e:
                    log.error("watch callback failed", error=repr(e))
            time.sleep(COALESCE_S)

    def close(self) -> None:
        self._stopped = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self.fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self.fd = -1
