#!/usr/bin/env bash
# Run 10 on one GPU: the decode step's combine kernel, parallel over chunks (warps per (b, h)),
# against the one it replaced, in one call on one card. Builds, runs the generation GPU tests and
# the teacher-forced checks, then `bench generate` (base.yaml, random parameters, 32K prompt,
# every segment full, batch 1 and 64, CUDA graph) with the new kernel, with the old one (OLD: the
# file core/dilated_cache_cuda.cu at a3df701, rebuilt into the same build) and with the new one
# again, a trace of batch 1, the fault-injection test alone with what Open MPI says about
# forwarding signals, and the whole test suite while time is left. Everything in
# $OUT/r10.tgz; a summary is printed last.
set -uo pipefail
OLD=${OLD:?set OLD to the earlier core/dilated_cache_cuda.cu}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r10; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r10.tgz r10; }
trap save EXIT
trap 'save; exit 143' TERM
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; save; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f10 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
source launch/mpi_env.sh
timeout 200 build/tests/test_generation > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
timeout 120 $B check generate --config configs/base.yaml --device cuda --dtype bfloat16 \
  --seq-len 40000 --prompt-len 33001 > $R/check_generate_bf16.log 2>&1
echo "rc=$?" >> $R/check_generate_bf16.log; t check_generate_bf16
gen() {  # NAME [extra flags]
  local name=$1; shift
  timeout 90 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
    --batches 1,64 --steps 64 --cache-fill full --json $R/generate_$name.json "$@" \
    > $R/generate_$name.log 2>&1
  echo "rc=$?" >> $R/generate_$name.log; t "generate $name"
}
gen new
cp core/dilated_cache_cuda.cu /tmp/new_cache.cu
cp "$OLD" core/dilated_cache_cuda.cu
cmake --build build --target longnet > $R/rebuild_old.txt 2>&1; t "rebuild old"
gen old
cp /tmp/new_cache.cu core/dilated_cache_cuda.cu
cmake --build build --target longnet > $R/rebuild_new.txt 2>&1; t "rebuild new"
gen new2
timeout 60 $B bench generate --config configs/base.yaml --random-init --prompt-lens 32768 \
  --batches 1 --steps 64 --cache-fill full --trace $R/trace_new > $R/trace_new.log 2>&1
for f in $R/trace_new/*.json; do
  timeout 30 python3 bench/trace_summary.py "$f" --top 30 --gaps 5 > "${f%.json}_summary.txt" 2>&1
  gzip -f "$f"
done
t trace
# Diagnostics for the signal stop of the fault-injection test (SIGUSR1 to mpirun): the test alone,
# then what this machine's Open MPI is told about forwarding signals.
(cd /tmp && OMP_NUM_THREADS=1 timeout 120 bash $OLDPWD/tests/fault_injection.sh $OLDPWD/$B \
  $OLDPWD/tests/train_small.yaml $OLDPWD/core /tmp/fi > $R/fault_injection.log 2>&1)
echo "rc=$?" >> $R/fault_injection.log
{ env | grep -i "^OMPI\|^PMIX\|^ORTE"; ompi_info --all 2>/dev/null | grep -i "forward"; } \
  > $R/ompi_signals.txt 2>&1
cp /tmp/fi/usr1.log $R/fault_usr1.log 2>/dev/null; t fault_injection
left=$((560 - (SECONDS - T0)))
if [ $left -gt 90 ]; then
  (cd build && timeout $((left - 20)) ctest -j8 --output-on-failure > $R/ctest.log 2>&1)
  echo "rc=$?" >> $R/ctest.log; t ctest
else
  echo "ctest skipped (time)" >> $R/times.txt
fi
cat $R/gpu.txt
grep -hE "^\[  (FAILED|SKIPPED|PASSED) |rc=|worst" $R/test_generation.log | head -20
grep -E "worst|PASS|FAIL|rc=" $R/check_generate_bf16.log
for g in new old new2; do echo "== $g"; tail -5 $R/generate_$g.log; done
head -16 $R/trace_new/*_summary.txt
tail -4 $R/fault_injection.log; head -20 $R/ompi_signals.txt
grep -E "tests passed|Failed|\*\*\*|Not Run|rc=" $R/ctest.log 2>/dev/null | head -20
cat $R/times.txt
