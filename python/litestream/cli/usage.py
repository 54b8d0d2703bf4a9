# ruff: noqa: E101 - verbatim help texts keep the reference's tab indentation
"""Usage texts printed by -h, identical to the reference's so scripts and docs keep working."""

USAGE: dict[str, str] = {}

USAGE[''] = """\
litestream is a tool for replicating SQLite databases.

Usage:

	litestream <command> [arguments]

The commands are:

	databases    list databases specified in config file
	info         show daemon information
	list         list all managed databases
	ltx          list available LTX files for a database
	register     register a database for replication
	replicate    runs a server to replicate databases
	reset        reset local state for a database
	restore      recovers database backup from a replica
	start        start replication for a database
	status       display replication status for databases
	stop         stop replication for a database
	sync         force an immediate sync for a database
	unregister   unregister a database from replication
	version      prints the binary version

"""

USAGE['version'] = """\
Prints the version.

Usage:

	litestream version [arguments]

Arguments:

	-verbose
	    Print detailed build metadata (Go version, commit, build time, OS/arch).

"""

USAGE['databases'] = """\
The databases command lists all databases in the configuration file.

Usage:

	litestream databases [arguments]

Arguments:

	-config PATH
	    Specifies the configuration file.
	    Defaults to /etc/litestream.yml

	-json
	    Output raw JSON instead of human-readable text.

	-no-expand-env
	    Disables environment variable expansion in configuration file.

Examples:

	$ litestream databases
	$ litestream databases -config /path/to/litestream.yml
	$ litestream databases -no-expand-env -config /path/to/litestream.yml

"""

USAGE['info'] = """\
usage: litestream info [OPTIONS]

Show daemon information from a running Litestream instance.

Options:
  -json
      Output raw JSON instead of human-readable text.

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -timeout SECONDS
      Maximum time to wait in seconds (default: 10).

Examples:
  $ litestream info
  $ litestream info -json
  $ litestream info -socket /tmp/litestream.sock

"""

USAGE['list'] = """\
usage: litestream list [OPTIONS]

List all managed databases from a running daemon.

Options:
  -json
      Output raw JSON instead of human-readable text.

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -timeout SECONDS
      Maximum time to wait in seconds (default: 10).

Examples:
  $ litestream list
  $ litestream list -json
  $ litestream list -socket /tmp/litestream.sock

"""

USAGE['ltx'] = """\
The ltx command lists all LTX files available for a database.

Usage:

	litestream ltx [arguments] DB_PATH

	litestream ltx [arguments] REPLICA_URL

Arguments:

	-config PATH
	    Specifies the configuration file.
	    Defaults to /etc/litestream.yml

	-no-expand-env
	    Disables environment variable expansion in configuration file.

	-level LEVEL
	    Compaction level to list (0-9 or "all").
	    Defaults to 0.

	-json
	    Output raw JSON instead of human-readable text.

Examples:

	# List all LTX files for a database.
	$ litestream ltx /path/to/db

	# List all LTX files for replica URL.
	$ litestream ltx s3://mybkt/db

	# List LTX files at snapshot level (level 9).
	$ litestream ltx -level 9 /path/to/db

	# List LTX files across all compaction levels.
	$ litestream ltx -level all /path/to/db

"""

USAGE['register'] = """\
usage: litestream register [OPTIONS] DB_PATH

Register a database for replication.

Arguments:
  DB_PATH      Path to the SQLite database file.

Options:
  -replica URL
      Replica destination URL (e.g., s3://bucket/prefix, file:///backup/path).
      Required.

  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Register a database with an S3 replica.
  $ litestream register -replica s3://mybucket/db /path/to/db

  # Register a database with a file replica.
  $ litestream register -replica file:///backup/path /path/to/db

  # Register using a non-default control socket.
  $ litestream register -socket /tmp/litestream.sock -replica s3://mybucket/db /path/to/db

  # Register and emit a JSON confirmation.
  $ litestream register -json -replica s3://mybucket/db /path/to/db

"""

