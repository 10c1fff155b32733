# Shared by the benchmarks (scripts/bench.sh, bench-cluster.sh, bench-fte.sh): sourced, not
# run. Expects ROOT (the repository) and the caller's cwd there; reads SF, BENCH_DATA, BENCH_PY.
# Sets SF, RUNS, DATA, BENCH_PY, SCHEMA, PY (a python with psycopg), BIN (the release binary) once
# bench_prepare ran, and PIDS (processes killed on exit).

SF="${SF:-1}"
RUNS="${RUNS:-3}"
DATA="${BENCH_DATA:-$ROOT/target/bench-data}"
BENCH_PY="${BENCH_PY:-$ROOT/../shared/bench/tpch_bench.py}"
SCHEMA="sf${SF//./_}"
VENV="$ROOT/target/test-tools/bench-venv"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The TPC-H data (scripts/bench.sh DATA_ONLY=1), a python with psycopg, the release binary.
bench_prepare() {
  log "data and tools (scripts/bench.sh DATA_ONLY=1)"
  DATA_ONLY=1 DUCKDB=0 SF="$SF" BENCH_DATA="$DATA" scripts/bench.sh
  PY=python3
  "$PY" -c "import psycopg" 2>/dev/null || PY="$VENV/bin/python"
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tributary"
  if [ ! -x "$BIN" ]; then
    log "cargo build --release --bin tributary"
    cargo build --release --bin tributary
  fi
}

# A config directory CONFIG with catalog `lake` over the bench data (any other file is the caller's).
write_lake_catalog() {
  rm -rf "$1"
  mkdir -p "$1/catalog"
  cat > "$1/catalog/lake.toml" <<TOML
connector = "lake"
location = "file://$DATA"
TOML
}

# wait_port PORT: until something listens there (30 s), else die naming the logs in $LOGS.
wait_port() {
  for _ in $(seq 1 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.5)" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on port $1 (logs in $LOGS)"
}

# sql PORT SQL: prints the first column of the first row (database lake, user bench).
sql() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, psycopg
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="lake", user="bench") as c:
    print(c.execute(sys.argv[2]).fetchone()[0])
PYEOF
}

# start_cluster NAME: a coordinator and workers worker-1, worker-2 on $CONFIG, logs
# $LOGS/NAME-*.log; sets COORD_PORT and WORKER_PIDS, returns once both workers are active.
start_cluster() {
  COORD_PORT="$(free_port)"
  local rpc
  rpc="$(free_port)"
  "$BIN" --config "$CONFIG" --role coordinator --listen "127.0.0.1:$COORD_PORT" \
    --rpc-listen "127.0.0.1:$rpc" >"$LOGS/$1-coordinator.log" 2>&1 &
  PIDS+=($!)
  WORKER_PIDS=()
  for w in 1 2; do
    "$BIN" --config "$CONFIG" --role worker --rpc-listen "127.0.0.1:$(free_port)" \
      --coordinator "127.0.0.1:$rpc" --node-id "worker-$w" >"$LOGS/$1-worker-$w.log" 2>&1 &
    PIDS+=($!)
    WORKER_PIDS+=($!)
  done
  wait_port "$COORD_PORT"
  for _ in $(seq 1 100); do
    [ "$(sql "$COORD_PORT" "SELECT count(*) FROM system.runtime.nodes WHERE role = 'worker' AND state = 'active'")" = "2" ] && return 0
    sleep 0.2
  done
  die "workers did not join (logs in $LOGS)"
}
