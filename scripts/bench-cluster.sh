#!/usr/bin/env bash
# Distributed-execution benchmark: the 22 TPC-H queries at scale $SF over a lake catalog of Parquet
# files, on a single-mode server (the baseline) and on a coordinator with two worker processes, all
# on this machine, with the bench kit's tpch_bench.py (per-query medians, ratios, --check).
#
#   scripts/bench-cluster.sh                  # scale 1, 3 runs
#   SF=1 RUNS=1 scripts/bench-cluster.sh --only q01,q06
#   ANALYZE=q09,q18 scripts/bench-cluster.sh  # then EXPLAIN ANALYZE those on the coordinator
#
# ANALYZE (comma-separated query names) prints, after the timings, where each of those queries spends
# its time on the cluster: per stage, tasks, rows and bytes exchanged, and the slowest task (from the
# "Tasks:" section of EXPLAIN ANALYZE).
# Environment: SF, RUNS, ANALYZE, BENCH_DATA, BENCH_PY as for scripts/bench.sh (which generates the data).
# Uses $CARGO_TARGET_DIR/release/tributary (built here if missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SF="${SF:-1}"
RUNS="${RUNS:-3}"
DATA="${BENCH_DATA:-$ROOT/target/bench-data}"
BENCH_PY="${BENCH_PY:-$ROOT/../shared/bench/tpch_bench.py}"
SCHEMA="sf${SF//./_}"
VENV="$ROOT/target/test-tools/bench-venv"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench-cluster.sh: %s\n' "$*" >&2; exit 1; }

log "data and tools (scripts/bench.sh DATA_ONLY=1)"
DATA_ONLY=1 DUCKDB=0 SF="$SF" BENCH_DATA="$DATA" scripts/bench.sh
PY=python3
"$PY" -c "import psycopg" 2>/dev/null || PY="$VENV/bin/python"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tributary"
if [ ! -x "$BIN" ]; then
  log "cargo build --release --bin tributary"
  cargo build --release --bin tributary
fi

CONFIG="$ROOT/target/bench-cluster-config"
rm -rf "$CONFIG"
mkdir -p "$CONFIG/catalog"
cat > "$CONFIG/catalog/lake.toml" <<TOML
connector = "lake"
location = "file://$DATA"
TOML

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SINGLE_PORT="$(free_port)"
COORD_PORT="$(free_port)"
RPC_PORT="$(free_port)"
LOGS="$ROOT/target/bench-cluster-logs"
mkdir -p "$LOGS"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN" --config "$CONFIG" --listen "127.0.0.1:$SINGLE_PORT" >"$LOGS/single.log" 2>&1 &
PIDS+=($!)
"$BIN" --config "$CONFIG" --role coordinator --listen "127.0.0.1:$COORD_PORT" \
  --rpc-listen "127.0.0.1:$RPC_PORT" >"$LOGS/coordinator.log" 2>&1 &
PIDS+=($!)
for w in 1 2; do
  "$BIN" --config "$CONFIG" --role worker --rpc-listen "127.0.0.1:$(free_port)" \
    --coordinator "127.0.0.1:$RPC_PORT" --node-id "worker-$w" >"$LOGS/worker-$w.log" 2>&1 &
  PIDS+=($!)
done

wait_port() {
  for _ in $(seq 1 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.5)" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on port $1 (logs in $LOGS)"
}
wait_port "$SINGLE_PORT"
wait_port "$COORD_PORT"
log "waiting for both workers to join"
for _ in $(seq 1 100); do
  n="$("$PY" - "$COORD_PORT" <<'PYEOF'
import sys, psycopg
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="lake", user="bench") as c:
    print(c.execute("SELECT count(*) FROM system.runtime.nodes WHERE role = 'worker' AND state = 'active'").fetchone()[0])
PYEOF
)"
  [ "$n" = "2" ] && break
  sleep 0.2
done
[ "$n" = "2" ] || die "workers did not join (logs in $LOGS)"

log "TPC-H scale $SF: single mode (baseline) vs coordinator + 2 workers"
PGUSER="${PGUSER:-bench}" "$PY" "$BENCH_PY" --queries "$ROOT/compat-tests/queries" --runs "$RUNS" \
  --engine "pg:127.0.0.1:$SINGLE_PORT:lake:SET search_path TO $SCHEMA" \
  --engine "pg:127.0.0.1:$COORD_PORT:lake:SET search_path TO $SCHEMA" \
  --check "$@"

[ -n "${ANALYZE:-}" ] || exit 0
log "EXPLAIN ANALYZE on the coordinator: ${ANALYZE}"
"$PY" - "$COORD_PORT" "$SCHEMA" "$ROOT/compat-tests/queries" "$ANALYZE" <<'PYEOF'
import re, sys, time, psycopg
port, schema, qdir, names = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split(",")
task = re.compile(r"task (\d+) attempt \d+ on (\S+): (\d+) rows, (\d+) bytes, (\d+) ms")
with psycopg.connect(host="127.0.0.1", port=port, dbname="lake", user="bench", autocommit=True) as c:
    c.execute(f"SET search_path TO {schema}")
    for name in names:
        sql = open(f"{qdir}/{name.strip()}.sql").read().strip().rstrip(";")
        t0 = time.monotonic()
        lines = [r[-1] for r in c.execute("EXPLAIN ANALYZE " + sql).fetchall()]
        text = "\n".join(lines)
        print(f"\n{name}: {time.monotonic() - t0:.2f} s under EXPLAIN ANALYZE")
        print(f"  {'stage':>5} {'tasks':>5} {'rows':>12} {'MB out':>9} {'slowest ms':>10} {'sum ms':>8}  workers")
        stage = None
        per = {}
        for line in text.splitlines():
            m = re.match(r"\s*Stage (\d+):", line)
            if m:
                stage = int(m.group(1)); per[stage] = []
                continue
            m = task.search(line)
            if m and stage is not None:
                per[stage].append((m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))))
        for st, ts in sorted(per.items()):
            workers = sorted({w for w, *_ in ts})
            print(f"  {st:>5} {len(ts):>5} {sum(t[1] for t in ts):>12} {sum(t[2] for t in ts) / 1e6:>9.1f}"
                  f" {max(t[3] for t in ts):>10} {sum(t[3] for t in ts):>8}  {','.join(workers)}")
PYEOF