USAGE['replicate'] = """\
The replicate command starts a server to monitor & replicate databases.
You can specify your database & replicas in a configuration file or you can
replicate a single database file by specifying its path and its replicas in the
command line arguments.

Usage:

	litestream replicate [arguments]

	litestream replicate [arguments] DB_PATH REPLICA_URL

Arguments:

	-config PATH
	    Specifies the configuration file.
	    Defaults to /etc/litestream.yml

	-exec CMD
	    Executes a subcommand. Litestream will exit when the child
	    process exits. Useful for simple process management.

	-once
	    Replicate once and exit. This performs a single sync of all
	    databases and their replicas, then exits. Cannot be used with -exec.

	-force-snapshot
	    Force a snapshot to be taken for all databases. Requires -once.
	    This is useful for creating a complete backup before maintenance
	    or when migrating databases between hosts.

	-enforce-retention
	    Enforce retention policies for old snapshots. Requires -once.
	    This removes snapshots that are older than the configured
	    snapshot retention period.

	-log-level LEVEL
	    Sets the log level. Overrides the config file setting.
	    Valid values: trace, debug, info, warn, error

	-no-expand-env
	    Disables environment variable expansion in configuration file.

	-restore-if-db-not-exists
	    Restores the database from the replica if it doesn't exist.
	    On first start with no backup, proceeds normally.

Runtime control commands require the daemon control socket. This includes
start, stop, sync, register, unregister, info, and list. Enable it in the config:

	socket:
	  enabled: true
	  path: /tmp/litestream.sock

"""

USAGE['reset'] = """\
The reset command clears local Litestream state for a database.

This is useful for recovering from corrupted or missing LTX files. The reset
removes local LTX files from the metadata directory, forcing Litestream to
create a fresh snapshot on the next sync. The database file itself is not
modified.

Usage:

	litestream reset [arguments] <path>

Arguments:

	-config PATH
	    Specifies the configuration file.
	    Defaults to /etc/litestream.yml

	-no-expand-env
	    Disables environment variable expansion in configuration file.

	-dry-run
	    Print the local LTX files that would be removed without deleting them.

Examples:

	# Reset local state for a specific database
	litestream reset /path/to/database.db

	# Preview local files that would be removed
	litestream reset -dry-run /path/to/database.db

	# Reset using a specific configuration file
	litestream reset -config /etc/litestream.yml /path/to/database.db

"""

USAGE['restore'] = """\

The restore command recovers a database from a previous snapshot and WAL.

Usage:

	litestream restore [arguments] DB_PATH

	litestream restore [arguments] REPLICA_URL

Arguments:

	-config PATH
	    Specifies the configuration file.
	    Defaults to /etc/litestream.yml

	-no-expand-env
	    Disables environment variable expansion in configuration file.

	-txid TXID
	    Restore up to a specific hex-encoded transaction ID (inclusive).
	    Defaults to use the highest available transaction.

	-timestamp TIMESTAMP
	    Restore to a specific point-in-time.
	    Defaults to use the latest available backup.

	-o PATH
	    Output path of the restored database.
	    Defaults to original DB path.

	-if-db-not-exists
	    Returns exit code of 0 if the database already exists.

	-if-replica-exists
	    Returns exit code of 0 if no backups found.

	-dry-run
	    Print the restore plan and exit without writing a database.

	-force
	    Overwrite an existing output database and SQLite sidecar files.

	-json
	    Output raw JSON summary on successful restore.

	-f
	    Follow mode. After restoring, continuously poll for and apply
	    new changes. Similar to tail -f. The restored database should
	    only be opened in read-only mode by consumers.
	    Cannot be used with -txid or -timestamp.

	-follow-interval DURATION
	    Polling interval for follow mode.
	    Defaults to 1s.

	-parallelism NUM
	    Determines the number of WAL files downloaded in parallel.
	    Defaults to 8

	-integrity-check MODE
	    Run a post-restore integrity check on the database.
	    MODE is one of: none, quick, full.
	    Defaults to none.

	-ignore-checksums
	    Restore even when the database checksums recorded in the LTX
	    files do not add up (each file's own CRC is still verified).
	    A full integrity check then runs, and the mismatch is reported.


Examples:

	# Restore latest replica for database to original location.
	$ litestream restore /path/to/db

	# Restore replica for database to a given point in time.
	$ litestream restore -timestamp 2020-01-01T00:00:00Z /path/to/db

	# Restore latest replica for database to new /tmp directory
	$ litestream restore -o /tmp/db /path/to/db

	# Restore database from S3 replica URL.
	$ litestream restore -o /tmp/db s3://mybucket/db

	# Preview restore plan without writing a database.
	$ litestream restore -dry-run -o /tmp/db s3://mybucket/db

	# Continuously restore (follow) a database from a replica.
	$ litestream restore -f -o /tmp/read-replica.db s3://mybucket/db

"""

