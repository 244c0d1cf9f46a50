#!/usr/bin/env bash
# Session 13 on one GPU: the whole CUDA build and every test but the four longest CPU-only ones
# (pip_install, flag_edges, bad_inputs, checkpoint_guard: the CPU machine runs them), 12 at a
# time, within BUDGET seconds. Everything in $OUT/r13.tgz after each stage.
#   bash bench/results/2026-12-07_session13/run.sh
set -uo pipefail
BUDGET=${BUDGET:-540}
source bench/device_common.sh r13
cmake --build build -j "$(nproc)" > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
source launch/mpi_env.sh
(cd build && timeout $((BUDGET - (SECONDS - T0))) ctest -j 12 --timeout 400 --output-on-failure \
  -E "pip_install|flag_edges|bad_inputs|checkpoint_guard" > $R/ctest.log 2>&1)
echo "ctest rc=$?" >> $R/times.txt; t ctest
cat $R/times.txt; grep -E "tests passed|Failed|\*\*\*" $R/ctest.log | head -20
