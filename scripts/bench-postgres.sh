#!/usr/bin/env bash
# TPC-H on a `postgres` catalog: TPC-H scale $SF loaded into a PostgreSQL started here, mounted as
# catalog `postgres` in a release build of Tributary, and the 22 queries timed through Tributary
# and directly on PostgreSQL (same SQL, same data) with the bench kit's tpch_bench.py: per-query
# medians, both totals and the ratio Tributary / PostgreSQL ("total" line, last column).
#
#   scripts/bench-postgres.sh                   # scale 1, 3 runs, --check
#   SF=0.1 RUNS=1 scripts/bench-postgres.sh --only q01,q06
#
# Environment:
#   SF          scale factor (default 1); the PostgreSQL schema is sf$SF (sf1, sf0_1, ...)
#   RUNS        timed runs per query after one warm-up (default 3)
#   BENCH_PG    PostgreSQL data and .tbl files (default target/bench-postgres); kept between runs,
#               so the load (~5 min at scale 1) happens once
#   PG_BIN      directory of initdb / pg_ctl / psql (default: pg_config --bindir, else the newest
#               /usr/lib/postgresql/*/bin)
#   BENCH_PY    the bench kit script (default ../shared/bench/tpch_bench.py next to the repo)
#   PORT, PG_PORT  Tributary's and PostgreSQL's ports (default: free ones)
# Extra arguments go to tpch_bench.py (e.g. --only q01,q06). As root, PostgreSQL runs as the
# `postgres` OS user (runuser).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SF="${SF:-1}"
RUNS="${RUNS:-3}"
BASE="${BENCH_PG:-$ROOT/target/bench-postgres}"
BENCH_PY="${BENCH_PY:-$ROOT/../shared/bench/tpch_bench.py}"
QUERIES="$ROOT/compat-tests/queries"
SCHEMA="sf${SF//./_}"
DB="tpch"
VENV="$ROOT/target/test-tools/bench-venv"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench-postgres.sh: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[ -f "$BENCH_PY" ] || die "bench script not found at $BENCH_PY (set BENCH_PY)"
[ -d "$QUERIES" ] || die "queries not found at $QUERIES"
command -v python3 >/dev/null 2>&1 || die "python3 not found"

# ---- tools: PostgreSQL binaries, tpchgen-cli, psycopg -----------------------------------------
if [ -z "${PG_BIN:-}" ]; then
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    PG_BIN="$(pg_config --bindir)"
  else
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  fi
fi
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] \
  || die "PostgreSQL binaries not found (install postgresql, or set PG_BIN)"
PSQL="$PG_BIN/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql || true)"
[ -n "$PSQL" ] || die "psql not found"

if [ "$(id -u)" = "0" ]; then
  id -u postgres >/dev/null 2>&1 || die "running as root: the postgres OS user is needed (useradd --system postgres)"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if ! command -v tpchgen-cli >/dev/null 2>&1; then
  log "cargo install --locked tpchgen-cli"
  cargo install --locked tpchgen-cli
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

PY=python3
py_has() { "$PY" -c "import $1" >/dev/null 2>&1; }
if ! py_has psycopg; then
  # Try the current Python first; fall back to a virtualenv (Debian refuses system-wide pip).
  if ! "$PY" -m pip install --quiet "psycopg[binary]" 2>/dev/null; then
    log "pip install psycopg[binary] into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "psycopg[binary]"
    PY="$VENV/bin/python"
  fi
fi
py_has psycopg || die "python module psycopg missing (pip install 'psycopg[binary]')"

# ---- PostgreSQL: own data directory, started on a free port, stopped on exit ------------------
PGDATA="$BASE/data"
mkdir -p "$BASE"
[ "$(id -u)" = "0" ] && chown postgres:postgres "$BASE"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  log "initdb $PGDATA"
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
fi
PG_PORT="${PG_PORT:-$(free_port)}"
PG_LOG="$BASE/postgres.log"
log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 120 \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $BASE -c shared_buffers=1GB -c work_mem=64MB \
-c maintenance_work_mem=512MB -c effective_cache_size=4GB -c max_connections=100 \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" stop -m fast -w >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

pg() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# ---- data: TPC-H scale $SF in database tpch, schema $SCHEMA (DDL as compat-tests/src/tpch.rs) --
pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
  || pg -d postgres -c "CREATE DATABASE $DB"
