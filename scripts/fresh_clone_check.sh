#!/usr/bin/env bash
# Fresh-clone check: clone this repository's HEAD to a temporary directory and run
# `make test` there, as CI does on a new machine (nothing installed by hand is used:
# the clone builds its own .venv).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone -q "$src" "$tmp/bayesglmm"
cd "$tmp/bayesglmm"
make test
echo "fresh-clone check passed"
