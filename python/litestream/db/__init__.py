"""One database: local state (meta.py), SQLite connections (conn.py), WAL -> L0 (sync.py),
checkpoints (checkpoint.py) and the object that ties them together (database.py)."""
