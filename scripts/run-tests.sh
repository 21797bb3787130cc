#!/usr/bin/env bash
# Runs the test suite in order: unit tests first, then multi-process tests on loopback, then the
# FUSE mount tests (tests/fsgateway) and the NBD tests (tests/nbd; the nbdfuse + loop + ext4 one needs root and is skipped without),
# then a fixed set of simulator seeds and a 30 s batch of random ones (tests/sim).
# Usage: scripts/run-tests.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
[ -d "$build" ] || { echo "run-tests: no build directory '$build' (run make build)" >&2; exit 2; }
echo "== unit tests"
ctest --test-dir "$build" -L unit --output-on-failure -j2
echo "== multi-process tests (loopback)"
ctest --test-dir "$build" -L integration --output-on-failure
echo "== mount and NBD tests"
ctest --test-dir "$build" -L fs --output-on-failure
ctest --test-dir "$build" -L nbd --output-on-failure
echo "== simulator seeds"
ctest --test-dir "$build" -L sim --output-on-failure -j2
