"""SFTP: OpenSSH's sshd (Debian's openssh-server, installed by ci/servers/sshd.sh), a private instance on
127.0.0.1 with a free port, a throwaway ed25519 host key and key authentication for the user the tests
run as. Every session is forced into internal-sftp, which logs each file operation (the request count
of the idle test). Files live under `<workdir>/root`, addressed by absolute paths as a real deployment
would (`path: /srv/backups/db`).

The replica config carries key-path and host-key, so the replica has no URL form (the URL cannot hold
a key).

Password authentication is off, except for PASSWORD_USER, the throwaway system account that
ci/servers/sshd.sh makes (as root) with a known password: sshd runs without PAM, so it checks passwords
against /etc/shadow itself, which it can read only as root. A `Match User` block allows that user (only)
to log in with a password, forced into internal-sftp; its files live under its home directory
(password_replica(), password_ready())."""

from __future__ import annotations

import getpass
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

from tests.servers import Server, ServerNotInstalled, count_lines, find_binary, free_port, spawn, wait_port, wait_until

NAME = "sshd"
REPLICA_TYPE = "sftp"

# sftp-server's log lines (-l VERBOSE): one per file operation it serves (open, close, opendir, set,
# remove, posix-rename, mkdir, ...), plus lines about sessions and error replies, which are not counted.
_NOT_OPS = ("session ", "sent status", "received client version", "debug")

# The password-login account ci/servers/sshd.sh makes; keep in step with it.
PASSWORD_USER = "litestream-test"
PASSWORD_USER_PASSWORD = "litestream-test-password"


def password_user_home() -> str | None:
    """PASSWORD_USER's home directory, or None when the account does not exist."""
    try:
        return pwd.getpwnam(PASSWORD_USER).pw_dir
    except KeyError:
        return None


class SSHDServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.user = getpass.getuser()
        self.root = workdir / "root"
        self.keys = workdir / "keys"
        self.log = workdir / "sshd.log"
        self.host_key_line = ""
        self.sftp_log = workdir / "sftp-server.log"
        self._sftp_cmd = ""
        self.password_home: str | None = None  # set when PASSWORD_USER may log in with its password

    def password_ready(self) -> str | None:
        """Why the password tests cannot run here (None: they can)."""
        if self.password_home is not None:
            return None
        if os.geteuid() != 0:
            return "sshd is not run as root, so it cannot check passwords against /etc/shadow"
        return f"no user {PASSWORD_USER}: run `bash ci/servers/sshd.sh` as root to make it"

    def password_replica(self, path: str, password: str = PASSWORD_USER_PASSWORD) -> dict[str, Any]:
        """A replica logging in as PASSWORD_USER with a password (no key), at `path` in its home."""
        assert self.password_home is not None, self.password_ready()
        return {"type": "sftp", "host": f"127.0.0.1:{self.port}", "user": PASSWORD_USER, "password": password,
                "host-key": self.host_key_line, "path": f"{self.password_home}/{path}"}

    def password_url(self, path: str, password: str = PASSWORD_USER_PASSWORD) -> str:
        """The same replica as a URL, the password in its userinfo."""
        from urllib.parse import quote

        assert self.password_home is not None, self.password_ready()
        return (f"sftp://{PASSWORD_USER}:{quote(password, safe='')}@127.0.0.1:{self.port}"
                f"{self.password_home}/{path}")

    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "sftp", "host": f"127.0.0.1:{self.port}", "user": self.user,
                "key-path": str(self.keys / "client_key"), "host-key": self.host_key_line,
                "path": str(self.root / path)}

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        # A key the server does not know.
        return {**self.replica(path), "key-path": str(self.keys / "stranger_key")}

    def requests(self) -> int | None:
        return count_lines(self.sftp_log, _is_op)

    def _config(self, extra: str = "") -> Path:
        cfg = self.workdir / "sshd_config"
        cfg.write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.keys / 'host_key'}
PidFile {self.workdir / 'sshd.pid'}
AuthorizedKeysFile {self.keys / 'authorized_keys'}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {self.user}{" " + PASSWORD_USER if self.password_home is not None else ""}
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTTY no
MaxStartups 64
MaxSessions 10
Subsystem sftp {self._sftp_cmd}
ForceCommand {self._sftp_cmd}
LogLevel VERBOSE
{extra}{self._password_match()}""")
        return cfg

    def _password_match(self) -> str:
        # Last in the file: a Match block runs to the end (or the next Match).
        if self.password_home is None:
            return ""
        return f"""\
Match User {PASSWORD_USER}
    PasswordAuthentication yes
    ForceCommand internal-sftp
"""

    def start(self) -> None:
        sshd = find_binary("sshd", "/usr/sbin/sshd")
        keygen = find_binary("ssh-keygen", "/usr/bin/ssh-keygen")
        server = find_binary("sftp-server", "/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server",
                       "/usr/libexec/openssh/sftp-server")
        if sshd is None or keygen is None or server is None:
            raise ServerNotInstalled("sshd, sftp-server or ssh-keygen not found")
        # sftp-server rather than internal-sftp: with -e it logs each operation on its stderr, which the
        # login shell sends to a file (internal-sftp can only log to syslog).
        self._sftp_cmd = f"{server} -e -l VERBOSE 2>>{self.sftp_log}"
        self.keys.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        for name, comment in (("host_key", "litestream-test-host"), ("client_key", "litestream-test"),
                              ("stranger_key", "not-authorized")):
            if not (self.keys / name).exists():
                subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                                str(self.keys / name)], check=True, capture_output=True)
        (self.keys / "authorized_keys").write_text((self.keys / "client_key.pub").read_text())
        # What host-key takes: "<type> <base64>" of the server's public key.
        self.host_key_line = " ".join((self.keys / "host_key.pub").read_text().split()[:2])
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        if os.geteuid() == 0 and self.user != PASSWORD_USER:
            self.password_home = password_user_home()
        self.port = free_port()
        # Newer OpenSSH (9.8+) penalises a source address after failed logins, which the wrong-key test
        # makes on purpose; older ones do not know the option.
        cfg = self._config("PerSourcePenalties no\n")
        if subprocess.run([sshd, "-t", "-f", str(cfg)], capture_output=True).returncode != 0:
            cfg = self._config()
            check = subprocess.run([sshd, "-t", "-f", str(cfg)], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"sshd config rejected: {check.stderr.strip()}")
        proc = spawn([sshd, "-D", "-e", "-f", str(cfg)], self.log, cwd=self.workdir)
        self.procs.append(proc)
        wait_port(self.port, proc, timeout=30, what="sshd")
        wait_until(self._login, timeout=30, what="sftp login")

    def _login(self) -> bool:
        import paramiko

        t = paramiko.Transport(("127.0.0.1", self.port))
        try:
            t.connect(username=self.user, pkey=paramiko.PKey.from_path(str(self.keys / "client_key")))
            sftp = paramiko.SFTPClient.from_transport(t)
            assert sftp is not None
            sftp.stat(str(self.root))
            return True
        finally:
            t.close()


def _is_op(line: str) -> bool:
    msg = line.split("]: ", 1)[-1].strip()
    return bool(msg) and not msg.startswith(_NOT_OPS)


def start(workdir: Path) -> Server:
    return SSHDServer.launch(workdir)
