#!/usr/bin/env bash
# Validates steno's Kubernetes manifests against the Kubernetes API schemas,
# offline and without kubectl or a cluster.
#
# Usage: scripts/validate-k8s.sh [DIR]     (DIR default deploy/k8s)
#
# - Installs kubernetes-validate, pinned, into target/k8s-venv, once (it
#   bundles the API schemas of each Kubernetes release).
# - Validates every file kustomization.yaml lists under `resources:`, plus
#   the files that are kept out of it on purpose (STANDALONE below), in
#   strict mode (an unknown field is an error) against each version in
#   KUBERNETES_VERSIONS: the oldest release we support and the newest the
#   tool knows.
# - Fails when a *.yaml in DIR is neither listed nor STANDALONE, so no
#   manifest goes unvalidated or is silently left out of `kubectl apply -k`.
# Exits non-zero with a message naming the file on any error.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
# Manifests in DIR that are validated but not applied with the kustomization.
STANDALONE=(prometheus-adapter-rules.yaml)

dir="${1:-deploy/k8s}"
venv=target/k8s-venv

fail() {
    echo "validate-k8s: $*" >&2
    exit 1
}

[ -f "$dir/kustomization.yaml" ] || fail "$dir/kustomization.yaml not found"

if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('kubernetes-validate') == '$KUBERNETES_VALIDATE_VERSION'" 2>/dev/null; then
    echo "validate-k8s: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 ||
        fail "could not install kubernetes-validate $KUBERNETES_VALIDATE_VERSION (is PyPI reachable?)"
fi

# kustomization.yaml's resources, one a line (PyYAML comes with the tool).
# Only plain files in DIR: a directory, a URL or a missing file is an error.
resources="$("$venv/bin/python" - "$dir/kustomization.yaml" <<'EOF'
import os, sys, yaml
path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f) or {}
resources = doc.get("resources") or []
if not resources:
    sys.exit(f"{path} lists no resources")
base = os.path.dirname(path)
for r in resources:
    if not isinstance(r, str) or not os.path.isfile(os.path.join(base, r)):
        sys.exit(f"{path}: resource {r!r} is not a file in {base or '.'}")
    print(r)
EOF
)" || fail "could not read the resources of $dir/kustomization.yaml (see above)"

mapfile -t listed <<<"$resources"
files=("${listed[@]}")
for extra in "${STANDALONE[@]}"; do
    [ -f "$dir/$extra" ] && files+=("$extra")
done

# Every manifest must be validated: listed, or STANDALONE on purpose.
shopt -s nullglob
for path in "$dir"/*.yaml "$dir"/*.yml; do
    name="$(basename "$path")"
    [ "$name" = kustomization.yaml ] && continue
    found=0
    for f in "${files[@]}"; do [ "$f" = "$name" ] && found=1; done
    [ "$found" = 1 ] ||
        fail "$dir/$name is not in $dir/kustomization.yaml's resources: list it there (or in STANDALONE in $0)"
done

paths=()
for f in "${files[@]}"; do paths+=("$dir/$f"); done
for version in "${KUBERNETES_VERSIONS[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${paths[@]}" ||
        fail "${#paths[@]} manifests in $dir: invalid against Kubernetes $version (see above)"
done
echo "validate-k8s: ${#paths[@]} manifests in $dir valid against Kubernetes ${KUBERNETES_VERSIONS[*]} (strict, kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
