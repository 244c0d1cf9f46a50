#!/usr/bin/env bash
# Extra GPU runs: the op's error path from Python, the base model's training throughput at
# batch 1 and 4, and a long-context run over the GPUs present (sequence parallel, checkpointing).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source launch/mpi_env.sh
LONGNET_CUDA=ON LONGNET_SKIP_APT=1 LONGNET_JOBS=$(nproc) launch/setup.sh > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
S="${OUT:-out}/summary.txt"
NGPU=$(nvidia-smi -L | wc -l)
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | sed 's/NVIDIA //; s/ .*//' | tr 'A-Z' 'a-z')
python3 - >> "$S" 2>&1 <<'PY'
import torch
torch.ops.load_library("build/liblongnet_ops.so")
q = torch.randn(1, 8, 2, 8)
try:
    torch.ops.longnet.dilated_attention(q, q, q, [8, 16], [1])
except RuntimeError as e:
    print("python error path (cpu, no cuda init): caught:", str(e).splitlines()[0][:100])
PY
echo "python rc=$?" >> "$S"
rm -rf /tmp/ck1 /tmp/ck4 /tmp/cklong  # scratch checkpoint dirs (a fresh run refuses to replace)
for B in 1 4; do
  timeout 150 build/longnet train configs/base.yaml train.steps=20 optim.warmup_steps=5 \
    data.batch_size=$B train.grad_accumulation=1 eval.interval=1000 eval.batches=1 log.interval=5 checkpoint.interval=1000 \
    checkpoint.resume=none checkpoint.dir=/tmp/ck$B data.source=/usr/include --profile 2 \
    log.metrics=bench/results/train_base_32k_b${B}_$CARD.jsonl 2>&1 |
    grep -E "^step|^profile|error" | sed "s/^/[base B=$B] /" >> "$S"
done
LEN=$((262144 * NGPU))
timeout 240 mpirun -np "$NGPU" build/longnet train configs/long_1m.yaml \
  grid.sequence_parallel=$NGPU data.seq_len=$LEN train.steps=10 optim.warmup_steps=2 \
  eval.interval=1000 eval.batches=1 log.interval=1 checkpoint.interval=1000 checkpoint.resume=none \
  checkpoint.dir=/tmp/cklong data.source=/usr/include \
  log.metrics=bench/results/train_long_${LEN}_sp${NGPU}_$CARD.jsonl 2>&1 |
  grep -E "^step|^model|^training|error|memory|done" | sed "s/^/[long $LEN x$NGPU] /" >> "$S"
nvidia-smi --query-gpu=memory.used --format=csv >> "$S"
tar czf "${OUT:-out}/results.tgz" bench/results
cat "$S"
