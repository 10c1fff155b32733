#!/usr/bin/env bash
# TPC-H through `mysql` catalogs, with and without indexes at the source: what `join_pushdown`
# decides, timed. TPC-H scale $SF is loaded twice into a MariaDB started here: database
# `tpch_idx` with the keys and indexes the compat tests use, database `tpch_noidx` with none. A
# release build of Tributary mounts the server as catalogs `auto_idx`, `auto_noidx`
# (join_pushdown = "automatic", the default), `never_idx`, `never_noidx` (and `eager_idx`), and the
# bench kit's tpch_bench.py runs the 22 queries on
#   auto over tpch_idx (the baseline), never over tpch_idx, auto over tpch_noidx, never over tpch_noidx
# side by side (per-query medians, ratios to the first, --check: every answer must agree).
# `automatic` should be the faster of the two on each database: on tpch_noidx it pushes no join
# (MariaDB would rescan a table per row: TPC-H q04 pushed took minutes), so it equals `never`.
#
#   scripts/bench-mysql.sh                       # scale 0.1, 3 runs
#   SF=1 RUNS=1 scripts/bench-mysql.sh --only q03,q05
#   EAGER=1 scripts/bench-mysql.sh               # adds eager over tpch_idx
#
# Environment:
#   SF          scale factor (default 0.1)
#   RUNS        timed runs per query after one warm-up (default 3)
#   EAGER       1 to add catalog `eager` (join_pushdown = "eager") over tpch_idx; never over
#               tpch_noidx, where its nested loops take minutes per query
#   BENCH_MYSQL MariaDB data and .tbl files (default target/bench-mysql); the server's data is
#               kept between runs, so the load happens once per scale
#   BENCH_PY    the bench kit script (default ../shared/bench/tpch_bench.py next to the repo)
# Extra arguments go to tpch_bench.py (e.g. --only q04,q05). Needs mariadb-server (installed by
# scripts/test.sh), tpchgen-cli and psycopg (installed here if missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SF="${SF:-0.1}"
# log, die, free_port, wait_port, PIDS (killed on exit), RUNS, BENCH_PY, VENV.
source scripts/bench-lib.sh
EAGER="${EAGER:-0}"
BASE="${BENCH_MYSQL:-$ROOT/target/bench-mysql}"
QUERIES="$ROOT/compat-tests/queries"
LOGS="$ROOT/target"
TAG="sf${SF//./_}"

[ -f "$BENCH_PY" ] || die "bench script not found at $BENCH_PY (set BENCH_PY)"
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac
for tool in mariadbd mariadb-install-db mariadb; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install mariadb-server mariadb-client)"
done
if ! command -v tpchgen-cli >/dev/null 2>&1; then
  log "cargo install --locked tpchgen-cli"
  cargo install --locked tpchgen-cli
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
PY=python3
if ! "$PY" -c "import psycopg" >/dev/null 2>&1; then
  if ! "$PY" -m pip install --quiet "psycopg[binary]" 2>/dev/null; then
    log "pip install psycopg[binary] into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "psycopg[binary]"
    PY="$VENV/bin/python"
  fi
fi

# ---- MariaDB: own data directory, a free port, stopped on exit -----------------------------
ROOT_USER=()
[ "$(id -u)" = "0" ] && ROOT_USER=(--user=root)
mkdir -p "$BASE/tmp"
if [ ! -d "$BASE/data/mysql" ]; then
  log "mariadb-install-db $BASE/data"
  mariadb-install-db --no-defaults --datadir="$BASE/data" --tmpdir="$BASE/tmp" \
    --auth-root-authentication-method=normal --skip-test-db "${ROOT_USER[@]}" >/dev/null
fi
MY_PORT="$(free_port)"
SOCK="$BASE/mysqld.sock"
log "starting mariadbd on 127.0.0.1:$MY_PORT (log: $BASE/err.log)"
mariadbd --no-defaults "${ROOT_USER[@]}" --datadir="$BASE/data" --tmpdir="$BASE/tmp" \
  --bind-address=127.0.0.1 --port="$MY_PORT" --socket="$SOCK" --pid-file="$BASE/mysqld.pid" \
  --log-error="$BASE/err.log" --skip-name-resolve --innodb-buffer-pool-size=1G \
  --innodb-flush-log-at-trx-commit=0 --skip-log-bin --local-infile=1 &
