#!/usr/bin/env bash
# Refresh the front-end libraries the web UI ships, from the npm registry.
# The exact files are committed under src/koban/ui/static/vendor/<name>-<version>/
# with their licence, so `pip install koban` never needs Node. Run this (it needs npm)
# after changing a version below, then update
# UPLOT in src/koban/ui/pages.py (it names the versioned directory).
set -euo pipefail
cd "$(dirname "$0")/.."

UPLOT_VERSION="${UPLOT_VERSION:-1.6.32}"

vendor_dir=src/koban/ui/static/vendor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch NAME VERSION FILE... : unpack NAME@VERSION and copy FILEs (paths in the package)
    local name="$1" version="$2"; shift 2
    (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
    mkdir -p "$work/$name" && tar -xzf "$work/$name-$version.tgz" -C "$work/$name"
    local dest="$vendor_dir/$name-$version"
    rm -rf "$vendor_dir/$name"-*
    mkdir -p "$dest"
    for f in "$@"; do cp "$work/$name/package/$f" "$dest/"; done
    echo "vendored $name $version -> $dest"
}

fetch uplot "$UPLOT_VERSION" dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE
