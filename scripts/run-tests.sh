#!/usr/bin/env bash
# Runs the test suite in order: unit tests first, then multi-process tests on loopback.
# Usage: scripts/run-tests.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
[ -d "$build" ] || { echo "run-tests: no build directory '$build' (run make build)" >&2; exit 2; }
echo "== unit tests"
ctest --test-dir "$build" -L unit --output-on-failure -j2
echo "== multi-process tests (loopback)"
ctest --test-dir "$build" -L integration --output-on-failure
