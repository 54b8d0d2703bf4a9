"""`litestream restore`: recover a database from a replica (URL or a database in the config)."""

from __future__ import annotations

import contextlib
import os
import signal
import stat as stat_mod
import sys
import threading
import time

from litestream import logs
from litestream.backends.base import BackendError
from litestream.backends.url import is_url
from litestream.cli.common import (
    CommandError,
    load_config,
    print_json,
    register_config_flags,
    replica_from_config,
    replica_from_url,
)
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE
from litestream.gofmt import format_rfc3339, parse_rfc3339_ns, tabwriter
from litestream.ltx import format_txid, parse_txid
from litestream.restore import (
    RestoreError,
    TxNotAvailable,
    calc_restore_plan,
    check_restore_target,
    integrity_check,
    restore_files,
)

FOLLOW_INTERVAL_NS = 1_000_000_000


def usage() -> None:
    sys.stdout.write(USAGE["restore"])


class _Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


SIDECARS = ("-wal", "-shm", "-journal")


def prepare_output_path(path: str, force: bool) -> bool:
    """The reference's checks on the output path. Returns True when an existing database will be
    replaced (-force): unlike the reference it is kept until the new one is complete."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise CommandError(f"cannot access output path: {e.strerror}") from None
    if stat_mod.S_ISDIR(st.st_mode):
        raise CommandError(f"cannot restore, output path is a directory: {path}")
    if st.st_size > 0 and not force:
        raise CommandError(f"cannot restore, output path already exists and is not empty: {path}. "
                           "Use -force to overwrite")
    for suffix in SIDECARS:
        side = path + suffix
        if os.path.lexists(side) and not force:
            raise CommandError(f"cannot restore, SQLite sidecar path already exists: {side}. Use -force to overwrite")
    if st.st_size == 0 and not force:
        os.remove(path)
        return False
    return True


def remove_sidecars(path: str) -> None:
    for suffix in SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _plan_json(source: str, target: str, replica_type: str, plan) -> dict:
    return {
        "source": source,
        "target_path": target,
        "replica": replica_type,
        "min_txid": format_txid(plan[0].min_txid),
        "max_txid": format_txid(plan[-1].max_txid),
        "files": [{"level": i.level, "name": i.name, "min_txid": format_txid(i.min_txid),
                   "max_txid": format_txid(i.max_txid), "size": i.size,
                   "timestamp": format_rfc3339(i.created_at_ns)} for i in plan],
    }


def _print_plan(p: dict) -> None:
    out = sys.stdout
    out.write("Restore plan:\n")
    out.write(f"  source: {p['source']}\n")
    out.write(f"  target: {p['target_path']}\n")
    out.write(f"  replica: {p['replica']}\n")
    out.write(f"  txid range: {p['min_txid']} - {p['max_txid']}\n\n")
    out.write("Files to fetch:\n")
    rows = [["level", "file", "min_txid", "max_txid", "size", "timestamp"]]
    rows += [[str(f["level"]), f["name"], f["min_txid"], f["max_txid"], str(f["size"]), f["timestamp"]]
             for f in p["files"]]
    out.write(tabwriter(rows))


def run(args: list[str], name: str = "restore") -> int:
    fs = FlagSet("litestream-restore", usage)
    register_config_flags(fs)
    fs.string("o", "", "output path")
    fs.var("txid", parse_txid, 0, "transaction ID", formatter=format_txid)
    fs.int("parallelism", 8, "parallelism")
    fs.bool("if-db-not-exists", False, "")
    fs.bool("if-replica-exists", False, "")
    fs.string("timestamp", "", "timestamp")
    fs.bool("dry-run", False, "print restore plan without writing")
    fs.bool("force", False, "overwrite existing output database")
    fs.bool("json", False, "output raw JSON")
    fs.bool("f", False, "follow mode")
    fs.duration("follow-interval", FOLLOW_INTERVAL_NS, "polling interval for follow mode")
    fs.string("integrity-check", "none", "post-restore integrity check: none, quick, or full")
    fs.bool("ignore-checksums", False, "restore even when the database checksums do not add up")
    opts = fs.parse(args)
    if not opts.args or opts.args[0] == "":
        raise CommandError("database path or replica URL required",
                           "litestream restore -o /path/to/db s3://bucket/prefix")
    if len(opts.args) > 1:
        raise CommandError("too many arguments")
    logs.init_log("stderr" if opts.json else "stdout", "INFO", "text", False)

    mode = opts["integrity-check"]
    if mode not in ("none", "quick", "full"):
        raise CommandError(f"invalid -integrity-check value: {mode}")
    timestamp_ns = None
    if opts.timestamp:
        try:
            timestamp_ns = parse_rfc3339_ns(opts.timestamp)[0]
        except ValueError:
            raise CommandError("invalid -timestamp, must specify in ISO 8601 format "
                               "(e.g. 2000-01-01T00:00:00Z)") from None
    if opts.f:
        if opts["dry-run"]:
            raise CommandError("cannot use -dry-run with -f")
        if opts.txid:
            raise CommandError("cannot use follow mode with -txid")
        if timestamp_ns is not None:
            raise CommandError("cannot use follow mode with -timestamp")
    source = opts.args[0]
    output = opts.o
    try:
        if is_url(source):
            if opts.config:
                raise CommandError("cannot specify a replica URL and the -config flag")
            if not output:
                raise CommandError("-o is required when restoring from a replica URL",
                                   f"litestream restore -o /path/to/db {source}")
            if opts["if-db-not-exists"] and os.path.lexists(output):
                logs.info("database already exists, skipping")
                return 0
            client = replica_from_url(source)
            try:
                check_restore_target(client, timestamp_ns)
            except RestoreError as e:
                raise CommandError(str(e)) from None
        else:
            config = load_config(opts.config, opts.no_expand_env)
            db_path, client = replica_from_config(config, source)
            output = output or db_path
            if opts["if-db-not-exists"] and os.path.lexists(output):
                logs.info("database already exists, skipping")
                return 0
        log = logs.get_logger("restore").with_attrs(replica=client.type)

        if opts["dry-run"]:
            try:
                plan = calc_restore_plan(client, opts.txid, timestamp_ns)
            except RestoreError as e:
                raise CommandError(str(e)) from None
            p = _plan_json(source, output, client.type, plan)
            if opts.json:
                print_json(p)
            else:
                _print_plan(p)
            return 0

        if opts.f and os.path.exists(output):
            return _resume_follow(client, output, opts["follow-interval"])
        replacing = prepare_output_path(output, opts.force)
        if opts.txid and timestamp_ns is not None:
            raise CommandError("cannot specify index & timestamp to restore")
        start = time.monotonic()
        from litestream import v3

        if not opts.txid and not opts.f and v3.should_use_v3(client, timestamp_ns):
            return _restore_v3(client, output, timestamp_ns, mode, opts.json, log)
        # Only the main thread can take SIGTERM; a restore run inside the daemon (an MCP tool) leaves the
        # daemon's handler alone.
        on_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if on_main else None
        try:
            try:
                plan = calc_restore_plan(client, opts.txid, timestamp_ns)
            except TxNotAvailable:
                if opts["if-replica-exists"]:
                    logs.info("no matching backups found")
                    return 0
                raise
            result = _restore_with_progress(client, plan, output, opts.parallelism,
                                            remove_sidecars if replacing else None, opts["ignore-checksums"],
                                            opts.json)
            if result.checksum_mismatch:
                mode = "full"  # the checksum could not vouch for the content: SQLite's own check must
            _post_restore_check(output, mode, log)
            if result.checksum_mismatch:
                log.warn("restored despite a database checksum mismatch; integrity_check passed, but the "
                         "database may not be exactly the recorded state", error=result.checksum_mismatch)
        except _Terminated:
            raise CommandError("restore interrupted by SIGTERM; no output was written") from None
        finally:
            if on_main:
                signal.signal(signal.SIGTERM, previous)
        if opts.f:
            from litestream.follow import write_txid_file

            write_txid_file(output, plan[-1].max_txid)
            return _follow(client, output, plan[-1].max_txid, opts["follow-interval"])
        if opts.json:
            summary = {"db_path": output, "replica": client.type, "txid": format_txid(opts.txid or plan[-1].max_txid),
                       "duration_ms": int((time.monotonic() - start) * 1000), "integrity_check": mode}
            if result.checksum_mismatch:
                summary["checksum_mismatch"] = result.checksum_mismatch
            print_json(summary)
        return 0
    except RestoreError as e:
        raise CommandError(str(e)) from None
    except BackendError as e:
        raise CommandError(str(e)) from None


def _restore_with_progress(client, plan, output: str, parallelism: int, replace, ignore_checksums: bool,
                           as_json: bool):
    """restore_files, with a progress line on stderr when a person watches (a terminal, not -json)."""
    from litestream.cli import progress

    line = progress.ProgressLine("restore") if progress.wanted(sys.stderr, as_json) else None
    try:
        return restore_files(client, plan, output, parallelism, replace, ignore_checksums=ignore_checksums,
                             progress=line.update if line is not None else None)
    finally:
        if line is not None:
            line.finish()


def _resume_follow(client, output: str, interval_ns: int) -> int:
    from litestream.follow import check_resumable

    txid = check_resumable(client, output)
    logs.get_logger("restore").info("resuming follow mode from crash recovery", txid=format_txid(txid),
                                    output=output)
    return _follow(client, output, txid, interval_ns)


def _follow(client, output: str, txid: int, interval_ns: int) -> int:
    """Follow until SIGINT or SIGTERM (exit 0)."""
    from litestream.follow import Follower

    follower = Follower(client, output, txid, interval_ns / 1e9)

    def stop(signum, frame):
        follower.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        follower.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _restore_v3(client, output: str, timestamp_ns: int | None, mode: str, as_json: bool, log) -> int:
    """A v0.3.x backup that is newer than the replica's LTX files (or better for the timestamp)."""
    from litestream import v3

    start = time.monotonic()
    snapshot = v3.restore_v3(client, output, timestamp_ns)
    log.info("restored from a v0.3.x backup", generation=snapshot.generation, index=snapshot.index)
    _post_restore_check(output, mode, log)
    if as_json:
        print_json({"db_path": output, "replica": client.type, "generation": snapshot.generation,
                    "duration_ms": int((time.monotonic() - start) * 1000), "integrity_check": mode})
    return 0


def _post_restore_check(output: str, mode: str, log) -> None:
    """-integrity-check quick|full on the restored file; a failure removes it (and SQLite's sidecars)."""
    if mode == "none":
        return
    try:
        integrity_check(output, mode)
    except RestoreError:
        for p in (output, output + "-shm", output + "-wal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)
        raise
    log.info("post-restore integrity check passed")