LOADED="$(pg -d "$DB" -tAc "SELECT obj_description('$SCHEMA'::regnamespace)" 2>/dev/null || true)"
if [ "$LOADED" != "tpch loaded" ]; then
  TBL="$BASE/tbl-$SCHEMA"
  if [ ! -f "$TBL/lineitem.tbl" ]; then
    log "generating TPC-H scale $SF .tbl files into $TBL"
    rm -rf "$TBL.tmp"
    mkdir -p "$TBL.tmp"
    # tpchgen-cli >= 4 has format subcommands (`tpchgen-cli tbl ...`); older ones default to tbl.
    HELP="$(tpchgen-cli --help 2>&1 || true)"
    if grep -qE '^\s+tbl\b' <<<"$HELP"; then
      tpchgen-cli tbl -s "$SF" --output-dir "$TBL.tmp"
    else
      tpchgen-cli -s "$SF" --output-dir "$TBL.tmp"
    fi
    for t in nation region part supplier partsupp customer orders lineitem; do
      [ -e "$TBL.tmp/$t.tbl" ] || die "tpchgen-cli did not write $t.tbl into $TBL.tmp"
    done
    rm -rf "$TBL"
    mv "$TBL.tmp" "$TBL"
  fi
  log "loading TPC-H scale $SF into PostgreSQL $DB.$SCHEMA"
  pg -d "$DB" <<SQL
DROP SCHEMA IF EXISTS $SCHEMA CASCADE;
CREATE SCHEMA $SCHEMA;
SET search_path TO $SCHEMA;
$(cat "$ROOT/compat-tests/sql/tpch_ddl.sql")
SQL
  for t in nation region part supplier partsupp customer orders lineitem; do
    log "COPY $t"
    # .tbl lines end with the delimiter: drop it.
    sed 's/|$//' "$TBL/$t.tbl" \
      | pg -d "$DB" -c "COPY $SCHEMA.$t FROM STDIN WITH (FORMAT text, DELIMITER '|')"
  done
  log "keys, indexes, ANALYZE"
  pg -d "$DB" <<SQL
SET search_path TO $SCHEMA;
$(cat "$ROOT/compat-tests/sql/tpch_postgres_indexes.sql")
ANALYZE;
COMMENT ON SCHEMA $SCHEMA IS 'tpch loaded';
SQL
fi

# ---- Tributary: release build, catalog `postgres` over database tpch ----------------------------
log "cargo build --release --bin tributary"
cargo build --release --bin tributary
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tributary"
[ -x "$BIN" ] || die "release binary not found at $BIN"

CONFIG="$ROOT/target/bench-postgres-config"
rm -rf "$CONFIG"
mkdir -p "$CONFIG/catalog"
cat > "$CONFIG/catalog/postgres.toml" <<TOML
connector = "postgres"
host = "127.0.0.1"
port = $PG_PORT
database = "$DB"
user = "postgres"
TOML

PORT="${PORT:-$(free_port)}"
SERVER_LOG="$ROOT/target/bench-postgres-tributary.log"
log "starting $BIN on 127.0.0.1:$PORT (log: $SERVER_LOG)"
"$BIN" --config "$CONFIG" --listen "127.0.0.1:$PORT" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$SERVER_LOG" >&2
    die "tributary exited during startup"
  fi
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null \
  || { cat "$SERVER_LOG" >&2; die "tributary did not accept connections on port $PORT within 30 s"; }

# ---- run: PostgreSQL directly is the baseline, so the ratio column is Tributary / PostgreSQL ---
ENGINES=(
  --engine "pg:127.0.0.1:$PG_PORT:$DB:SET search_path TO $SCHEMA"
  --engine "pg:127.0.0.1:$PORT:postgres:SET search_path TO $SCHEMA"
)
log "TPC-H scale $SF: $PY $BENCH_PY --runs $RUNS ${ENGINES[*]} --check $*"
set +e
PGUSER=postgres "$PY" "$BENCH_PY" --queries "$QUERIES" --runs "$RUNS" "${ENGINES[@]}" --check "$@" \
  | tee "$ROOT/target/bench-postgres.tsv"
STATUS=${PIPESTATUS[0]}
set -e
TOTAL="$(grep -E '^total' "$ROOT/target/bench-postgres.tsv" || true)"
if [ -n "$TOTAL" ]; then
  read -r _ PG_TOTAL TRIB_TOTAL RATIO <<<"$TOTAL"
  printf '\nTPC-H scale %s, %s runs (median per query, summed):\n' "$SF" "$RUNS"
  printf '  PostgreSQL directly:            %8s s\n' "$PG_TOTAL"
  printf '  Tributary (postgres catalog):   %8s s\n' "$TRIB_TOTAL"
  printf '  ratio Tributary / PostgreSQL:   %8s\n' "$RATIO"
fi
exit "$STATUS"