USAGE['start'] = """\
usage: litestream start [OPTIONS] DB_PATH

Start replication for a database.

Options:
  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Start replication for a database on the running daemon.
  $ litestream start /path/to/db

  # Start replication and emit a JSON confirmation.
  $ litestream start -json /path/to/db

  # Start replication using a non-default control socket.
  $ litestream start -socket /tmp/litestream.sock /path/to/db

  # Start replication and wait up to 10 seconds for the daemon response.
  $ litestream start -timeout 10 /path/to/db

"""

USAGE['status'] = """\
The status command displays the replication status of databases.

Usage:

	litestream status [arguments] [database path]

Arguments:

	-config PATH
	    Specifies the configuration file.
	    Defaults to /etc/litestream.yml

	-json
	    Output raw JSON instead of human-readable text.

	-no-expand-env
	    Disables environment variable expansion in configuration file.

If a database path is provided, only that database's status is shown.
Otherwise, all configured databases are displayed.

Output columns:
  database      Path to the SQLite database
  status        Current status (ok, not initialized, no database, error)
  local txid    Latest local transaction ID
  wal size      Current WAL file size

Note: To see replica TXID and sync status, inspect daemon diagnostics or logs
while the replication daemon is running.

Examples:

	$ litestream status
	$ litestream status /path/to/db
	$ litestream status -json

"""

USAGE['stop'] = """\
usage: litestream stop [OPTIONS] DB_PATH

Stop replication for a database.
Stop always waits for shutdown and final sync.

Options:
  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Stop replication for a database.
  $ litestream stop /path/to/db

  # Stop replication and emit a JSON confirmation.
  $ litestream stop -json /path/to/db

  # Stop replication using a non-default control socket.
  $ litestream stop -socket /tmp/litestream.sock /path/to/db

  # Stop replication and wait up to 10 seconds for final sync and shutdown.
  $ litestream stop -timeout 10 /path/to/db

"""

USAGE['sync'] = """\
usage: litestream sync [OPTIONS] DB_PATH

Force an immediate sync for a database.

Options:
  -wait
      Block until sync completes including remote replication (default: false).

  -timeout SECONDS
      Maximum time to wait in seconds, best-effort (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  $ litestream sync /path/to/db
  $ litestream sync -json /path/to/db
  $ litestream sync -wait /path/to/db
  $ litestream sync -wait -timeout 120 /path/to/db

"""

USAGE['unregister'] = """\
usage: litestream unregister [OPTIONS] DB_PATH

Unregister a database from replication.

Arguments:
  DB_PATH      Path to the SQLite database file.

Options:
  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -dry-run
      Preview what would be unregistered without changing the daemon.

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Unregister a database from the running daemon.
  $ litestream unregister /path/to/db

  # Unregister a database and emit a JSON confirmation.
  $ litestream unregister -json /path/to/db

  # Preview an unregister request without changing the daemon.
  $ litestream unregister -dry-run /path/to/db

  # Unregister a database using a non-default control socket.
  $ litestream unregister -socket /tmp/litestream.sock /path/to/db

  # Unregister a database and wait up to 10 seconds for shutdown.
  $ litestream unregister -timeout 10 /path/to/db

"""
