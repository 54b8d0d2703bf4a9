#!/usr/bin/env bash
# Install litestream-py, create a demo database and replicate it to a local file replica (no cloud
# account). Runs until Ctrl-C; write to demo/app.db meanwhile and restore with
#   litestream restore -o /tmp/restored.db file://$PWD/demo/replica
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
bash "$repo/ci/install.sh"
mkdir -p demo
"$python" - <<'PY'
import apsw
conn = apsw.Connection("demo/app.db")
conn.execute("PRAGMA journal_mode=wal").fetchall()
conn.execute("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT, at TEXT DEFAULT CURRENT_TIMESTAMP)")
conn.execute("INSERT INTO notes(body) VALUES ('hello from the demo')")
PY
cat > demo/litestream.yml <<YML
dbs:
  - path: $PWD/demo/app.db
    replica:
      url: file://$PWD/demo/replica
YML
echo "replicating demo/app.db to demo/replica (Ctrl-C to stop)"
exec "$python" -m litestream replicate -config demo/litestream.yml
