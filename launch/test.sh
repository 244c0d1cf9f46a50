#!/usr/bin/env bash
# Sets up and builds (launch/setup.sh), then runs every test through CTest, MPI tests included
# (mpirun -np 2 and -np 4). Exits non-zero on any failure. Extra arguments go to ctest
# (e.g. -R attention). GPU tests skip without a GPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/launch/setup.sh"
source "$ROOT/launch/mpi_env.sh"
cd "$ROOT/${LONGNET_BUILD_DIR:-build}"
ctest --output-on-failure -j "${LONGNET_TEST_JOBS:-2}" "$@"
