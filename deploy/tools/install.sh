#!/usr/bin/env bash
# Installs the tools that validate deploy/ offline, into deploy/tools/bin (git-ignored):
#   kustomize     v5.8.0, `go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.0` (Go module proxy)
#   composecheck  `go build` of deploy/tools/composecheck: compose-go v2.16.2, pinned by its go.sum
#   actionlint    v1.7.12, `go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12` (the
#                 GitHub Actions workflows' checker, .github/workflows)
# kubernetes-validate (the Kubernetes schemas) comes with the workspace's dev dependencies (uv sync).
# Needs Go >= 1.24 on PATH and the Go module proxy; no Docker daemon, no other download.
# Idempotent: a tool already at its pinned version is kept. Run from anywhere:
#   bash deploy/tools/install.sh
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.0
ACTIONLINT_VERSION=v1.7.12
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN_DIR="$TOOLS_DIR/bin"
mkdir -p "$BIN_DIR"

if ! command -v go > /dev/null 2>&1; then
    echo "install.sh: go is not on PATH; install Go >= 1.24 first" >&2
    exit 1
fi
# The machine's own Go, never a downloaded toolchain; no VCS stamping (a fresh clone may be owned
# by another user, which makes git refuse to answer).
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

if [[ "$("$BIN_DIR/kustomize" version 2> /dev/null || true)" != "$KUSTOMIZE_VERSION" ]]; then
    echo "install.sh: installing kustomize $KUSTOMIZE_VERSION into $BIN_DIR"
    GOBIN="$BIN_DIR" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

if [[ "$("$BIN_DIR/actionlint" -version 2> /dev/null | head -n 1 || true)" != "$ACTIONLINT_VERSION" ]]; then
    echo "install.sh: installing actionlint $ACTIONLINT_VERSION into $BIN_DIR"
    GOBIN="$BIN_DIR" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

echo "install.sh: building composecheck into $BIN_DIR"
(cd "$TOOLS_DIR/composecheck" && go build -trimpath -o "$BIN_DIR/composecheck" .)

echo "install.sh: kustomize $("$BIN_DIR/kustomize" version), actionlint $ACTIONLINT_VERSION, composecheck ready in $BIN_DIR"
