#!/usr/bin/env bash
# Renders deploy/install.yaml from deploy/default with `kubectl kustomize` (kustomize v5 or later), formatted by
# `deno fmt` so that `deno fmt --check` accepts it; with --check it renders into a temporary file instead and fails
# when deploy/install.yaml differs (CI). Run as `deno task deploy:render`.
set -euo pipefail
cd "$(dirname "$0")/.."

out=deploy/install.yaml
mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v deno >/dev/null 2>&1; then
  echo "render-install: deno not found; it formats $out" >&2
  exit 3
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "render-install: kubectl not found; it is needed to render $out (kubectl kustomize)" >&2
  exit 3
fi
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}//p')
case "$kustomize_version" in
  [5-9].* | [1-9][0-9].*) ;;
  *)
    echo "render-install: kubectl's kustomize is ${kustomize_version:-unknown}; v5 or later is needed" >&2
    exit 3
    ;;
esac

render() {
  cat <<'HEADER'
# mirrorhook: everything in one file (CRDs, RBAC, namespace mirrorhook-system, Deployment, Service, cert-manager
# Issuers and Certificates, webhook configurations). Needs cert-manager. Install or upgrade:
#   kubectl apply --server-side -f install.yaml
# GENERATED from deploy/default by `deno task deploy:render` (kubectl kustomize deploy/default | deno fmt): do not
# edit; change the sources under deploy/ and render again.
HEADER
  kubectl kustomize deploy/default
}

# kubectl kustomize, then deno fmt (the project's YAML style); fails if either fails.
render_formatted() {
  local raw
  raw=$(mktemp)
  render >"$raw"
  deno fmt --quiet --ext=yaml - <"$raw"
  rm -f "$raw"
}

if [ "$mode" = write ]; then
  tmp=$(mktemp "$out.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  render_formatted >"$tmp"
  mv "$tmp" "$out"
  trap - EXIT
  echo "render-install: wrote $out (kustomize v$kustomize_version)"
else
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  render_formatted >"$tmp"
  if ! diff -u "$out" "$tmp"; then
    echo "render-install: $out is out of date with deploy/ (kustomize v$kustomize_version); run: deno task deploy:render" >&2
    exit 1
  fi
  echo "render-install: $out matches deploy/ (kustomize v$kustomize_version)"
fi
