#!/usr/bin/env bash
# deploy/kubernetes.yaml against the Kubernetes API schemas bundled in `kubernetes-validate`
# (PyPI; --strict also rejects unknown fields), and a copy with a wrong type and an unknown
# field must be rejected, so the check cannot pass by validating nothing. deploy/nginx.conf is
# checked by scripts/proxy_test.py (nginx -t, then the whole scale-out test).
# usage: deploy_check.sh [python-with-kubernetes-validate]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
validate() { "$py" -m kubernetes_validate --strict "$@"; }
validate deploy/kubernetes.yaml
bad=$(mktemp --suffix=.yaml)
trap 'rm -f "$bad"' EXIT
sed 's/containerPort: 8080/containerPort: "8080"/; s/runAsNonRoot: true/runAsNonRoot: true\n        runAsNobody: true/' \
  deploy/kubernetes.yaml > "$bad"
if validate --quiet "$bad"; then
  echo "FAIL: a broken copy of deploy/kubernetes.yaml validated"
  exit 1
fi
echo "deploy: kubernetes.yaml valid (Kubernetes $("$py" -c 'import kubernetes_validate.version as v; print(v.__version__)' 2>/dev/null || echo '?') schemas); broken copy rejected"
