#!/usr/bin/env bash
# Run 11 on one GPU: the decode step as one kernel (store, attend and combine fused: the block
# that finishes last for a (sequence, head) merges its partials) against the three kernels it
# replaced, in one call on one card. Builds, runs the generation GPU tests and the teacher-forced
# check, then `bench generate` (base.yaml, random parameters, 32K prompt, every segment full,
# batch 1 and 64, CUDA graph) with the new kernel, with the old one (OLD_SRC: the four
# core/dilated_cache* files of the parent commit, rebuilt into the same build) and with the new
# one again, a trace of batch 1, then the test suite while time is left (CTEST_ONLY: a regex of
# the tests to run, default all; CTEST_EXCLUDE: of tests to leave out). Everything in
# $OUT/r11.tgz; a summary is printed last.
set -uo pipefail
OLD_SRC=${OLD_SRC:?set OLD_SRC to a folder with the old core/dilated_cache* files}
BUDGET=${BUDGET:-570}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r11; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r11.tgz r11; }
trap save EXIT
trap 'save; exit 143' TERM
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; save; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f11 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
source launch/mpi_env.sh
timeout 240 build/tests/test_generation > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
gen() {  # NAME [extra flags]
  local name=$1; shift
  timeout 90 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
    --batches 1,64 --steps 64 --cache-fill full --json $R/generate_$name.json "$@" \
    > $R/generate_$name.log 2>&1
  echo "rc=$?" >> $R/generate_$name.log; t "generate $name"
}
FILES="core/dilated_cache_cuda.cu core/dilated_cache.cpp core/dilated_cache.h core/dilated_cache_kernel.h"
gen new
timeout 120 $B check generate --config configs/base.yaml --device cuda --dtype bfloat16 \
  --seq-len 40000 --prompt-len 33001 > $R/check_generate_bf16.log 2>&1
echo "rc=$?" >> $R/check_generate_bf16.log; t check_generate_bf16
if [ -z "${NO_OLD:-}" ]; then  # NO_OLD=1: the new kernel only (no comparison)
mkdir -p /tmp/new_src; for f in $FILES; do cp $f /tmp/new_src/; cp "$OLD_SRC/$(basename $f)" $f; done
cmake --build build --target longnet > $R/rebuild_old.txt 2>&1; t "rebuild old"
gen old
for f in $FILES; do cp /tmp/new_src/$(basename $f) $f; done
cmake --build build --target longnet > $R/rebuild_new.txt 2>&1; t "rebuild new"
gen new2
fi
if [ -z "${NO_TRACE:-}" ]; then  # NO_TRACE=1: leave the trace and the test suite out
timeout 60 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
  --batches 1 --steps 64 --cache-fill full --trace $R/trace_new > $R/trace_new.log 2>&1
for f in $R/trace_new/*.json; do
  timeout 30 python3 bench/trace_summary.py "$f" --top 30 --gaps 5 > "${f%.json}_summary.txt" 2>&1
  gzip -f "$f"
done
t trace
cmake --build build > $R/rebuild_all.txt 2>&1; t "rebuild all"
else BUDGET=0; fi
left=$((BUDGET - (SECONDS - T0)))
if [ $left -gt 60 ]; then
  (cd build && timeout $((left - 15)) ctest -j8 --output-on-failure ${CTEST_ONLY:+-R "$CTEST_ONLY"} ${CTEST_EXCLUDE:+-E "$CTEST_EXCLUDE"} \
    > $R/ctest.log 2>&1)
  echo "rc=$?" >> $R/ctest.log; t ctest
else
  echo "ctest skipped (time)" >> $R/times.txt
fi
cat $R/gpu.txt
grep -hE "^\[  (FAILED|SKIPPED|PASSED) |rc=|worst" $R/test_generation.log | head -20
grep -E "worst|PASS|FAIL|rc=" $R/check_generate_bf16.log
for g in new old new2; do echo "== $g"; tail -5 $R/generate_$g.log; done
head -16 $R/trace_new/*_summary.txt
grep -E "tests passed|Failed|\*\*\*|Not Run|rc=" $R/ctest.log 2>/dev/null | head -30
cat $R/times.txt
