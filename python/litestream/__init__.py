"""litestream-py: streaming replication of SQLite, compatible with Litestream 0.5."""

__version__ = "0.5.17"
