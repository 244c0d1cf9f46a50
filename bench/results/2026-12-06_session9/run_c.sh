#!/usr/bin/env bash
# Session 9, last call (little device time left): build only `longnet` and `test_generation`,
# run the fused step's GPU tests, then `bench generate` (base.yaml, every segment full, batches
# 1, 2, 4, 8) with the fused step at every batch and with the separate ops, then the bf16
# teacher-forced check. Everything in $OUT/r9c.tgz after each stage.
#   bash bench/results/2026-12-06_session9/run_c.sh
set -uo pipefail
export NCCL_NVLS_ENABLE=0
R=/tmp/r9c; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r9c.tgz r9c; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; save; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
git log -1 --format='%H %s' > $R/commit.txt 2>&1; git status --short >> $R/commit.txt 2>&1
export CC=/usr/bin/gcc CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++ PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGNET_CUDA=ON \
  -DLONGNET_PYTHON="$(command -v python3)" \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
  > $R/configure.log 2>&1
cmake --build build -j "$(nproc)" --target longnet test_generation > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
timeout 60 build/tests/test_generation \
  --gtest_filter='SmallLinear.*:IncrementalLM.Cuda*:IncrementalLM.FusedStep*' \
  > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
gen() {  # NAME [extra flags]
  local name=$1; shift
  timeout 60 build/longnet bench generate --config configs/base.yaml --random-init \
    --prompt-lens 32768 --batches 1,2,4,8 --steps 32 --cache-fill full \
    --json $R/generate_$name.json "$@" > $R/generate_$name.log 2>&1
  echo "rc=$?" >> $R/generate_$name.log; t "generate $name"
}
gen fused_full --fused-step-max-batch 8
gen ops_full --no-fused-step
timeout 60 build/longnet check generate --config configs/base.yaml --device cuda \
  --dtype bfloat16 --seq-len 36000 --prompt-len 33001 > $R/check_generate_bf16.log 2>&1
echo "rc=$?" >> $R/check_generate_bf16.log; t check_generate_bf16
cat $R/gpu.txt $R/times.txt
grep -hE "^\[  (FAILED|PASSED) |rc=|Failure|Expected|fused step" $R/test_generation.log | head -30
for g in fused_full ops_full; do echo "== $g"; tail -7 $R/generate_$g.log; done
grep -E "worst|PASS|FAIL|rc=" $R/check_generate_bf16.log
