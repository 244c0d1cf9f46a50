#!/usr/bin/env bash
# Session 15, second call: the CUDA build, then generate.end_to_end.np2 again (run.sh's copy of
# it failed on the device: SIGUSR1 sent to mpirun did not reach the ranks there, so the test now
# signals the ranks themselves) and the generation tests beside it. Everything in $OUT/r15b.tgz.
#   bash bench/results/2026-12-07_session15/run2.sh
set -uo pipefail
source bench/device_common.sh r15b
cmake --build build -j "$(nproc)" > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
source launch/mpi_env.sh
(cd build && timeout 300 ctest -j 4 --timeout 280 --output-on-failure \
  -R "generate.end_to_end|^generation$|cli.check_generate" > $R/ctest.log 2>&1)
echo "ctest rc=$?" >> $R/times.txt; t ctest
cat $R/times.txt; grep -E "tests passed|Failed|\*\*\*" $R/ctest.log | head -20
