#!/usr/bin/env bash
# Soak (a benchmark, not a test): a release build of Tributary on its built-in catalogs under
# SESSIONS concurrent sessions for SOAK_SECONDS seconds (TPC-H tiny queries, catalog queries as psql
# and pgjdbc send them, a prepared statement), then CASES random and mutated protocol messages
# (tests/malformed.rs' generator) at the same release binary. Prints queries per second, latency
# percentiles, errors, differing answers and resident memory, then the malformed-input run's count.
#
#   scripts/soak.sh                                  # 200 sessions, 40 s, 5000 malformed cases
#   SESSIONS=20 SOAK_SECONDS=5 CASES=200 scripts/soak.sh
#
# Environment:
#   SESSIONS      concurrent sessions (default 200)
#   SOAK_SECONDS  how long they run (default 40)
#   CASES         malformed-input cases (default 5000)
#   PROFILE       cargo profile of the server binary (default release; `dev` for a quick check)
#   CARGO_TARGET_DIR  where builds go (default target/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SESSIONS="${SESSIONS:-200}"
SOAK_SECONDS="${SOAK_SECONDS:-40}"
CASES="${CASES:-5000}"
PROFILE="${PROFILE:-release}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$PROFILE" in
  release) BIN_DIR=release ;;
  dev) BIN_DIR=debug ;;
  *) printf 'scripts/soak.sh: PROFILE must be release or dev\n' >&2; exit 1 ;;
esac

printf '\n==> building the server (%s)\n' "$PROFILE" >&2
cargo build --profile "$PROFILE" -p tributary --bin tributary
export TRIBUTARY_BIN="$TARGET/$BIN_DIR/tributary"

printf '\n==> machine: %s cores, %s MiB; server: %s\n' "$(nproc)" \
  "$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)" "$TRIBUTARY_BIN" >&2
printf '\n==> %s sessions for %s s\n' "$SESSIONS" "$SOAK_SECONDS" >&2
SESSIONS="$SESSIONS" SOAK_SECONDS="$SOAK_SECONDS" cargo run -q -p compat-tests --example soak

printf '\n==> %s malformed-input cases\n' "$CASES" >&2
MALFORMED_CASES="$CASES" cargo test -q -p compat-tests --test malformed \
  random_and_mutated_messages_never_take_the_server_down -- --nocapture 2>&1 \
  | grep -E 'malformed input:|test result|panicked|FAILED'
