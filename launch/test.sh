#!/usr/bin/env bash
# Sets up and builds (launch/setup.sh), then runs every test through CTest, MPI tests included
# (mpirun -np 2 and -np 4). Exits non-zero on any failure. Extra arguments go to ctest
# (e.g. -R attention). GPU tests skip without a GPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" == --help || "${1:-}" == -h ]]; then
  sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# //'
  echo "usage: launch/test.sh [ctest arguments, e.g. -R attention]"
  exit 0
fi
"$ROOT/launch/setup.sh"
source "$ROOT/launch/mpi_env.sh"
cd "$ROOT/${LONGNET_BUILD_DIR:-build}"
# --no-tests=error: a -R that matches nothing (a typo) fails instead of passing with no tests.
ctest --output-on-failure --no-tests=error -j "${LONGNET_TEST_JOBS:-2}" "$@"
