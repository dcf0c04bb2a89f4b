#!/usr/bin/env bash
# The identity, compute and network benchmarks against two builds, one after the other in one
# session, so that their figures compare (run on an otherwise quiet machine):
#   tools/bench-compare.sh OLD_BINARY NEW_BINARY [compute servers, default 20]
# Prints each benchmark's report for both, labelled; no figure is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 N=${3:-20}
CACHE=${HANEUL_CI_CACHE:-/var/cache/haneul-ci}
export HANEUL_TEST_IMAGE=${HANEUL_TEST_IMAGE:-$(ls "$CACHE"/images/*/haneul-testimg.qcow2 | head -1)}
PY=${PYTHON:-$CACHE/venv/bin/python}
for what in identity compute network; do
  for label in old new; do
    bin=$OLD; [ "$label" = new ] && bin=$NEW
    echo "==== $what, $label ($bin)"
    case $what in
      identity) HANEUL_BIN=$bin tools/bench-identity.sh 10 ;;
      compute) HANEUL_BIN=$bin "$PY" tools/bench-compute.py "$N" ;;
      network) HANEUL_BIN=$bin HANEUL_TEST_IMAGE= "$PY" tools/bench-network.py 200 ;;
    esac
  done
done
