#!/usr/bin/env bash
# Run 5 on one H200: build the tree under test, the GPU CTest (the CPU-only whole-job tests left
# out: CI runs them), generation's teacher-forced check in bf16, then the cross-entropy row
# kernels (now on by default, ChunkedCrossEntropyOptions::row_kernels) on configs/paper_lm.yaml
# against the plain loss, and the paper's attention through `longnet bench attention` and
# through torch.ops from Python in the same job. Logs and JSON in $OUT/r5.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r5; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r5.tgz r5; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f5 launch/gpu_run.sh build > $R/build.txt 2>&1
grep -E "^-- longnet:" build/configure.log > $R/configure_status.txt; t build
B=build/longnet
(cd build && timeout 220 ctest -j8 --output-on-failure \
   -E "pip_install|bad_inputs|faults|resume|fuzz|build_kill|other_grid|nan_|errors\.|generate\.end|configs\.|install|checkpoint_guard" \
   > $R/ctest.log 2>&1)
cp build/Testing/Temporary/LastTest.log $R/ctest_last.log 2>/dev/null; t ctest
timeout 60 build/tests/test_chunked_loss > $R/test_chunked_loss.log 2>&1
echo "rc=$?" >> $R/test_chunked_loss.log; t chunked_loss
timeout 100 $B check generate --config configs/base.yaml --device cuda --dtype bfloat16 \
  --seq-len 40000 --prompt-len 33001 > $R/check_generate_bf16.log 2>&1
echo "rc=$?" >> $R/check_generate_bf16.log; t check_generate
timeout 120 $B bench attention --seq-lens 32768 --head-dims 64,128 \
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
paper chunked_b1 chunked 1 16 75
paper plain_b1 plain 1 16 75
grep -E "tests passed|Failed|\*\*\*|Timeout" $R/ctest.log | head -20
grep -hE "^\[  (PASSED|FAILED) |rc=" $R/test_chunked_loss.log
grep -hE "worst|PASS|FAIL|rc=" $R/check_generate_bf16.log | tail -4
grep -E "^dilated|^dense|ratio" $R/attention_paper.log; cat $R/python_op.log | tail -12
grep -hE "^step [78]/|done|error" $R/paper_*.log | cut -c1-170
cat $R/times.txt