PIDS+=($!)
my() { mariadb --no-defaults -uroot --socket="$SOCK" --local-infile=1 "$@"; }
for _ in $(seq 1 600); do my -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
my -e "SELECT 1" >/dev/null || die "mariadbd did not start (see $BASE/err.log)"

# ---- data: TPC-H scale $SF in tpch_idx (keys, indexes) and tpch_noidx (none) -----------------
TBL="$BASE/tbl-$TAG"
if [ ! -f "$TBL/lineitem.tbl" ]; then
  log "generating TPC-H scale $SF .tbl files into $TBL"
  rm -rf "$TBL.tmp"
  mkdir -p "$TBL.tmp"
  if grep -qE '^\s+tbl\b' <<<"$(tpchgen-cli --help 2>&1 || true)"; then
    tpchgen-cli tbl -s "$SF" --output-dir "$TBL.tmp"
  else
    tpchgen-cli -s "$SF" --output-dir "$TBL.tmp"
  fi
  rm -rf "$TBL"
  mv "$TBL.tmp" "$TBL"
fi
# The TPC-H tables, and the keys and indexes of the indexed copy, as the compat tests create them.
DDL="$(cat "$ROOT/compat-tests/sql/tpch_ddl.sql")"
INDEXES="$(cat "$ROOT/compat-tests/sql/tpch_mysql_indexes.sql")"
load() { # DATABASE INDEXES_SQL
  local loaded
  loaded="$(my -N -e "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$1'" 2>/dev/null || true)"
  [ "$loaded" = "tpch $TAG loaded" ] && return 0
  log "loading TPC-H scale $SF into MariaDB database $1"
  local loads=""
  for t in nation region part supplier partsupp customer orders lineitem; do
    loads+="LOAD DATA LOCAL INFILE '$TBL/$t.tbl' INTO TABLE $t CHARACTER SET utf8mb4
      FIELDS TERMINATED BY '|' LINES TERMINATED BY '|\n';
"
  done
  my -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4; USE $1;
$DDL
$2
$loads
ANALYZE TABLE nation, region, part, supplier, partsupp, customer, orders, lineitem;
ALTER DATABASE $1 COMMENT 'tpch $TAG loaded';" >/dev/null
}
load tpch_idx "$INDEXES"
load tpch_noidx ""

# ---- Tributary: release build, catalogs auto / never (/ eager) on the server ------------------
log "cargo build --release --bin tributary"
cargo build --release --bin tributary
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tributary"
CONFIG="$ROOT/target/bench-mysql-config"
rm -rf "$CONFIG"
mkdir -p "$CONFIG/catalog"
catalog() { # NAME STRATEGY
  printf 'connector = "mysql"\nhost = "127.0.0.1"\nport = %s\nuser = "root"\njoin_pushdown = "%s"\n' \
    "$MY_PORT" "$2" > "$CONFIG/catalog/$1.toml"
}
# One catalog per (strategy, database), so that the bench's engine names (catalog) tell them apart.
catalog auto_idx automatic
catalog never_idx never
catalog eager_idx eager
catalog auto_noidx automatic
catalog never_noidx never
PORT="$(free_port)"
log "starting $BIN on 127.0.0.1:$PORT (log: $LOGS/bench-mysql-tributary.log)"
"$BIN" --config "$CONFIG" --listen "127.0.0.1:$PORT" >"$LOGS/bench-mysql-tributary.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"

engine() { echo "pg:127.0.0.1:$PORT:$1_$2:SET search_path TO tpch_$2"; }
ENGINES=(--engine "$(engine auto idx)" --engine "$(engine never idx)")
[ "$EAGER" = "1" ] && ENGINES+=(--engine "$(engine eager idx)")
ENGINES+=(--engine "$(engine auto noidx)" --engine "$(engine never noidx)")
log "TPC-H scale $SF through mysql catalogs: $PY $BENCH_PY --runs $RUNS ${ENGINES[*]} --check $*"
PGUSER="${PGUSER:-bench}" "$PY" "$BENCH_PY" --queries "$QUERIES" --runs "$RUNS" "${ENGINES[@]}" --check "$@"
