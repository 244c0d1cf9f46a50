#!/usr/bin/env bash
# eval on the GPU stopped by SIGINT after its first context length (after run.sh built build/):
# status 130, the rows done in --json with stopped_by_signal.
set -uo pipefail
cd "$(dirname "$0")/../../.."
L=${OUT:-/tmp/out}/logs; mkdir -p "$L"
source launch/mpi_env.sh
B=build/longnet W=/tmp/eval_sig; rm -rf $W; mkdir -p $W
timeout 300 $B train configs/tiny.yaml device=cuda grid.data_parallel=1 grid.sequence_parallel=1 \
  data.source=core data.path=$W/data.tokens checkpoint.dir=$W/ck log.dir=$W/run optim.warmup_steps=0 \
  train.steps=4 > "$L/train_tiny.log" 2>&1
echo "train tiny on cuda: rc=$?"
$B data build core $W/val.tokens --val-fraction 0.9 > /dev/null 2>&1
$B eval --checkpoint "$(ls $W/ck/*.ckpt | tail -1)" --device cuda --dtype bfloat16 --data $W/val.tokens \
  --context-lens 512,65536,131072,262144 --batches 64 --json $W/e.json > "$L/eval_sigint.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "eval: \[1/4\]" "$L/eval_sigint.log" && break; sleep 0.1; done
kill -INT $pid; wait $pid
echo "eval on cuda stopped by SIGINT: status $? (130 expected)"
cat "$L/eval_sigint.log"; cp $W/e.json "$L/eval_sigint.json" 2>/dev/null && cat $W/e.json
