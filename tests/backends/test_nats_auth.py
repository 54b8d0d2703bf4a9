"""NATS decentralised auth against a real nats-server in operator mode (tests/servers/nats.py JWTServer):
an operator, accounts and users minted here with nkeys, the accounts preloaded into the server's MEMORY
resolver. A user JWT with its seed (`jwt` + `seed`) and a `.creds` file (`creds`) write, list and read
LTX files and carry a replicate -> restore roundtrip of our CLI; a seed that does not match the JWT and
an account without JetStream are one-line errors naming the server, never the seed or the JWT."""

from __future__ import annotations

import time

import pytest

from litestream.backends import AuthError, BackendError
from tests.cliutil import Background, make_db, read_rows, wait_for
from tests.conftest import run_ours
from tests.servers import config_text
from tests.servers import nats as natss

from .helpers import client_for, init_error
from .test_conformance import ltx_bytes, names, put, read_all

pytest.importorskip("nkeys")


@pytest.fixture(scope="module")
def jwts(tmp_path_factory):
    s = natss.JWTServer(tmp_path_factory.mktemp("nats-operator")).start()
    yield s
    s.stop()


def _write_list_read(c) -> None:
    put(c, 0, 1, 1)
    put(c, 0, 2, 3)
    put(c, 9, 1, 3)
    assert names(c, 0) == [(1, 1), (2, 3)]
    assert names(c, 9) == [(1, 3)]
    assert read_all(c, 0, 2, 3) == ltx_bytes(2, 3)
    assert read_all(c, 9, 1, 3, offset=10, size=100) == ltx_bytes(1, 3)[10:110]


def _secrets(user: natss.JWTUser) -> list[str]:
    # The seed and the JWT whole, and distinctive parts of each (a message cut short must not hold them).
    return [user.seed, user.seed[:20], user.jwt, user.jwt.split(".")[1][:40], user.jwt.split(".")[2][:40]]


def test_jwt_and_seed_authenticate(jwts):
    u = jwts.user
    assert natss.decode_jwt_claims(u.jwt)["nats"]["type"] == "user"
    c = client_for(jwts.replica("jwtseed", jwt=u.jwt, seed=u.seed))
    try:
        assert c.settings.auth_method() == "jwt"
        _write_list_read(c)
    finally:
        c.close()
    # The account is the user's, whoever the user: a second user of it sees the same bucket.
    other = jwts.new_user(jwts.app, "second")
    c = client_for(jwts.replica("jwtseed", jwt=other.jwt, seed=other.seed))
    try:
        assert names(c, 0) == [(1, 1), (2, 3)]
    finally:
        c.close()


def test_creds_file_authenticates(jwts, tmp_path):
    creds = jwts.user.write_creds(tmp_path / "litestream.creds")
    assert creds.read_text().startswith("-----BEGIN NATS USER JWT-----\n")
    c = client_for(jwts.replica("credsfile", creds=str(creds)))
    try:
        assert c.settings.auth_method() == "creds"
        _write_list_read(c)
    finally:
        c.close()
    # jwt + seed beat creds (the reference's precedence): a creds file that does not exist is not read.
    c = client_for(jwts.replica("credsfile", jwt=jwts.user.jwt, seed=jwts.user.seed,
                                creds=str(tmp_path / "missing.creds")))
    try:
        assert names(c, 9) == [(1, 3)]
    finally:
        c.close()


def test_replicate_with_jwt_and_restore_with_creds(jwts, tmp_path):
    """Our CLI end to end: `replicate` authenticating with jwt + seed, `restore` with a .creds file."""
    u = jwts.user
    db = make_db(tmp_path / "app.db", ["j0", "j1", "j2"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**jwts.replica("roundtrip", jwt=u.jwt, seed=u.seed),
                                           "sync-interval": "100ms"})]))
    watcher = client_for(jwts.replica("roundtrip", jwt=u.jwt, seed=u.seed))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path)
    try:
        assert wait_for(lambda: bool(names(watcher, 0)), timeout=30, interval=0.2), bg.output()
        time.sleep(0.3)
    finally:
        watcher.close()
        bg.signal()
        assert bg.finish(60) == 0, bg.stderr
    assert u.seed not in bg.stdout + bg.stderr and u.jwt not in bg.stdout + bg.stderr
    creds = u.write_creds(tmp_path / "restore.creds")
    cfg2 = tmp_path / "restore.yml"
    cfg2.write_text(config_text([(str(db), jwts.replica("roundtrip", creds=str(creds)))]))
    out = tmp_path / "restored.db"
    p = run_ours("restore", "-config", str(cfg2), "-o", str(out), str(db), timeout=120)
    assert p.returncode == 0, p.stderr
    assert read_rows(out) == ["j0", "j1", "j2"]


def test_wrong_seed_is_a_clear_error_without_secrets(jwts, tmp_path):
    """The right user JWT with another user's seed: the server's nonce is signed by the wrong key."""
    u, stranger = jwts.user, jwts.new_user(jwts.app, "stranger")
    bad = natss.JWTUser(u.name, stranger.key, u.jwt)
    for auth in ({"jwt": u.jwt, "seed": stranger.seed},
                 {"creds": str(bad.write_creds(tmp_path / "bad.creds"))}):
        msg = str(init_error(jwts.replica("wrongseed", **auth), AuthError))
        assert "\n" not in msg and f"127.0.0.1:{jwts.port}/wrongseed" in msg, msg
        assert "authorization violation" in msg, msg
        for secret in _secrets(u) + _secrets(stranger):
            assert secret not in msg, msg


def test_user_of_an_unknown_account_is_refused(jwts):
    """A user JWT signed by an account the operator never issued: refused as the server refuses it."""
    rogue = natss.NKey.account()
    u = jwts.new_user(rogue, "rogue")
    msg = str(init_error(jwts.replica("rogue", jwt=u.jwt, seed=u.seed), AuthError))
    assert "\n" not in msg and f"127.0.0.1:{jwts.port}" in msg, msg
    for secret in _secrets(u):
        assert secret not in msg, msg


def test_account_without_jetstream_is_a_clear_error(jwts):
    u = jwts.nojs_user
    e = init_error(jwts.replica("nojs", jwt=u.jwt, seed=u.seed), BackendError)
    msg = str(e)
    assert not isinstance(e, AuthError), msg
    assert "\n" not in msg and f"127.0.0.1:{jwts.port}/nojs" in msg, msg
    assert "JetStream is not enabled" in msg, msg
    for secret in _secrets(u):
        assert secret not in msg, msg
