#!/usr/bin/env bash
# Run 6 on one H200 (issue 19: the eval curve of a base run, and generation speed with every
# segment full; run 4 of 2026-12-04 again, which never ran). Builds, trains configs/base.yaml for 160
# optimizer steps (~84M byte tokens of /usr/include, about 3.5 minutes at base.yaml's speed),
# then `longnet eval` of the last checkpoint at contexts 2K ... 256K (beyond the 32K training
# length), scoring the same final 2,048 tokens of each window, with the JSON and the PNG; then
# `bench generate --cache-fill full`. Fits one 10-minute call. Everything in $OUT/r6.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r6; rm -rf $R /tmp/r6_run; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r6.tgz r6; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; }
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f6 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
timeout 280 mpirun --allow-run-as-root -np 1 $B train configs/base.yaml train.steps=160 \
  optim.warmup_steps=16 eval.interval=80 eval.batches=2 log.interval=10 checkpoint.interval=80 \
  checkpoint.resume=none log.dir=/tmp/r6_run checkpoint.dir=/tmp/r6_run/checkpoints \
  > $R/train.log 2>&1; echo "rc=$?" >> $R/train.log; t train
cp /tmp/r6_run/metrics.jsonl /tmp/r6_run/config.yaml $R/ 2>/dev/null
CK=$(ls /tmp/r6_run/checkpoints/step_*.ckpt | tail -1)
timeout 110 $B eval --checkpoint "$CK" --context-lens 2048,4096,8192,16384,32768,65536,131072,262144 \
  --score-tokens 2048 --batches 8 --dtype bfloat16 --json $R/eval_base.json --plot $R/eval_base.png \
  > $R/eval.log 2>&1; echo "rc=$?" >> $R/eval.log; t eval
# Generation speed with every segment full (the costly end of the cycle; run 2 timed the cheap end).
timeout 80 $B bench generate --config configs/base.yaml --random-init \
  --prompt-lens 32768,1048576 --batches 1,64 --steps 64 --cache-fill full \
  --json $R/generate_full.json > $R/generate_full.log 2>&1; echo "rc=$?" >> $R/generate_full.log
t generate_full
grep -E "^step (80|160)/|rc=|error" $R/train.log | cut -c1-160
tail -8 $R/generate_full.log
cat $R/eval.log | tail -15
cat $R/times.txt
