"""For the redaction tests (test_logging.py): distinctive fake secrets in a config for every backend type,
aimed at 127.0.0.1 ports where nothing useful answers, so that every command fails and logs its errors.

HTTP backends get a real local server that refuses every request at once with 403 and a plausible error
body (an unreachable port would make the SDKs retry with back-off for tens of seconds); NATS and SFTP get
a port nobody listens on (connection refused)."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Every secret holds "zq" + a digit: easy to find in any output, impossible to meet by chance.
SECRETS = {
    "s3-access-key-id": "AKIAZQ7EXAMPLEzq1",  # an identifier, not a secret: only checked not to be the key
    "s3-secret": "S3SECRETzq1wJalrXUtnFEMIK7MDENG",
    "s3-sse-key": "U1NFQ0tFWXpxMS1zc2VjdXN0b21lcmtleTAxMjM0NTY=",  # base64 of 32 bytes, holds no "zq"
    "s3-endpoint-pass": "S3ENDPOINTPASSzq1",
    "abs-account-key": "QUJTQUNDT1VOVEtFWXpxMi1hY2NvdW50a2V5",
    "abs-sas-sig": "ABSSASSIGzq2",
    "nats-url-pass": "NATSURLPASSzq3",
    "nats-password": "NATSPASSWORDzq3",
    "nats-token": "NATSTOKENzq3",
    "nats-nkey": "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY",
    "nats-jwt": "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.NATSJWTzq3.sig",
    "nats-seed": "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4",
    "sftp-url-pass": "SFTPURLPASSzq4",
    "sftp-password": "SFTPPASSWORDzq4",
    "webdav-url-pass": "WEBDAVURLPASSzq5",
    "webdav-password": "WEBDAVPASSWORDzq5",
    "oss-secret": "OSSSECRETzq6",
    "gs-private-key": "GSPRIVATEKEYzq7",
    "gs-private-key-id": "GSKEYIDzq7",
}


def must_not_appear() -> list[str]:
    """What no output may contain: every secret (the access key id is an identifier and may appear)."""
    return [v for k, v in SECRETS.items() if k != "s3-access-key-id"]


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Refuser:
    """An HTTP server that answers every request with 403 and an S3/Azure-style XML error."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _refuse(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b"" if self.command == "HEAD" else (
                    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    b"<Message>Access Denied</Message><RequestId>test</RequestId></Error>")
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-ms-error-code", "AuthenticationFailed")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PROPFIND = do_MKCOL = do_MOVE = _refuse

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that hangs up (a command ending) is no news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BACKENDS = ("s3", "abs", "abs-key", "nats", "nats-jwt", "sftp", "webdav", "oss", "gs")


def replica_yaml(backend: str, work: Path, http_port: int, dead_port: int) -> str:
    """The `replica:` mapping (YAML, indented for dbs[0]) for one backend, carrying its secrets."""
    s = SECRETS
    if backend == "s3":
        return f"""
              url: s3://bucket/prefix
              endpoint: http://user:{s['s3-endpoint-pass']}@127.0.0.1:{http_port}
              region: us-east-1
              force-path-style: true
              access-key-id: {s['s3-access-key-id']}
              secret-access-key: {s['s3-secret']}
              sse-customer-key: {s['s3-sse-key']}
            """
    if backend == "abs":
        return f"""
              url: abs://account@container/path
              endpoint: http://127.0.0.1:{http_port}/account
              account-key: {s['abs-account-key']}
              sas-token: sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&sig={s['abs-sas-sig']}
            """
    if backend == "abs-key":
        return f"""
              url: abs://account@container/path
              endpoint: http://127.0.0.1:{http_port}/account
              account-key: {s['abs-account-key']}
            """
    if backend == "nats":
        return f"""
              url: nats://natsuser:{s['nats-url-pass']}@127.0.0.1:{dead_port}/bucket
              password: {s['nats-password']}
              token: {s['nats-token']}
              nkey: {s['nats-nkey']}
              max-reconnects: 0
              timeout: 1s
            """
    if backend == "nats-jwt":
        return f"""
              url: nats://127.0.0.1:{dead_port}/bucket
              jwt: {s['nats-jwt']}
              seed: {s['nats-seed']}
              max-reconnects: 0
              timeout: 1s
            """
    if backend == "sftp":
        return f"""
              url: sftp://sftpuser:{s['sftp-url-pass']}@127.0.0.1:{dead_port}/backup
              password: {s['sftp-password']}
            """
    if backend == "webdav":
        return f"""
              type: webdav
              webdav-url: http://davuser:{s['webdav-url-pass']}@127.0.0.1:{http_port}/dav
              webdav-username: davuser
              webdav-password: {s['webdav-password']}
            """
    if backend == "oss":
        return f"""
              url: oss://bucket/path
              endpoint: http://127.0.0.1:{http_port}
              access-key-id: OSSKEYID
              secret-access-key: {s['oss-secret']}
            """
    if backend == "gs":
        return """
              url: gs://bucket/path
            """
    raise ValueError(backend)


def gs_credentials(work: Path, http_port: int) -> Path:
    """A service-account file whose token endpoint is the refuser (its key is not a valid one either)."""
    path = work / "gs-credentials.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "test", "private_key_id": SECRETS["gs-private-key-id"],
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{SECRETS['gs-private-key']}\n-----END PRIVATE KEY-----\n",
        "client_email": "litestream@test.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"http://127.0.0.1:{http_port}/token"}))
    return path


def write_config(work: Path, backend: str, log_type: str, http_port: int, dead_port: int) -> Path:
    """c.yml: debug logging of the given type, one database (app.db) with the backend's replica."""
    text = textwrap.dedent(f"""
        logging:
          level: debug
          type: {log_type}
        shutdown-sync-timeout: 0s
        dbs:
          - path: {work / 'app.db'}
            monitor-interval: 100ms
            replica:
        """).lstrip("\n")
    text += textwrap.indent(textwrap.dedent(replica_yaml(backend, work, http_port, dead_port)).strip("\n"), " " * 6)
    path = work / "c.yml"
    path.write_text(text + "\n")
    return path
