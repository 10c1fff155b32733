#!/usr/bin/env bash
# Fault-tolerant execution benchmark: the 22 TPC-H queries at scale $SF over a lake catalog of
# Parquet files on a coordinator with two worker processes (all on this machine), under
# retry_policy NONE, QUERY and TASK (spool on local disk) side by side, with the bench kit's
# tpch_bench.py (per-query medians, ratios to NONE, --check: answers equal); then bytes spooled per
# policy; then TASK on a fresh cluster with one worker killed (kill -9) $KILL_AFTER seconds into the
# run, against a single-mode server as the reference answer.
#
#   scripts/bench-fte.sh                      # scale 1, 3 runs
#   SF=1 RUNS=1 scripts/bench-fte.sh --only q01,q06
#
# Environment: SF, RUNS, BENCH_DATA, BENCH_PY as for scripts/bench.sh (which generates the data);
# KILL_AFTER (seconds, default 5). Retries wait 1 s at first ([query] retry_initial_delay_ms = 1000;
# Trino's default is 10 s) and a silent worker is declared dead after 3 s. Uses
# $CARGO_TARGET_DIR/release/tributary (built here if missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KILL_AFTER="${KILL_AFTER:-5}"
source scripts/bench-lib.sh
bench_prepare

CONFIG="$ROOT/target/bench-fte-config"
SPOOL="$ROOT/target/bench-fte-spool"
LOGS="$ROOT/target/bench-fte-logs"
rm -rf "$SPOOL"
mkdir -p "$SPOOL" "$LOGS"
write_lake_catalog "$CONFIG"
cat > "$CONFIG/config.toml" <<TOML
[node]
heartbeat_interval_ms = 500
heartbeat_timeout_ms = 3000
[query]
retry_initial_delay_ms = 1000
[exchange]
base_directories = ["file://$SPOOL"]
TOML

engine() { # PORT POLICY
  echo "pg:127.0.0.1:$1:lake:SET search_path TO $SCHEMA; SET retry_policy = '$2'"
}

log "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB; TPC-H scale $SF, $RUNS runs"
start_cluster bench
log "coordinator + 2 workers: NONE (baseline), QUERY, TASK (columns in that order)"
PGUSER="${PGUSER:-bench}" "$PY" "$BENCH_PY" --queries "$ROOT/compat-tests/queries" --runs "$RUNS" \
  --engine "$(engine "$COORD_PORT" NONE)" --engine "$(engine "$COORD_PORT" QUERY)" \
  --engine "$(engine "$COORD_PORT" TASK)" --check "$@" | tee "$LOGS/policies.tsv"

log "bytes spooled per policy (all runs above)"
"$PY" - "$COORD_PORT" <<'PYEOF'
import sys, psycopg
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="lake", user="bench") as c:
    rows = c.execute(
        "SELECT q.retry_policy, count(DISTINCT q.query_id), sum(t.spooled_bytes), count(*) "
        "FROM system.runtime.tasks t JOIN system.runtime.queries q ON t.query_id = q.query_id "
        "GROUP BY 1 ORDER BY 1").fetchall()
    print(f"{'policy':<8} {'queries':>8} {'MB spooled':>12} {'task attempts':>14}")
    for policy, queries, spooled, attempts in rows:
        print(f"{policy:<8} {queries:>8} {spooled / 1e6:>12.1f} {attempts:>14}")
PYEOF
cleanup
PIDS=()
rm -rf "$SPOOL"/*

log "TASK with worker-2 killed ${KILL_AFTER}s into the run (fresh cluster), beside a single-mode server"
SINGLE_PORT="$(free_port)"
"$BIN" --config "$CONFIG" --listen "127.0.0.1:$SINGLE_PORT" >"$LOGS/single.log" 2>&1 &
PIDS+=($!)
wait_port "$SINGLE_PORT"
start_cluster killed
( sleep "$KILL_AFTER"; kill -9 "${WORKER_PIDS[1]}"; echo "killed worker-2 after ${KILL_AFTER}s" >&2 ) &
KILLER=$!
killed_status=0
PGUSER="${PGUSER:-bench}" "$PY" "$BENCH_PY" --queries "$ROOT/compat-tests/queries" --runs 1 \
  --engine "$(engine "$COORD_PORT" TASK)" \
  --engine "pg:127.0.0.1:$SINGLE_PORT:lake:SET search_path TO $SCHEMA" --check "$@" \
  | tee "$LOGS/killed.tsv" || killed_status=$?
wait "$KILLER" 2>/dev/null || true
retried="$(sql "$COORD_PORT" "SELECT count(*) FROM system.runtime.tasks WHERE attempt > 0")"
echo "task attempts retried after the kill: $retried"
none_total="$(awk '$1 == "total" {print $2}' "$LOGS/policies.tsv")"
killed_total="$(awk '$1 == "total" {print $2}' "$LOGS/killed.tsv")"
if [ -n "$killed_total" ] && [ -n "$none_total" ]; then
  "$PY" -c "print(f'TASK with a worker killed: {float(\"$killed_total\"):.3f} s total = {float(\"$killed_total\") / float(\"$none_total\"):.2f}x NONE without failures ({float(\"$none_total\"):.3f} s)')"
fi
if [ "$killed_status" -ne 0 ]; then
  echo "scripts/bench-fte.sh: the run with a worker killed failed or its answers differ (exit $killed_status)" >&2
  exit 1
fi
