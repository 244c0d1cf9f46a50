#!/usr/bin/env bash
# Run 7 on one H200, after run 6's eval stopped at xPos's float16 guard (`eval --dtype bfloat16`
# switched CUDA autocast on without its dtype, and CUDA's default is float16): builds, runs the
# generation/eval GPU tests (the new ContextEval.CudaBFloat16AgreesWithFloat32AtLongSegments
# among them), trains configs/base.yaml for 160 steps as run 6 did (the trainer now sets its
# autocast through the same scope) and evaluates the last checkpoint at contexts 2K ... 256K,
# with the JSON and the PNG. Everything in $OUT/r7.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r7; rm -rf $R /tmp/r7_run; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r7.tgz r7; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; }
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f7 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
timeout 120 build/tests/test_generation > $R/test_generation.log 2>&1
echo "rc=$?" >> $R/test_generation.log; t test_generation
timeout 260 mpirun --allow-run-as-root -np 1 $B train configs/base.yaml train.steps=160 \
  optim.warmup_steps=16 eval.interval=80 eval.batches=2 log.interval=10 checkpoint.interval=80 \
  checkpoint.resume=none log.dir=/tmp/r7_run checkpoint.dir=/tmp/r7_run/checkpoints \
  > $R/train.log 2>&1; echo "rc=$?" >> $R/train.log; t train
cp /tmp/r7_run/metrics.jsonl /tmp/r7_run/config.yaml $R/ 2>/dev/null
CK=$(ls /tmp/r7_run/checkpoints/step_*.ckpt | tail -1)
timeout 150 $B eval --checkpoint "$CK" --context-lens 2048,4096,8192,16384,32768,65536,131072,262144 \
  --score-tokens 2048 --batches 8 --dtype bfloat16 --json $R/eval_base.json --plot $R/eval_base.png \
  > $R/eval.log 2>&1; echo "rc=$?" >> $R/eval.log; t eval
grep -hE "^\[  (FAILED|SKIPPED) |PASSED|rc=" $R/test_generation.log
grep -E "^step (80|160)/|rc=|error" $R/train.log | cut -c1-160
tail -15 $R/eval.log
cat $R/times.txt
