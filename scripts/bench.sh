#!/usr/bin/env bash
# TPC-H benchmark: Tributary (release build) over a lake catalog of TPC-H Parquet, optionally
# beside DuckDB on the same files, with the bench kit's tpch_bench.py (per-query medians, ratios).
#
#   scripts/bench.sh                      # scale 1, 3 runs, with DuckDB, --check
#   SF=10 RUNS=5 scripts/bench.sh --only q01,q06
#   DUCKDB=0 scripts/bench.sh             # Tributary alone
#
# Environment:
#   SF          scale factor (default 1); the schema is named sf$SF (sf1, sf10, ...)
#   RUNS        timed runs per query after one warm-up (default 3)
#   DUCKDB      1 (default) to run DuckDB beside Tributary, 0 not to
#   BENCH_DATA  where the Parquet files go (default target/bench-data); kept between runs
#   BENCH_PY    the bench kit script (default ../shared/bench/tpch_bench.py next to the repo)
#   PORT        Tributary's port (default: a free one)
#   DATA_ONLY   1 to generate the Parquet data (and install tools) and stop
#   TASK_THREADS  comma-separated `[engine] task_threads` values (e.g. 1,2): one server per value,
#               side by side (ratios to the first), to show how a node scales with its cores
#   PROFILES    comma-separated cargo profiles to build and run side by side (default release;
#               `release,dist` compares the dist profile's thin LTO and one codegen unit); with
#               TASK_THREADS, only the first profile's binary runs
#   SETTING     name=value: a second server beside the first whose sessions SET it (for example
#               join_reordering_strategy=NONE, the query's own join order)
#   DATAFUSION  1 to run in-process DataFusion (the `datafusion` Python package) beside them too
# Extra arguments go to tpch_bench.py (e.g. --only q01,q06). Takes ~20 min the first time
# (release build); the data generation takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# SF, RUNS, DATA, BENCH_PY, SCHEMA, VENV, log, die, free_port, wait_port, write_lake_catalog, and
# PIDS killed on exit (bench_prepare, which runs this script, is not used here).
source scripts/bench-lib.sh
DUCKDB="${DUCKDB:-1}"
DATAFUSION="${DATAFUSION:-0}"
IFS=',' read -r -a PROFILE_LIST <<< "${PROFILES:-release}"
QUERIES="$ROOT/compat-tests/queries"
LOGS="$ROOT/target"

[ -f "$BENCH_PY" ] || die "bench script not found at $BENCH_PY (set BENCH_PY)"
[ -d "$QUERIES" ] || die "queries not found at $QUERIES"
command -v python3 >/dev/null 2>&1 || die "python3 not found"

# ---- tools: tpchgen-cli, psycopg, duckdb ---------------------------------------------------
if ! command -v tpchgen-cli >/dev/null 2>&1; then
  log "cargo install --locked tpchgen-cli"
  cargo install --locked tpchgen-cli
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

PY=python3
py_has() { "$PY" -c "import $1" >/dev/null 2>&1; }
PKGS=("psycopg[binary]")
[ "$DUCKDB" = "1" ] && PKGS+=("duckdb")
[ "$DATAFUSION" = "1" ] && PKGS+=("datafusion")
if ! py_has psycopg || { [ "$DUCKDB" = "1" ] && ! py_has duckdb; } \
  || { [ "$DATAFUSION" = "1" ] && ! py_has datafusion; }; then
  # Try the current Python first; fall back to a virtualenv (Debian refuses system-wide pip).
  if ! "$PY" -m pip install --quiet "${PKGS[@]}" 2>/dev/null; then
    log "pip install ${PKGS[*]} into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "${PKGS[@]}"
    PY="$VENV/bin/python"
  fi
fi
py_has psycopg || die "python module psycopg missing (pip install 'psycopg[binary]')"

