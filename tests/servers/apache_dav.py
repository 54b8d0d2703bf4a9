"""WebDAV: Apache httpd with mod_dav/mod_dav_fs (Debian's apache2, installed by ci/servers/apache_dav.sh;
the server upstream's CI uses), a private instance on 127.0.0.1 with a free port, basic auth on the
whole share, so a wrong password is a real AuthError test. Its access log counts requests.

Started as root, Apache serves requests as www-data (it refuses to run them as root), and pytest's
temporary directories are private to root: the share, the password file and DAV's lock database live
in a directory of their own under the system's temporary directory, owned by the serving user and
removed by stop(). Config, pid and logs stay in the test's workdir (the root process opens those)."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import Server, ServerNotInstalled, find_binary, free_port, spawn, terminate, wait_port, wait_until

NAME = "apache_dav"
REPLICA_TYPE = "webdav"

USERNAME = "litestream"
PASSWORD = "litestream-secret"
MODULES = ("mpm_event", "authn_core", "authz_core", "authn_file", "authz_user", "auth_basic", "dav", "dav_fs")


def _find_modules() -> Path | None:
    for d in ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules"):
        if (Path(d) / "mod_dav_fs.so").exists():
            return Path(d)
    return None


class ApacheDAVServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.shared: Path | None = None  # the share and what the serving user reads (see above)
        self.access_log = workdir / "access.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "webdav", "webdav-url": self.endpoint, "webdav-username": USERNAME,
                "webdav-password": PASSWORD, "path": path}

    def url(self, path: str) -> str | None:
        return f"webdav://{USERNAME}:{PASSWORD}@127.0.0.1:{self.port}/{path}"

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        return {**self.replica(path), "webdav-password": "not-the-secret"}

    def requests(self) -> int | None:
        try:
            with open(self.access_log, "rb") as f:
                return sum(1 for _ in f)
        except OSError:
            return None

    @property
    def data(self) -> Path:
        assert self.shared is not None
        return self.shared / "data"

    def stop(self) -> None:
        for p in reversed(self.procs):
            terminate(p, timeout=5)
        if self.shared is not None:
            shutil.rmtree(self.shared, ignore_errors=True)

    def start(self) -> None:
        # Debian's apache2 first, then RHEL's httpd; both live in sbin, outside most users' PATH.
        apache = find_binary("apache2", "/usr/sbin/apache2", "/usr/bin/apache2") or \
            find_binary("httpd", "/usr/sbin/httpd", "/usr/bin/httpd")
        modules = _find_modules()
        if apache is None or modules is None:
            raise ServerNotInstalled("apache2 with mod_dav_fs not found")
        if os.geteuid() == 0:
            run_user = "www-data"
            try:
                pw = pwd.getpwnam(run_user)
            except KeyError:
                raise ServerNotInstalled("no www-data user to serve requests as") from None
        else:
            pw = pwd.getpwuid(os.geteuid())
            run_user = pw.pw_name
        self.shared = Path(tempfile.mkdtemp(prefix="litestream-webdav-"))
        for sub in ("data", "lock"):
            (self.shared / sub).mkdir()
        # {SHA} entries need no htpasswd binary; Apache accepts them.
        digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
        (self.shared / "htpasswd").write_text(f"{USERNAME}:{{SHA}}{digest}\n")
        for p in (self.shared, self.shared / "data", self.shared / "lock", self.shared / "htpasswd"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        run = self.workdir / "run"
        run.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        group = _group_name(pw.pw_gid)
        loads = "\n".join(f"LoadModule {m}_module {modules}/mod_{m}.so" for m in MODULES)
        cfg = self.workdir / "httpd.conf"
        cfg.write_text(f"""\
ServerRoot {self.workdir}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {run / 'httpd.pid'}
DefaultRuntimeDir {run}
User {run_user}
Group {group}
{loads}
ErrorLog {self.workdir / 'error.log'}
LogLevel warn
LogFormat "%h \\"%r\\" %>s %b" short
CustomLog {self.access_log} short
DavLockDB {self.shared / 'lock' / 'davlock'}
LimitRequestBody 0
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 15
DocumentRoot {self.data}
<Directory />
  AllowOverride None
  Require all denied
</Directory>
<Directory {self.data}>
  Options None
  AllowOverride None
  Dav On
  AuthType Basic
  AuthName "litestream"
  AuthUserFile {self.shared / 'htpasswd'}
  Require valid-user
</Directory>
""")
        check = subprocess.run([apache, "-t", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"apache config rejected: {(check.stderr or check.stdout).strip()}")
        proc = spawn([apache, "-f", str(cfg), "-DFOREGROUND"], self.workdir / "apache.log", cwd=self.workdir)
        self.procs.append(proc)
        wait_port(self.port, proc, timeout=30, what="apache")
        wait_until(self._propfind, timeout=30, what="apache webdav")

    def _propfind(self) -> bool:
        req = urllib.request.Request(self.endpoint + "/", method="PROPFIND", headers={
            "Depth": "0", "Authorization": "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 207


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"#{gid}"


def start(workdir: Path) -> Server:
    return ApacheDAVServer.launch(workdir)
