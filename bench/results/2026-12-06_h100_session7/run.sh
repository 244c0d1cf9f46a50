#!/usr/bin/env bash
# This session's GPU checks (tests, not timings), one call on one GPU:
#   LONGNET_COMMIT=<hash> bash bench/results/2026-12-06_h100_session7/run.sh
# 1. build the CUDA path and run the tests that run CUDA code or the changed checks;
# 2. check attention on the GPU against the float64 definition (one rank, bf16 and float32);
# 3. generate on the GPU (CUDA graph) stopped by SIGINT: the text so far, status 130.
set -uo pipefail
cd "$(dirname "$0")/../../.."
L=${OUT:-/tmp/out}/logs
mkdir -p "$L"
export LONGNET_LOG_DIR=$L
LONGNET_CTEST_ARGS="-R dilated_attention|^generation$|check_attention|tokenizer_corpus|config_data|^dataset$" \
  launch/gpu_run.sh build test
source launch/mpi_env.sh
B=build/longnet
for dt in bfloat16 float32; do
  timeout 120 $B check attention --device cuda --dtype $dt --seq-len 2048 --heads 12 --head-dim 64 \
    --segments 512,1024,2048 --rates 1,2,4 --causal > "$L/check_attention_$dt.log" 2>&1
  echo "check attention $dt: rc=$? $(grep -E 'PASS|FAIL|float64|error' "$L/check_attention_$dt.log" | tr '\n' ' ')"
done
W=/tmp/gen_sig; rm -rf $W; mkdir -p $W
timeout 300 $B train configs/tiny.yaml device=cuda grid.data_parallel=1 grid.sequence_parallel=1 \
  data.source=core data.path=$W/data.tokens checkpoint.dir=$W/ck log.dir=$W/run optim.warmup_steps=0 \
  train.steps=4 > "$L/train_tiny.log" 2>&1
echo "train tiny on cuda: rc=$?"
CK=$(ls $W/ck/*.ckpt | tail -1)
$B generate --checkpoint "$CK" --device cuda --prompt x --max-new-tokens 100000000 --stats \
  > $W/gen.out 2> "$L/generate_sigint.err" &
pid=$!
for _ in $(seq 600); do [[ -s $W/gen.out ]] && break; sleep 0.1; done
sleep 1
kill -INT $pid
wait $pid
echo "generate on cuda stopped by SIGINT: status $? (130 expected), $(wc -c < $W/gen.out) bytes, last byte $(tail -c 1 $W/gen.out | od -An -tx1)"
cat "$L/generate_sigint.err"
