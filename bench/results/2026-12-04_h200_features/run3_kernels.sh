#!/usr/bin/env bash
# Run 3 on one H200: the cross-entropy row kernels and the gradient layout of the attention op.
# Builds, runs the chunked-loss and dilated-attention GPU tests, then in one job the paper's
# attention through `longnet bench attention` and through torch.ops from Python, and 8 steps of
# configs/paper_lm.yaml with the chunked loss (now the row kernels) and with the plain one.
# Logs and JSON in $OUT/r3.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r3; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r3.tgz r3; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; }
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f3 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
B=build/longnet
timeout 120 build/tests/test_chunked_loss > $R/test_chunked_loss.log 2>&1; echo "rc=$?" >> $R/test_chunked_loss.log
timeout 120 build/tests/test_dilated_attention > $R/test_dilated_attention.log 2>&1; echo "rc=$?" >> $R/test_dilated_attention.log
t tests
timeout 120 $B bench attention --seq-lens 32768 --head-dims 64,128 --no-dense \
  --json $R/attention_paper.json > $R/attention_paper.log 2>&1; t attention
timeout 90 python3 bench/python_op_bench.py build/liblongnet_ops.so \
  --json $R/python_op.json > $R/python_op.log 2>&1; t python_op
RANKS=/tmp/lp/ranks.tiktoken DS=/tmp/lp/data; rm -rf /tmp/lp; mkdir -p /tmp/lp
python3 bench/synthetic_ranks.py $RANKS > $R/data_synth.log 2>&1
timeout 60 python3 bench/synthetic_dataset.py $RANKS $DS --tokens 8000000 --val-tokens 200000 \
  >> $R/data_synth.log 2>&1; t data_synth
paper() {
  timeout $5 $B train configs/paper_lm.yaml data.path=$DS data.tokenizer=tiktoken:$RANKS \
    train.loss=$2 data.batch_size=$3 train.grad_accumulation=$4 train.steps=8 \
    optim.warmup_steps=2 eval.interval=1000 eval.batches=1 log.interval=1 \
    checkpoint.interval=1000 checkpoint.resume=none checkpoint.dir=/tmp/lp/ck_$1 \
    log.metrics=$R/paper_lm_$1.jsonl > $R/paper_$1.log 2>&1; t paper_$1
}
paper chunked_b4 chunked 4 4 75
paper plain_b1 plain 1 16 75
grep -hE "^\[  (PASSED|FAILED) |rc=" $R/test_*.log
grep -E "^dilated" $R/attention_paper.log; cat $R/python_op.log
grep -hE "^step [78]/|done|error" $R/paper_*.log | cut -c1-160
cat $R/times.txt
