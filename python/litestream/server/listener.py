"""The accept loop of our socket servers (metrics/health on `addr`, the control socket)."""

from __future__ import annotations

import contextlib
import errno
import socket
import socketserver
import threading
import time


def accept_loop(sock: socket.socket, server: socketserver.BaseServer) -> None:
    """Hand each connection to server (a ThreadingMixIn: a daemon thread each) until sock is shut down.
    Blocks in accept(): socketserver's serve_forever would wake every poll interval while idle. Running out
    of descriptors waits for some to close instead of ending the server."""
    while True:
        try:
            conn, peer = sock.accept()
        except OSError as e:
            if e.errno in (errno.EINTR, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(0.1)
                continue
            return
        try:
            server.process_request(conn, peer)
        except Exception:
            server.shutdown_request(conn)


class Listening:
    """A server's socket, its accept thread and its close (the base of the metrics and control services)."""

    sock: socket.socket
    thread: threading.Thread

    def serve(self, sock: socket.socket, server: socketserver.BaseServer, name: str) -> None:
        from litestream.daemon import start_thread_without_signals

        self.sock = sock
        self.thread = threading.Thread(target=accept_loop, args=(sock, server), name=name, daemon=True)
        start_thread_without_signals(self.thread)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)
