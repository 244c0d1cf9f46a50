#!/usr/bin/env bash
# Run 9 on one H200: run 7 (build, generation GPU tests, base.yaml 160 steps, the eval curve
# 2K ... 256K of its last checkpoint) and then run 8 (generation step traces, graph and eager) in
# one call, since device machines were scarce: the traces run only while the call has time left
# (they start before 470 s). Everything in $OUT/r9.tgz.
# Knobs for a short call: STEPS (default 160) training steps, TESTS=0 skips the GPU tests.
set -uo pipefail
STEPS=${STEPS:-160} TESTS=${TESTS:-1}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r9; rm -rf $R /tmp/r9_run; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r9.tgz r9; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; save; }  # saved after each stage
trap 'save; exit 143' TERM
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f9 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
if [ "$TESTS" = 1 ]; then
  timeout 90 build/tests/test_generation > $R/test_generation.log 2>&1
  echo "rc=$?" >> $R/test_generation.log; t test_generation
fi
timeout 240 mpirun --allow-run-as-root -np 1 $B train configs/base.yaml train.steps=$STEPS \
  optim.warmup_steps=16 eval.interval=$((STEPS / 2)) eval.batches=2 log.interval=10 \
  checkpoint.interval=$((STEPS / 2)) \
  checkpoint.resume=none log.dir=/tmp/r9_run checkpoint.dir=/tmp/r9_run/checkpoints \
  > $R/train.log 2>&1; echo "rc=$?" >> $R/train.log; t train
cp /tmp/r9_run/metrics.jsonl /tmp/r9_run/config.yaml $R/ 2>/dev/null
CK=$(ls /tmp/r9_run/checkpoints/step_*.ckpt | tail -1)
timeout 120 $B eval --checkpoint "$CK" --context-lens 2048,4096,8192,16384,32768,65536,131072,262144 \
  --score-tokens 2048 --batches 8 --dtype bfloat16 --json $R/eval_base.json --plot $R/eval_base.png \
  > $R/eval.log 2>&1; echo "rc=$?" >> $R/eval.log; t eval
for g in graph eager; do
  [ $((SECONDS-T0)) -lt 470 ] || { echo "skipped generate $g (time)" >> $R/times.txt; continue; }
  flag=""; [ $g = eager ] && flag="--no-cuda-graph"
  timeout 60 $B bench generate --config configs/base.yaml --random-init \
    --prompt-lens 32768 --batches 1,64 --steps 64 --cache-fill full $flag \
    --json $R/generate_$g.json --trace $R/trace_$g > $R/generate_$g.log 2>&1
  echo "rc=$?" >> $R/generate_$g.log; t "generate $g"
  for f in $R/trace_$g/*.json; do
    timeout 30 python3 bench/trace_summary.py "$f" --top 40 --gaps 10 > "${f%.json}_summary.txt" 2>&1
    gzip -f "$f"
  done
done
grep -hE "^\[  (FAILED|SKIPPED) |PASSED|rc=" $R/test_generation.log 2>/dev/null
grep -E "^step ($((STEPS / 2))|$STEPS)/|rc=|error" $R/train.log | cut -c1-160
tail -12 $R/eval.log
for g in graph eager; do tail -4 $R/generate_$g.log 2>/dev/null; head -25 $R/trace_$g/*_b1_summary.txt 2>/dev/null; done
cat $R/times.txt
