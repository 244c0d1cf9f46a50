#!/usr/bin/env bash
# Session 10, last call (little device time left): build `longnet` and `test_generation`, run
# the cache's and the step's GPU tests, the bf16 teacher-forced check, then `bench generate`
# (base.yaml, 32K prompt, batches 1, 2, 4, 8 and 64, 32 steps) one pass and three passes, every
# segment full and just after the prompt. Everything in $OUT/r10c.tgz after each stage.
#   bash bench/results/2026-12-06_session10/run_c.sh
set -uo pipefail
export NCCL_NVLS_ENABLE=0
R=/tmp/r10c; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r10c.tgz r10c; }
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
  --gtest_filter='DilatedKVCache.Cuda*:IncrementalLM.Cuda*:SmallLinear.Cuda*' \
  > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
gen() {  # NAME [extra flags]
  local name=$1; shift
  timeout 60 build/longnet bench generate --config configs/base.yaml --random-init \
    --prompt-lens 32768 --batches 1,2,4,8,64 --steps 32 \
    --json $R/generate_$name.json "$@" > $R/generate_$name.log 2>&1
  echo "rc=$?" >> $R/generate_$name.log; t "generate $name"
}
gen full --cache-fill full
gen 3pass_full --cache-fill full --three-pass-attention
gen prompt
gen 3pass_prompt --three-pass-attention
timeout 60 build/longnet check generate --config configs/base.yaml --device cuda \
  --dtype bfloat16 --seq-len 36000 --prompt-len 33001 > $R/check_bf16.log 2>&1
echo "rc=$?" >> $R/check_bf16.log; t check_bf16
cat $R/gpu.txt $R/times.txt
grep -hE "^\[  (FAILED|PASSED) |rc=|Failure" $R/test_generation.log | head -20
for g in full 3pass_full prompt 3pass_prompt; do
  echo "== $g"; grep -E "^ +(32768|65400) +[0-9]+ " $R/generate_$g.log
done
grep -E "worst|PASS|FAIL|rc=" $R/check_bf16.log
