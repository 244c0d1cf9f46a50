#!/usr/bin/env bash
# Run 2 on one H200, on run 1's build (rebuilt if the machine is a fresh one): the reference
# library's Figure-5 setting at N = 8K and 128K (identical branches planned once, issue 22), the
# paper's attention through `longnet bench attention` and through torch.ops from Python in the
# same run, generation speed after 32K and 1M-token prompts (graph and no graph), and the
# chunked against the plain loss on configs/paper_lm.yaml. Logs and JSON in $OUT/r2.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r2; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { cp -r /tmp/logs_f2/. $R/ 2>/dev/null; tar -C /tmp -czf $OUT/r2.tgz r2; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; }
if [[ ! -x build/longnet ]]; then
  OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f2 launch/gpu_run.sh build > $R/build.txt 2>&1
fi
t build
B=build/longnet
timeout 100 $B bench scaling --seq-lens 8192,131072 --dense-max-len 8192 \
  --json $R/scaling_reference.json > $R/scaling_reference.log 2>&1; t scaling
timeout 120 $B bench attention --seq-lens 32768 --head-dims 64,128 \
  --json $R/attention_paper.json > $R/attention_paper.log 2>&1; t attention
timeout 90 python3 bench/python_op_bench.py build/liblongnet_ops.so \
  --json $R/python_op.json > $R/python_op.log 2>&1; t python_op
timeout 150 $B bench generate --config configs/base.yaml --random-init \
  --prompt-lens 32768,1048576 --batches 1,64 --steps 64 \
  --json $R/generate_base.json > $R/generate_base.log 2>&1; t generate
timeout 60 $B bench generate --config configs/base.yaml --random-init \
  --prompt-lens 32768 --batches 1,64 --steps 64 --no-cuda-graph \
  --json $R/generate_base_nograph.json > $R/generate_base_nograph.log 2>&1; t generate_nograph
# configs/paper_lm.yaml (vocabulary 100,277, 32K context, 16 sequences per step): the chunked
# output layer and loss against the plain one, 8 steps each on synthetic ids.
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
paper plain_b4 plain 4 4 45
cat $R/*.log | grep -vE "^\s*$" | tail -60
cat $R/times.txt
