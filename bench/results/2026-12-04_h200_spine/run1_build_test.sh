#!/usr/bin/env bash
# Run 1 of the options-spine check (issue 17) on one H200: builds the tree under test and the
# commit before the spine (dbd2f5e, carried as .gpu_base/) side by side, then runs the GPU CTest
# on the tree under test. Logs under $OUT/r1.
#   LONGNET_COMMIT=<commit> bash bench/results/2026-12-04_h200_spine/run1_build_test.sh
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=$OUT/r1; mkdir -p $R
T0=$SECONDS
NEW=$PWD
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv > $R/gpu.txt
rm -rf /tmp/base && cp -r .gpu_base /tmp/base
(cd /tmp/base && LONGNET_COMMIT=dbd2f5e OUT=/tmp/out_base LONGNET_LOG_DIR=/tmp/logs_base \
   launch/gpu_run.sh build > /tmp/base_build.txt 2>&1) &
OUT=/tmp/out_new LONGNET_LOG_DIR=/tmp/logs_new launch/gpu_run.sh build > $R/new_build.txt 2>&1
wait
cp /tmp/logs_new/build.log $R/new_build.log; cp /tmp/logs_base/build.log $R/base_build.log
grep -E "^-- longnet:" build/configure.log > $R/configure_status.txt
echo "builds done at $((SECONDS-T0)) s" >> $R/times.txt
ls -la build/longnet /tmp/base/build/longnet >> $R/times.txt 2>&1
(cd build && timeout 420 ctest -j6 --output-on-failure -E "python.pip_install" > $R/new_ctest.log 2>&1)
echo "ctest done at $((SECONDS-T0)) s" >> $R/times.txt
grep -E "tests passed|Failed|\*\*\*|Not Run|Timeout" $R/new_ctest.log | head -30
cat $R/times.txt $R/configure_status.txt
