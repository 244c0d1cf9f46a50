#!/usr/bin/env bash
# Run 1 on one H200 for the features of this round: build the tree under test, the GPU CTest
# (the CPU-only whole-job tests left out: CI runs them), and generation's GPU tests and
# teacher-forced checks. Logs in $OUT/r1.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r1; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { cp -r /tmp/logs_f/. $R/ 2>/dev/null; tar -C /tmp -czf $OUT/r1.tgz r1; }
trap save EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f launch/gpu_run.sh build > $R/build.txt 2>&1
grep -E "^-- longnet:" build/configure.log > $R/configure_status.txt
echo "build done at $((SECONDS-T0)) s" >> $R/times.txt
(cd build && timeout 200 ctest -j8 --output-on-failure \
   -E "pip_install|bad_inputs|faults|resume|fuzz|build_kill|other_grid|nan_|errors\.|generate\.end|configs\.|install" \
   > $R/ctest.log 2>&1)
echo "ctest done at $((SECONDS-T0)) s" >> $R/times.txt
grep -E "tests passed|Failed|\*\*\*|Timeout" $R/ctest.log | head -20
timeout 150 build/longnet check generate --config configs/base.yaml --device cuda \
  --dtype bfloat16 --seq-len 40000 --prompt-len 33001 > $R/check_generate_bf16.log 2>&1
echo "rc=$?" >> $R/check_generate_bf16.log
timeout 100 build/longnet check generate --config configs/base.yaml --device cuda \
  --dtype float32 --seq-len 12000 --prompt-len 9001 > $R/check_generate_f32.log 2>&1
echo "rc=$?" >> $R/check_generate_f32.log
echo "checks done at $((SECONDS-T0)) s" >> $R/times.txt
grep -hE "worst|PASS|FAIL|error|rc=" $R/check_generate_*.log | tail -8
grep -E "^\[  (FAILED|SKIPPED) |worst" build/Testing/Temporary/LastTest.log | head -20
cat $R/times.txt
