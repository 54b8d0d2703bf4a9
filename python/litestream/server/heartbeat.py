"""The heartbeat (reference §3.11): with `heartbeat-url` set, GET that URL every `heartbeat-interval`
(default 5m; the config rejects less than 1m) while replication is healthy, for a dead man's switch
such as healthchecks.io.

One thread for the whole process wakes every CHECK_PERIOD_S (15 s, as the reference) and sends the
request only when
- the interval has passed since the last attempt (recorded before the request, so a failure is not
  retried early), and
- every open database has synced within the interval, and there is at least one open database.

"Synced within the interval" is the reference's LastSuccessfulSyncAt: every replica of the database
had a successful upload pass within the interval, or holds the database's TXID with its last pass
successful (the reference's replica loop records an idle success every sync-interval without a
request; ours has no idle loop, so being caught up stands for it); and the database's own last sync
(WAL -> L0) did not fail.

The request: GET, 30 s timeout, a non-2xx status is an error, logged as `heartbeat ping failed`. Logs
show the URL's scheme and host only: the userinfo, path and query of a ping URL are often its secret.

Tests only: LITESTREAM_HEARTBEAT_CHECK_PERIOD (seconds, a float) shortens the 15 s check period; it
is not a setting and the config's 1-minute minimum interval still applies."""

from __future__ import annotations

import base64
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from litestream import __version__, logs
from litestream.daemon import start_thread_without_signals
from litestream.gofmt import Duration

CHECK_PERIOD_S = 15.0
TIMEOUT_S = 30.0
DEFAULT_INTERVAL_NS = 5 * 60 * 10**9
MIN_INTERVAL_NS = 60 * 10**9
CHECK_PERIOD_ENV = "LITESTREAM_HEARTBEAT_CHECK_PERIOD"

log = logs.get_logger("store").with_attrs(system="store")


def shown_url(url: str) -> str:
    """The URL without what may be secret: scheme and host only."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{u.port}" if u.port is not None else ""
    except ValueError:
        return "(invalid url)"
    return f"{u.scheme}://{host}{port}"


def request_parts(url: str) -> tuple[str, dict[str, str]]:
    """The URL without userinfo and the request headers; userinfo becomes basic auth, as Go's client
    sends it (urllib would take it for part of the host)."""
    headers = {"User-Agent": f"litestream/{__version__}"}
    u = urllib.parse.urlsplit(url)
    if "@" not in u.netloc:
        return url, headers
    userinfo, _, hostport = u.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    cred = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    headers["Authorization"] = "Basic " + base64.b64encode(cred).decode()
    return urllib.parse.urlunsplit(u._replace(netloc=hostport)), headers


def db_synced_since(e, since_ns: int) -> bool:
    """Whether a database counts as synced since since_ns (see the module docstring)."""
    if e.db.stats.failing_since_ns:
        return False
    txid = e.db.txid
    for r in e.replicas:
        if r.last_success_ns >= since_ns:
            continue
        caught_up = r.pos is not None and r.pos >= txid and r.errors == 0 and r.last_success_ns > 0
        if not caught_up:
            return False
    return True


class Heartbeat:
    def __init__(self, daemon, url: str, interval_ns: int, period_s: float) -> None:
        self.daemon = daemon
        self.store = daemon.store
        self.url = url
        self.interval_ns = max(interval_ns, MIN_INTERVAL_NS)
        self.period_s = period_s
        self.last_attempt: float | None = None  # monotonic time of the last request sent
        self.stop = threading.Event()
        log.info("starting heartbeat monitor", "interval", Duration(int(period_s * 1e9)))
        self.thread = threading.Thread(target=self._loop, name="litestream-heartbeat", daemon=True)
        start_thread_without_signals(self.thread)

    def _loop(self) -> None:
        while not self.stop.wait(self.period_s):
            try:
                self.check()
            except Exception as e:  # the monitor must outlive any surprise
                log.error("heartbeat check failed", error=str(e))

    def should_ping(self) -> bool:
        return self.last_attempt is None or (time.monotonic() - self.last_attempt) * 1e9 >= self.interval_ns

    def healthy(self) -> bool:
        """Every open database synced within the interval (False when none is open)."""
        since_ns = time.time_ns() - self.interval_ns
        open_entries = [e for e in list(self.store.entries) if self.store.is_open(e)]
        return bool(open_entries) and all(db_synced_since(e, since_ns) for e in open_entries)

    def check(self) -> None:
        if self.stop.is_set() or not self.should_ping() or not self.healthy():
            return
        self.last_attempt = time.monotonic()
        try:
            self.ping()
        except OSError as e:
            log.error("heartbeat ping failed", url=shown_url(self.url), error=str(e))
            return
        log.debug("heartbeat ping sent", url=shown_url(self.url))

    def ping(self) -> None:
        url, headers = request_parts(self.url)
        auth = headers.pop("Authorization", None)
        req = urllib.request.Request(url, method="GET", headers=headers)
        if auth is not None:
            req.add_unredirected_header("Authorization", auth)  # not sent on to where a redirect points
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                resp.read(1 << 16)
                status = resp.status
        except urllib.error.HTTPError as e:
            e.close()
            raise OSError(f"unexpected status code: {e.code}") from None
        except urllib.error.URLError as e:
            raise OSError(f"http request: {e.reason}") from None
        except ValueError:  # urllib's and http.client's messages quote the URL, which may hold its secret
            raise OSError("http request: invalid url") from None
        except http.client.HTTPException as e:
            raise OSError(f"http request: {type(e).__name__}: {e}") from None
        if not 200 <= status < 300:
            raise OSError(f"unexpected status code: {status}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=1)


def _check_period() -> float:
    raw = os.environ.get(CHECK_PERIOD_ENV, "")
    try:
        period = float(raw) if raw else CHECK_PERIOD_S
    except ValueError:
        period = CHECK_PERIOD_S
    return period if period > 0 else CHECK_PERIOD_S


def start(daemon) -> Heartbeat | None:
    cfg = daemon.config
    if not cfg.heartbeat_url:
        return None
    interval = DEFAULT_INTERVAL_NS if cfg.heartbeat_interval is None else int(cfg.heartbeat_interval)
    return Heartbeat(daemon, cfg.heartbeat_url, interval, _check_period())
