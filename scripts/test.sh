#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds the binaries, runs every test.
#
#   scripts/test.sh                          # fmt and clippy checks, then the whole suite
#                                            # (cargo test --workspace --no-fail-fast)
#   scripts/test.sh -p compat-tests --test lake   # any other `cargo test` arguments instead of --workspace
#                                                 # (no fmt/clippy checks)
#
# Works on a fresh Debian machine as root (or as a user with sudo). Needs only the package
# registries: apt (PostgreSQL 15, Python), PyPI (moto). Exits non-zero if anything fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need to install $* but apt-get is not available"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"

# ---- PostgreSQL 15 server binaries (initdb, pg_ctl, postgres), used by compat-tests ----------
have_initdb() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
if ! have_initdb; then
  apt_install postgresql-15 postgresql-client-15 || apt_install postgresql postgresql-client
  have_initdb || die "PostgreSQL installed but initdb still not found"
fi
if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
  # The tests run PostgreSQL as this user when running as root (postgres refuses root).
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
command -v psql >/dev/null 2>&1 || apt_install postgresql-client-15 || apt_install postgresql-client

# ---- moto S3 server (moto_server), used by compat-tests/tests/lake.rs ------------------------
# Installed into a virtualenv under target/ when not already on PATH (Debian's Python refuses
# system-wide pip installs).
VENV="$ROOT/target/test-tools/venv"
# The test tools' virtualenv (Python from apt when missing), made once; every pip install goes there.
ensure_venv() {
  [ -x "$VENV/bin/python" ] && return 0
  if ! command -v python3 >/dev/null 2>&1; then apt_install python3 python3-venv python3-pip; fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv python3-pip
  fi
  log "python3 -m venv $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
}
if ! command -v moto_server >/dev/null 2>&1; then
  if [ ! -x "$VENV/bin/moto_server" ]; then
    ensure_venv
    log "pip install 'moto[server]' into $VENV"
    "$VENV/bin/python" -m pip install --quiet 'moto[server]'
  fi
  export PATH="$VENV/bin:$PATH"
  command -v moto_server >/dev/null 2>&1 || die "moto_server still not found after installing moto[server]"
fi

# ---- further services and clients: one script per component in scripts/deps/ ----------------
# Each is sourced in name order and may use apt_install, log, die, ensure_venv, $SUDO, $VENV and $ROOT; it installs
# what is missing and exports what the tests need to find it (e.g. PATH).
for dep in "$ROOT"/scripts/deps/*.sh; do
  [ -e "$dep" ] || continue
  # shellcheck source=/dev/null
  source "$dep"
done

# ---- style checks (whole-suite runs only) -----------------------------------------------------
# Both run even when the first fails, so one run reports every problem; either failing fails the
# command before any test runs.
if [ "$#" -eq 0 ]; then
  failed=()
  log "cargo fmt --all --check"
  cargo fmt --all --check || failed+=("cargo fmt --all --check (run \`cargo fmt --all\`)")
  log "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings \
    || failed+=("cargo clippy --workspace --all-targets -- -D warnings")
  if [ "${#failed[@]}" -gt 0 ]; then
    for check in "${failed[@]}"; do printf 'scripts/test.sh: failed: %s\n' "$check" >&2; done
    exit 1
  fi
fi

# ---- build and test -------------------------------------------------------------------------
log "cargo build --workspace --bins"
cargo build --workspace --bins

# `[engine]` defaults (hash partitions, in-process workers, task threads) derive from the core
# count: the tests expect a 2-core node's (CI's), whatever this machine has.
export TRIBUTARY_CORES="${TRIBUTARY_CORES:-2}"

if [ "$#" -gt 0 ]; then
  log "cargo test --no-fail-fast $*"
  cargo test --no-fail-fast "$@"
else
  log "cargo test --workspace --no-fail-fast"
  cargo test --workspace --no-fail-fast
fi