# ---- data: a lake catalog location with one schema directory, one Parquet file per table ----
TABLE_DIR="$DATA/$SCHEMA"
if [ ! -f "$TABLE_DIR/lineitem.parquet" ]; then
  log "generating TPC-H scale $SF Parquet into $TABLE_DIR"
  rm -rf "$TABLE_DIR.tmp"
  mkdir -p "$TABLE_DIR.tmp"
  # tpchgen-cli >= 4 has format subcommands (`tpchgen-cli parquet ...`); older ones use --format.
  HELP="$(tpchgen-cli --help 2>&1 || true)"
  if grep -qE '^\s+parquet\b' <<<"$HELP"; then
    tpchgen-cli parquet -s "$SF" --output-dir "$TABLE_DIR.tmp"
  else
    tpchgen-cli -s "$SF" --format parquet --output-dir "$TABLE_DIR.tmp"
  fi
  for t in nation region part supplier partsupp customer orders lineitem; do
    [ -e "$TABLE_DIR.tmp/$t.parquet" ] || die "tpchgen-cli did not write $t.parquet into $TABLE_DIR.tmp"
  done
  rm -rf "$TABLE_DIR"
  mv "$TABLE_DIR.tmp" "$TABLE_DIR"
fi

[ "${DATA_ONLY:-0}" = "1" ] && exit 0

# ---- server: release build(s), config dir with catalog `lake` on $DATA ----------------------
BINS=()
for profile in "${PROFILE_LIST[@]}"; do
  log "cargo build --profile $profile --bin tributary"
  cargo build --profile "$profile" --bin tributary
  dir="$profile"
  [ "$profile" = "dev" ] && dir=debug   # cargo's directory for the dev profile
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/tributary"
  [ -x "$BIN" ] || die "$profile binary not found at $BIN"
  BINS+=("$BIN")
done
BIN="${BINS[0]}"

# One server per `[engine] task_threads` value in $TASK_THREADS (else one per profile in
# $PROFILES, with the defaults), each with catalog `lake` on $DATA; ENGINES gets one engine per
# server.
ENGINES=()
start_server() { # NAME CONFIG_TOML [SESSION_SQL]
  local config="$ROOT/target/bench-config-$1" port
  write_lake_catalog "$config"
  printf '%s' "$2" > "$config/config.toml"
  port="${PORT:-$(free_port)}"
  PORT=""
  log "starting $BIN ($1) on 127.0.0.1:$port (log: $LOGS/bench-tributary-$1.log)"
  "$BIN" --config "$config" --listen "127.0.0.1:$port" >"$LOGS/bench-tributary-$1.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  ENGINES+=(--engine "pg:127.0.0.1:$port:lake:SET search_path TO $SCHEMA${3:+; $3}")
}
if [ -n "${TASK_THREADS:-}" ]; then
  IFS=',' read -r -a THREADS <<< "$TASK_THREADS"
  for n in "${THREADS[@]}"; do
    start_server "t$n" "[engine]
task_threads = $n
"
  done
elif [ "${#BINS[@]}" -gt 1 ]; then
  for i in "${!BINS[@]}"; do
    BIN="${BINS[$i]}"
    start_server "${PROFILE_LIST[$i]}" ""
  done
else
  start_server default ""
fi
# A second server of the same build whose sessions SET one parameter first (SETTING=name=value,
# e.g. join_reordering_strategy=NONE), beside the first.
if [ -n "${SETTING:-}" ]; then
  start_server "setting" "" "SET ${SETTING%%=*} TO '${SETTING#*=}'"
fi

# ---- run ------------------------------------------------------------------------------------
CHECK=()
if [ "$DATAFUSION" = "1" ]; then
  ENGINES+=(--engine "datafusion:$TABLE_DIR")
  CHECK=(--check)
fi
if [ "$DUCKDB" = "1" ]; then
  ENGINES+=(--engine "duckdb:$TABLE_DIR")
  CHECK=(--check)
fi
log "TPC-H scale $SF: $PY $BENCH_PY --runs $RUNS ${ENGINES[*]} ${CHECK[*]} $*"
PGUSER="${PGUSER:-bench}" "$PY" "$BENCH_PY" --queries "$QUERIES" --runs "$RUNS" "${ENGINES[@]}" "${CHECK[@]}" "$@"
