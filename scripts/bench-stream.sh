#!/usr/bin/env bash
# Result streaming: `SELECT * FROM sf1.lineitem` (6,001,215 rows at scale 1) read by a binary-format
# client (pgjdbc, a server-prepared statement with binary results fetched 10000 rows at a time:
# compat-tests/clients/StreamBench.java) and through `COPY (...) TO STDOUT` (text), from a release
# build of Tributary (the built-in `tpch` catalog, generated on the fly) and from PostgreSQL serving
# the same rows from a table. Prints rows/s per server and way, the best of $RUNS runs. A
# benchmark, not a test: timings live here, never in tests.
#
#   scripts/bench-stream.sh                     # scale 1, 3 runs
#   SF=0.01 RUNS=1 scripts/bench-stream.sh      # schema `tiny` (quick check of the script)
#
# Environment:
#   SF          1 (schema sf1, default) or 0.01 (schema tiny)
#   RUNS        timed runs per server and way (default 3); the best one is reported
#   BENCH_PG    PostgreSQL data directory base (default target/bench-postgres, shared with
#               scripts/bench-postgres.sh: a lineitem it loaded is reused)
#   PG_BIN      directory of initdb / pg_ctl / psql (default: pg_config --bindir, else the newest
#               /usr/lib/postgresql/*/bin)
#   CARGO_TARGET_DIR  where the release build goes (build from a `git worktree` with its own target
#               directory to leave the dev build's directory unlocked)
#   PGJDBC_JAR  pgjdbc (default /usr/share/java/postgresql.jar; scripts/deps/clients.sh installs it)
#   PORT, PG_PORT  Tributary's and PostgreSQL's ports (default: free ones)
# PostgreSQL's copy of lineitem is loaded once, from Tributary itself (COPY out of Tributary into
# COPY FROM STDIN), so both serve the same rows. As root, PostgreSQL runs as the `postgres` OS user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SF="${SF:-1}"
RUNS="${RUNS:-3}"
BASE="${BENCH_PG:-$ROOT/target/bench-postgres}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
DB="tpch"
case "$SF" in
  1) SCHEMA=sf1 ;;
  0.01) SCHEMA=tiny ;;
  *) printf 'scripts/bench-stream.sh: SF must be 1 or 0.01\n' >&2; exit 1 ;;
esac
PG_SCHEMA="sf${SF//./_}"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench-stream.sh: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.5)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

command -v python3 >/dev/null 2>&1 || die "python3 not found"

# ---- tools: PostgreSQL binaries ----------------------------------------------------------------
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

# ---- the client (pgjdbc) and the server (release build) ----------------------------------------
PGJDBC_JAR="${PGJDBC_JAR:-/usr/share/java/postgresql.jar}"
[ -f "$PGJDBC_JAR" ] || die "pgjdbc not found at $PGJDBC_JAR (scripts/deps/clients.sh installs it; or set PGJDBC_JAR)"
command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1 || die "java and javac not found (a JDK)"
CLASSES="$TARGET/bench-stream-classes"
mkdir -p "$CLASSES"
javac -d "$CLASSES" -cp "$PGJDBC_JAR" "$ROOT/compat-tests/clients/StreamBench.java"
CLIENT=(java -cp "$PGJDBC_JAR:$CLASSES" StreamBench)

log "cargo build --release --bin tributary (target: $TARGET)"
cargo build --release --bin tributary
BIN="$TARGET/release/tributary"
[ -x "$BIN" ] || die "release binary not found at $BIN"

# ---- servers: PostgreSQL (own data directory) and Tributary, stopped on exit ------------------
PGDATA="$BASE/data"
mkdir -p "$BASE"
[ "$(id -u)" = "0" ] && chown postgres:postgres "$BASE"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  log "initdb $PGDATA"
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
fi
PG_PORT="${PG_PORT:-$(free_port)}"
log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $BASE/postgres.log)"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$BASE/postgres.log" -w -t 120 \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $BASE -c shared_buffers=1GB \
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

PORT="${PORT:-$(free_port)}"
SERVER_LOG="$TARGET/bench-stream-tributary.log"
log "starting $BIN on 127.0.0.1:$PORT (log: $SERVER_LOG)"
"$BIN" --listen "127.0.0.1:$PORT" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
wait_port "$PORT" || { cat "$SERVER_LOG" >&2; die "tributary did not accept connections on port $PORT"; }

