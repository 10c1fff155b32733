# Helm and the Kubernetes API schemas, for compat-tests/tests/deploy.rs (the chart in deploy/helm).
# Sourced by scripts/test.sh.
#
# There is no helm Debian package, so Helm comes as its Go library inside a PyPI wheel:
# `helm-python-sdk` (import name helm_python; Helm v4's lint and template, no helm binary, needs
# Python >= 3.10). `kubernetes-validate` ships the API schemas of each Kubernetes version. Both go
# into $VENV with pip when missing; exports HELM_PYTHON (the venv's python). The tests fail (never
# skip) when they are missing, so this script is what makes them pass.

HELM_PYTHON_SDK_VERSION="0.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"

helm_tools_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1
}

if ! helm_tools_ok; then
  ensure_venv
  "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "helm-python-sdk needs Python >= 3.10; $VENV/bin/python is $("$VENV/bin/python" --version 2>&1)"
  log "pip install helm-python-sdk kubernetes-validate into $VENV"
  "$VENV/bin/python" -m pip install --quiet \
    "helm-python-sdk==$HELM_PYTHON_SDK_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  helm_tools_ok || die "helm-python-sdk and kubernetes-validate installed but not importable from $VENV/bin/python"
fi
export HELM_PYTHON="$VENV/bin/python"
unset -f helm_tools_ok
