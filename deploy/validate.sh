#!/usr/bin/env bash
# Checks everything in deploy/ that can be checked without AWS or a cluster:
#   - cfn-lint on every CloudFormation template (deploy/aws, deploy/ecs);
#   - renders every Kustomize overlay (deploy/k8s/overlays/*) with deploy/k8s/render.py and,
#     when kubectl is installed, checks that `kubectl kustomize` renders the same resources;
#   - kubernetes-validate --strict on the rendered manifests, KEDA's kinds against KEDA's CRD
#     schema, and the cross-references (deploy/k8s/check.py).
# Installs the validators (scripts/requirements-deploy.txt, pinned) into ./.venv first.
# Idempotent; exits non-zero on any error. Needs python3 (with venv) and PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
k8s_version=${FACEGATE_K8S_VERSION:-1.32.0}

log() { printf '[deploy] %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements-deploy.sha256"
want=$(sha256sum "$root/scripts/requirements-deploy.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing the deploy validators (scripts/requirements-deploy.txt)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/scripts/requirements-deploy.txt"
  echo "$want" > "$stamp"
fi
py="$venv/bin/python"

status=0
templates=("$root"/deploy/aws/*.yaml "$root"/deploy/ecs/*.yaml)
log "cfn-lint ${templates[*]#"$root/"}"
if "$venv/bin/cfn-lint" -- "${templates[@]}"; then
  log "cfn-lint: ${#templates[@]} templates, no errors"
else
  log "cfn-lint: FAILED"; status=1
fi

out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
rendered=()
for overlay in "$root"/deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  if ! "$py" "$root/deploy/k8s/render.py" "$overlay" > "$out/$name.yaml"; then
    log "render $name: FAILED"; status=1; continue
  fi
  rendered+=("$out/$name.yaml")
  if command -v kubectl >/dev/null 2>&1; then
    if kubectl kustomize "$overlay" > "$out/$name.kubectl.yaml" 2>"$out/$name.kubectl.err"; then
      if "$py" - "$out/$name.yaml" "$out/$name.kubectl.yaml" <<'PY'
import sys, yaml
def load(p):
    return {(d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
            for d in yaml.safe_load_all(open(p)) if d}
ours, theirs = load(sys.argv[1]), load(sys.argv[2])
bad = sorted(str(k) for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
for k in bad:
    print(f"render.py and kubectl kustomize differ on {k}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
      then log "render $name: same resources as kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -i kustomize || echo kustomize))"
      else log "render $name: differs from kubectl kustomize: FAILED"; status=1
      fi
    else
      log "render $name: kubectl kustomize failed: $(cat "$out/$name.kubectl.err")"; status=1
    fi
  else
    log "render $name: rendered by deploy/k8s/render.py (kubectl not installed: no cross-check)"
  fi
done

if [ ${#rendered[@]} -gt 0 ]; then
  if ! "$py" "$root/deploy/k8s/check.py" "$k8s_version" "${rendered[@]}"; then
    status=1
  fi
fi

if [ $status = 0 ]; then log "deploy/ is valid"; else log "deploy/ has errors"; fi
exit $status
