# Real PostgreSQL clients driven by compat-tests/tests/clients_*.rs. Sourced by scripts/test.sh.
#
# - pgjdbc: Debian `libpostgresql-jdbc-java` (JDK 17 is expected; installs default-jdk-headless when javac
#   is missing); exports PGJDBC_JAR.
# - Python: psycopg[binary] (psycopg 3), psycopg2-binary, asyncpg, SQLAlchemy into $VENV; exports
#   CLIENTS_PYTHON (the venv's python) and puts $VENV/bin on PATH.
# - Node: npm `pg` into target/test-tools/node; exports CLIENTS_NODE_PATH (its node_modules).
# Tests fail (never skip) when one of these is missing, so this script is what makes them pass.

clients_python_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import psycopg, psycopg2, asyncpg, sqlalchemy' >/dev/null 2>&1
}

# ---- pgjdbc ----------------------------------------------------------------------------------
if ! command -v javac >/dev/null 2>&1; then
  apt_install default-jdk-headless
fi
PGJDBC_JAR="${PGJDBC_JAR:-/usr/share/java/postgresql.jar}"
if [ ! -f "$PGJDBC_JAR" ]; then
  apt_install libpostgresql-jdbc-java
  [ -f "$PGJDBC_JAR" ] || PGJDBC_JAR="$(compgen -G '/usr/share/java/postgresql*.jar' | head -n 1 || true)"
  [ -f "$PGJDBC_JAR" ] || die "libpostgresql-jdbc-java installed but no /usr/share/java/postgresql*.jar"
fi
export PGJDBC_JAR

# ---- Python drivers --------------------------------------------------------------------------
if ! clients_python_ok; then
  ensure_venv
  log "pip install psycopg[binary] psycopg2-binary asyncpg SQLAlchemy into $VENV"
  "$VENV/bin/python" -m pip install --quiet 'psycopg[binary]' psycopg2-binary asyncpg SQLAlchemy
  clients_python_ok || die "Python client drivers installed but not importable from $VENV/bin/python"
fi
export CLIENTS_PYTHON="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"

# ---- node-postgres ---------------------------------------------------------------------------
CLIENTS_NODE_DIR="$ROOT/target/test-tools/node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
if [ ! -f "$CLIENTS_NODE_DIR/node_modules/pg/package.json" ]; then
  log "npm install pg into $CLIENTS_NODE_DIR"
  mkdir -p "$CLIENTS_NODE_DIR"
  (cd "$CLIENTS_NODE_DIR" && npm install --silent --no-audit --no-fund --prefix "$CLIENTS_NODE_DIR" pg >/dev/null)
  [ -f "$CLIENTS_NODE_DIR/node_modules/pg/package.json" ] || die "npm install pg did not produce node_modules/pg"
fi
export CLIENTS_NODE_PATH="$CLIENTS_NODE_DIR/node_modules"
