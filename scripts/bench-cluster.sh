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
source scripts/bench-lib.sh
bench_prepare

CONFIG="$ROOT/target/bench-cluster-config"
LOGS="$ROOT/target/bench-cluster-logs"
mkdir -p "$LOGS"
write_lake_catalog "$CONFIG"
SINGLE_PORT="$(free_port)"
"$BIN" --config "$CONFIG" --listen "127.0.0.1:$SINGLE_PORT" >"$LOGS/single.log" 2>&1 &
PIDS+=($!)
wait_port "$SINGLE_PORT"
log "coordinator + 2 workers"
start_cluster cluster

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
