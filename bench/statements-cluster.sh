# Sourced by bench/statements-per-*.sh: a throwaway Debian PostgreSQL cluster with pg_stat_statements
# preloaded (planning times tracked too), and the service of the checkout named by the script's first
# argument (default: this one; built, in $DIST) on it ($URL, $APP_PORT); both stopped on exit. Their
# process ids ($PG_PID, $SERVICE) let the scripts measure CPU with this checkout's $CPU_JS.
set -euo pipefail
DIST=$(cd "${1:-$(dirname "$0")/..}" && pwd)
CPU_JS=$(cd "$(dirname "$0")/.." && pwd)/dist/bench/process-cpu.js
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DIR=$(mktemp -d /tmp/ledger-statements.XXXXXX)
chmod 755 "$DIR"
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
PORT=$(free_port)
APP_PORT=$(free_port)
as_owner "$PGBIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on" start >/dev/null
SERVICE=
trap '[ -n "$SERVICE" ] && kill $SERVICE 2>/dev/null; as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null; rm -rf "$DIR"' EXIT
PG_PID=$(head -n 1 "$DIR/data/postmaster.pid")
URL=postgres://postgres@127.0.0.1:$PORT/postgres
# exec: $! is the service itself, so that the trap stops it (a subshell's pid left it running).
(cd "$DIST" && DATABASE_URL=$URL PORT=$APP_PORT LOG_LEVEL=warn exec node dist/src/main.js >"$DIR/service.log" 2>&1) &
SERVICE=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$APP_PORT/health/ready" >/dev/null && break; sleep 0.5; done