pg() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# ---- data: lineitem in PostgreSQL (DDL as scripts/bench-postgres.sh), copied out of Tributary ----
pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
  || pg -d postgres -c "CREATE DATABASE $DB"
LOADED="$(pg -d "$DB" -tAc "SELECT coalesce(obj_description('$PG_SCHEMA'::regnamespace), '') || '|' ||
  coalesce(obj_description(to_regclass('$PG_SCHEMA.lineitem'), 'pg_class'), '')" 2>/dev/null || true)"
case "$LOADED" in
  "tpch loaded|"* | *"|lineitem loaded") ;;
  *)
    log "loading $PG_SCHEMA.lineitem into PostgreSQL from Tributary's tpch.$SCHEMA.lineitem"
    pg -d "$DB" <<SQL
CREATE SCHEMA IF NOT EXISTS $PG_SCHEMA;
DROP TABLE IF EXISTS $PG_SCHEMA.lineitem;
CREATE TABLE $PG_SCHEMA.lineitem (l_orderkey bigint NOT NULL, l_partkey integer NOT NULL,
  l_suppkey integer NOT NULL, l_linenumber integer NOT NULL, l_quantity decimal(15,2) NOT NULL,
  l_extendedprice decimal(15,2) NOT NULL, l_discount decimal(15,2) NOT NULL,
  l_tax decimal(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
  l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
  l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL);
SQL
    "$PSQL" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U bench -d "$DB" \
        -c "COPY (SELECT * FROM $SCHEMA.lineitem) TO STDOUT" \
      | pg -d "$DB" -c "COPY $PG_SCHEMA.lineitem FROM STDIN"
    pg -d "$DB" -c "ANALYZE $PG_SCHEMA.lineitem" \
      -c "COMMENT ON TABLE $PG_SCHEMA.lineitem IS 'lineitem loaded'"
    ;;
esac
EXPECTED="$(pg -d "$DB" -tAc "SELECT count(*) FROM $PG_SCHEMA.lineitem")"

# ---- runs: best of $RUNS per server and way ----------------------------------------------------
PG_URL="jdbc:postgresql://127.0.0.1:$PG_PORT/$DB"
TRIB_URL="jdbc:postgresql://127.0.0.1:$PORT/$DB"
RESULTS="$TARGET/bench-stream.tsv"
printf 'server\tway\trows\tseconds\trows_per_s\tMB_per_s\n' >"$RESULTS"
run() { # server url user way sql
  local best="" best_bytes=0 line rows seconds bytes
  for i in $(seq 1 "$RUNS"); do
    line="$("${CLIENT[@]}" "$2" "$3" "$4" "$5")" || die "$1 $4 failed: $5"
    read -r rows seconds bytes <<<"$line"
    [ "$rows" = "$EXPECTED" ] || die "$1 $4 read $rows rows, expected $EXPECTED"
    log "$1 $4 run $i: $rows rows in $seconds s"
    if [ -z "$best" ] || awk -v a="$seconds" -v b="$best" 'BEGIN { exit !(a < b) }'; then
      best="$seconds"
      best_bytes="$bytes"
    fi
  done
  awk -v s="$1" -v w="$4" -v r="$EXPECTED" -v t="$best" -v b="$best_bytes" 'BEGIN {
    way = (w == "rows") ? "binary rows" : "COPY text"
    mb = (b > 0) ? sprintf("%.1f", b / t / 1e6) : "-"
    printf "%s\t%s\t%d\t%.2f\t%.0f\t%s\n", s, way, r, t, r / t, mb
  }' >>"$RESULTS"
}
run postgres "$PG_URL" postgres rows "SELECT * FROM $PG_SCHEMA.lineitem"
run tributary "$TRIB_URL" bench rows "SELECT * FROM $SCHEMA.lineitem"
run postgres "$PG_URL" postgres copy "COPY (SELECT * FROM $PG_SCHEMA.lineitem) TO STDOUT"
run tributary "$TRIB_URL" bench copy "COPY (SELECT * FROM $SCHEMA.lineitem) TO STDOUT"

printf '\nlineitem (%s rows), best of %s runs:\n' "$EXPECTED" "$RUNS"
column -t -s $'\t' "$RESULTS"
