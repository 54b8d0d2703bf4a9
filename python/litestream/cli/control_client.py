"""The client side of the control socket, shared by `start`, `stop`, `sync`, `register`, `unregister`,
`list` and `info` (reference §1.2, §1.3): one HTTP/1.1 request to http://localhost/<endpoint> over the
unix socket, the -timeout as both the connect timeout and the whole exchange's, and the reference's
error texts (Go's net/http and encoding/json messages, e.g. `failed to connect to control socket: Get
"http://localhost/list": dial unix /x.sock: connect: no such file or directory`)."""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from litestream.cli.common import CommandError, print_json
from litestream.cli.goflag import FlagSet
from litestream.gofmt import go_json_dumps, go_quote
from litestream.server import gojson
from litestream.server.gojson import ANY, STRING, UINT64, GoJSONError, Struct

DEFAULT_SOCKET = "/var/run/litestream.sock"
ERROR_RESPONSE = Struct("litestream.ErrorResponse", {"error": STRING, "details": ANY})
# What start, stop and unregister get back (the reference's response structs).
START_RESPONSE = Struct("litestream.StartResponse", {"status": STRING, "path": STRING, "txid": UINT64})
STOP_RESPONSE = Struct("litestream.StopResponse", {"status": STRING, "path": STRING, "txid": UINT64})


def flag_set(command: str, usage, timeout_default: int) -> FlagSet:
    """The flags every socket command has (-timeout, -socket); the command adds its own."""
    fs = FlagSet(f"litestream-{command}", usage)
    fs.int("timeout", timeout_default, "timeout in seconds")
    fs.string("socket", DEFAULT_SOCKET, "control socket path")
    return fs


def no_args(opts) -> None:
    if opts.args:
        raise CommandError("too many arguments")


def print_fields(out: dict[str, Any], as_json: bool) -> int:
    """A command's confirmation: the fields as JSON, or one `key: value` line each."""
    if as_json:
        print_json(out)
    else:
        sys.stdout.write("".join(f"{k}: {v}\n" for k, v in out.items()))
    return 0


def one_path(opts, hint: str) -> str:
    if not opts.args:
        raise CommandError("database path required", hint)
    if len(opts.args) > 1:
        raise CommandError("too many arguments")
    return opts.args[0]


def check_timeout(timeout: int) -> None:
    if timeout <= 0:
        raise CommandError("timeout must be greater than 0")


class _Failed(Exception):
    """The request did not get a reply (Go's url.Error text after the method and URL)."""


@dataclass
class Reply:
    status: int
    body: bytes
    duration_ms: int  # from sending the request to having the reply's headers (what `sync` prints)


def _errno_text(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else "invalid argument"


class Client:
    def __init__(self, socket_path: str, timeout_s: int) -> None:
        self.path = socket_path
        self.timeout_s = timeout_s  # 0: no limit (Go's zero Timeout); negative: every dial times out at once

    def _remaining(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(0.0, deadline - time.monotonic())

    def _dial(self, deadline: float | None) -> socket.socket:
        if not self.path:
            raise _Failed("dial unix: missing address")
        if self.timeout_s < 0:
            raise _Failed(f"dial unix {self.path}: i/o timeout")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._remaining(deadline))
            sock.connect(self.path)
        except TimeoutError:
            sock.close()
            raise _Failed(f"dial unix {self.path}: i/o timeout") from None
        except OSError as e:
            sock.close()
            raise _Failed(f"dial unix {self.path}: connect: {_errno_text(e)}") from None
        except ValueError:  # a NUL byte in the path
            sock.close()
            raise _Failed(f"dial unix {self.path}: connect: invalid argument") from None
        return sock

    def request(self, method: str, endpoint: str, payload: dict[str, Any] | None = None) -> Reply:
        url = f"http://localhost/{endpoint}"
        try:
            return self._exchange(method, endpoint, payload)
        except _Failed as e:
            op = method[0] + method[1:].lower()  # Go's url.Error: `Get "http://..."`
            raise CommandError(f"failed to connect to control socket: {op} {go_quote(url)}: {e}") from None

    def _exchange(self, method: str, endpoint: str, payload: dict[str, Any] | None) -> Reply:
        deadline = time.monotonic() + self.timeout_s if self.timeout_s > 0 else None
        t0 = time.monotonic()
        sock = self._dial(deadline)
        try:
            head = f"{method} /{endpoint} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Go-http-client/1.1\r\n"
            body = b""
            if payload is not None:
                body = go_json_dumps(payload, indent=None, newline=False).encode()
                head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
            sent: OSError | None = None
            try:
                sock.settimeout(self._remaining(deadline))
                # One write, without SIGPIPE (this process keeps the default for `| head`): a server that
                # answers and closes before reading everything still has its answer read, as Go does.
                sock.sendall((head + "\r\n").encode() + body, socket.MSG_NOSIGNAL)
            except TimeoutError:
                raise _Failed("context deadline exceeded (Client.Timeout exceeded while awaiting headers)") from None
            except OSError as e:
                sent = e
            resp = http.client.HTTPResponse(sock, method=method)
            try:
                sock.settimeout(self._remaining(deadline))
                resp.begin()
            except TimeoutError:
                raise _Failed("context deadline exceeded (Client.Timeout exceeded while awaiting headers)") from None
            except http.client.RemoteDisconnected:
                raise _Failed(f"write: {_errno_text(sent)}" if sent is not None else "EOF") from None
            except http.client.BadStatusLine as e:
                line = str(e.args[0] if e.args else "").rstrip("\r\n")
                raise _Failed(f"net/http: HTTP/1.x transport connection broken: malformed HTTP response "
                              f"{go_quote(line)}") from None
            except (http.client.HTTPException, OSError) as e:
                raise _Failed(_errno_text(e) if isinstance(e, OSError) else str(e)) from None
            duration_ms = int((time.monotonic() - t0) * 1000)
            try:
                sock.settimeout(self._remaining(deadline))
                data = resp.read()
            except TimeoutError:
                raise CommandError("failed to read response: context deadline exceeded (Client.Timeout exceeded "
                                   "while reading body)") from None
            except (http.client.IncompleteRead, ConnectionError):
                raise CommandError("failed to read response: unexpected EOF") from None
            return Reply(resp.status, data, duration_ms)
        finally:
            sock.close()


def call(opts, command: str, method: str, endpoint: str, payload: dict[str, Any] | None,
         response: Struct) -> tuple[dict[str, Any], int]:
    """(the decoded 200 reply, duration_ms); any other status ends the command with `<command> failed:`
    and the reply's error field (or its body when it has none)."""
    reply = Client(opts.socket, opts.timeout).request(method, endpoint, payload)
    if reply.status != 200:
        try:
            err = gojson.decode(reply.body, ERROR_RESPONSE, stream=False)["error"]
        except GoJSONError:
            err = ""
        raise CommandError(f"{command} failed: {err or reply.body.decode('utf-8', 'replace')}")
    try:
        return gojson.decode(reply.body, response, stream=False), reply.duration_ms
    except GoJSONError as e:
        raise CommandError(f"failed to parse response: {e}") from None
