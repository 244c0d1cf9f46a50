#!/usr/bin/env bash
# Session 9 on one GPU: the decode step with the fused small-batch linears (core/small_linear.h)
# against the step with one op per module (--no-fused-step), in one call on one card. Builds,
# runs the generation GPU tests and the teacher-forced checks, `bench generate` (base.yaml,
# random parameters, 32K prompt, batches 1, 2, 4, 8 and 64, CUDA graph) both ways, at the default
# fill (just after the prompt) and with every segment full, the fused kernel also without
# programmatic dependent launch (rebuilt; NO_PDL_AB=1 leaves that out), a trace of batch 1, then
# the CUDA tests while time is left. Everything in $OUT/r9.tgz; a summary is printed last.
#   bash bench/results/2026-12-06_session9/run.sh
set -uo pipefail
BUDGET=${BUDGET:-570}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r9; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r9.tgz r9; }
trap save EXIT
trap 'save; exit 143' TERM
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; save; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
git log -1 --format='%H %s' > $R/commit.txt 2>&1; git status --short >> $R/commit.txt 2>&1
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f9 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
source launch/mpi_env.sh
timeout 240 build/tests/test_generation > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
for flags in "" ${OPS_CHECK:+--no-fused-step}; do  # OPS_CHECK=1: also the step without them
  name=check_generate_bf16${flags:+_ops}
  timeout 120 $B check generate --config configs/base.yaml --device cuda --dtype bfloat16 \
    --seq-len 40000 --prompt-len 33001 $flags > $R/$name.log 2>&1
  echo "rc=$?" >> $R/$name.log; t $name
done
timeout 120 $B check generate --config configs/tiny.yaml --device cuda --dtype float32 \
  --seq-len 1100 > $R/check_generate_tiny_f32.log 2>&1
echo "rc=$?" >> $R/check_generate_tiny_f32.log; t check_generate_tiny_f32
gen() {  # NAME [extra flags]
  local name=$1; shift
  timeout 150 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
    --batches 1,2,4,8,64 --steps 64 --json $R/generate_$name.json "$@" \
    > $R/generate_$name.log 2>&1
  echo "rc=$?" >> $R/generate_$name.log; t "generate $name"
}
gen fused_full --cache-fill full --fused-step-max-batch 8
gen ops_full --cache-fill full --no-fused-step
gen fused --fused-step-max-batch 8
gen ops --no-fused-step
if [ -z "${NO_PDL_AB:-}" ]; then  # the fused kernel without programmatic dependent launch
  K=core/small_linear_cuda.cu; cp $K /tmp/small_linear_pdl.cu
  sed -i 's/^#define LONGNET_SMALL_LINEAR_PDL 1/#define LONGNET_SMALL_LINEAR_PDL 0/' $K
  cmake --build build --target longnet > $R/rebuild_nopdl.txt 2>&1; t "rebuild without PDL"
  gen nopdl_full --cache-fill full --fused-step-max-batch 8
  gen nopdl --fused-step-max-batch 8
  cp /tmp/small_linear_pdl.cu $K
  cmake --build build --target longnet > $R/rebuild_pdl.txt 2>&1; t "rebuild with PDL"
fi
gen fused_full2 --cache-fill full --fused-step-max-batch 8
timeout 60 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
  --batches 1 --steps 64 --cache-fill full --trace $R/trace_fused > $R/trace_fused.log 2>&1
for f in $R/trace_fused/*.json; do
  timeout 30 python3 bench/trace_summary.py "$f" --top 30 --gaps 5 > "${f%.json}_summary.txt" 2>&1
  gzip -f "$f"
done
t trace
left=$((BUDGET - (SECONDS - T0)))
if [ $left -gt 90 ]; then
  cmake --build build > $R/rebuild_all.txt 2>&1; t "build all"
  left=$((BUDGET - (SECONDS - T0)))
  (cd build && timeout $((left - 15)) ctest -j8 --output-on-failure \
    -R "${CTEST_ONLY:-dilated_attention|python.ops|^models$|check_generate|check_attention|chunked_loss}" \
    > $R/ctest.log 2>&1)
  echo "rc=$?" >> $R/ctest.log; t ctest
else
  echo "ctest skipped (time)" >> $R/times.txt
fi
cat $R/gpu.txt
grep -hE "^\[  (FAILED|SKIPPED|PASSED) |rc=|fused step|naive" $R/test_generation.log | head -30
for f in $R/check_generate_*.log; do echo "$(basename $f): $(grep -E 'worst|PASS|FAIL|rc=' $f | tr '\n' ' ')"; done
for g in fused_full ops_full fused ops nopdl_full nopdl fused_full2; do echo "== $g"; tail -7 $R/generate_$g.log; done
head -20 $R/trace_fused/*_summary.txt
grep -E "tests passed|Failed|\*\*\*|Not Run|rc=" $R/ctest.log 2>/dev/null | head -30
cat $R/times.txt
