#!/usr/bin/env bash
# Session 11 on one GPU: the one-pass decode kernel's merge in two levels (each branch's last
# block merges that branch's chunks, then the last branch merges the branches) against the
# landed single merge (HEAD's kernel files, rebuilt in the same call on the same card). Builds
# `longnet` and `test_generation`, runs the whole generation test binary, `bench generate`
# (base.yaml, random parameters, 32K prompt, batches 1, 2, 4, 8, 64, CUDA graph, 64 steps) one
# and three passes, every segment full and just after the prompt, the bf16 and float32
# teacher-forced checks, a trace of batch 1, everything and the CUDA ctest subset, then HEAD's
# kernel for the baseline. Everything in $OUT/r11.tgz after each stage; a summary last.
#   bash bench/results/2026-12-06_session11/run.sh
set -uo pipefail
BUDGET=${BUDGET:-540}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r11; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r11.tgz r11; }
trap save EXIT
trap 'save; exit 143' TERM
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
B=build/longnet
timeout 200 build/tests/test_generation > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
gen() {  # NAME [extra flags]
  local name=$1; shift
  timeout 120 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
    --batches 1,2,4,8,64 --steps 64 --json $R/generate_$name.json "$@" \
    > $R/generate_$name.log 2>&1
  echo "rc=$?" >> $R/generate_$name.log; t "generate $name"
}
gen full --cache-fill full
gen 3pass_full --cache-fill full --three-pass-attention
gen prompt
gen 3pass_prompt --three-pass-attention
timeout 90 $B check generate --config configs/base.yaml --device cuda --dtype bfloat16 \
  --seq-len 40000 --prompt-len 33001 > $R/check_bf16.log 2>&1
echo "rc=$?" >> $R/check_bf16.log; t check_bf16
timeout 90 $B check generate --config configs/tiny.yaml --device cuda --dtype float32 \
  --seq-len 1100 > $R/check_tiny_f32.log 2>&1
echo "rc=$?" >> $R/check_tiny_f32.log; t check_tiny_f32
timeout 60 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
  --batches 1 --steps 64 --cache-fill full --trace $R/trace > $R/trace.log 2>&1
for f in $R/trace/*.json; do
  timeout 30 python3 bench/trace_summary.py "$f" --top 30 --gaps 5 > "${f%.json}_summary.txt" 2>&1
  gzip -f "$f"
done
t trace
left=$((BUDGET - 110 - (SECONDS - T0)))
if [ $left -gt 120 ]; then
  cmake --build build -j "$(nproc)" > $R/build_all.txt 2>&1; t "build all"
  left=$((BUDGET - 110 - (SECONDS - T0)))
  source launch/mpi_env.sh
  (cd build && timeout $((left > 30 ? left : 30)) ctest -j8 --output-on-failure \
    -R "dilated_attention|python.ops|^models$|check_generate|check_attention|chunked_loss" \
    > $R/ctest.log 2>&1)
  echo "rc=$?" >> $R/ctest.log; t ctest
else
  echo "ctest skipped (time)" >> $R/times.txt
fi
# The baseline: HEAD's kernel files, rebuilt.
for f in core/dilated_cache_cuda.cu core/dilated_cache.cpp core/dilated_cache_kernel.h \
  core/cuda_launch.cuh; do git show HEAD:$f > $f; done
cmake --build build -j "$(nproc)" --target longnet > $R/build_base.txt 2>&1
echo "build base rc=$?" >> $R/times.txt; t "build base"
gen base_full --cache-fill full
gen base_prompt
cat $R/gpu.txt $R/times.txt
grep -hE "^\[  (FAILED|SKIPPED|PASSED) |rc=|Failure|Expected|Which is|worst relative error of the rows" $R/test_generation.log | head -40
for f in $R/check_*.log; do echo "$(basename $f): $(grep -E 'worst|PASS|FAIL|rc=' $f | tr '\n' ' ')"; done
for g in full base_full 3pass_full prompt base_prompt 3pass_prompt; do
  echo "== $g"; tail -8 $R/generate_$g.log | grep -E "^ +[0-9]+ +[0-9]+ |rc="
done
head -30 $R/trace/*_summary.txt
grep -E "tests passed|Failed|\*\*\*|Not Run|rc=" $R/ctest.log 2>/dev/null | head -30
