#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from the Go module proxy (no binary downloads),
# for the aws/gcp deployer tests. Cached: does nothing when the pinned versions exist.
#   services/deployer/scripts/build-kube-apiserver.sh   -> $PAVED_RUN_DIR/k8s/bin/{kube-apiserver,etcd}
# First build: ~8 min on 2 cores (Go's build cache makes later ones fast).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${PAVED_KUBE_BIN:-${PAVED_RUN_DIR:-$ROOT/.run}/k8s/bin}
K8S=v1.32.3        # k8s.io/kubernetes; its staging modules are published as v0.32.3
STAGING=v0.32.3
ETCD=v3.5.17       # go.etcd.io/etcd/server/v3
WANT="kube-apiserver $K8S etcd $ETCD"

built() { [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/etcd" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$WANT" ]; }
built && exit 0
command -v go >/dev/null || { echo "go is not installed; it is needed to build kube-apiserver" >&2; exit 1; }
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
built && exit 0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

echo "building kube-apiserver $K8S (first time only, several minutes)" >&2
mkdir -p "$WORK/kas" && cd "$WORK/kas"
printf 'module paved.dev/kas\n\ngo 1.23\n\nrequire k8s.io/kubernetes %s\n' "$K8S" > go.mod
MOD=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
# The kubernetes module points its staging modules at ./staging; use the published ones.
grep -E '^\s+k8s.io/[a-z0-9-]+ => ./staging' "$MOD" \
  | awk -v v="$STAGING" '{print "replace " $1 " => " $1 " " v}' >> go.mod
printf '//go:build tools\npackage kas\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
go mod tidy >/dev/null 2>&1
go build -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver

echo "building etcd $ETCD" >&2
mkdir -p "$WORK/etcd" && cd "$WORK/etcd"
printf 'module paved.dev/etcd\n\ngo 1.23\n' > go.mod
printf '//go:build tools\npackage etcd\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
go get "go.etcd.io/etcd/server/v3@$ETCD" >/dev/null 2>&1
go mod tidy >/dev/null 2>&1
go build -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3

mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
mv "$OUT/etcd.tmp" "$OUT/etcd"
echo "$WANT" > "$OUT/VERSION"
echo "kube-apiserver and etcd in $OUT" >&2
