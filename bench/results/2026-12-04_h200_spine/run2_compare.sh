#!/usr/bin/env bash
# Run 2 of the options-spine check (issue 17) on the same H200 right after run 1 (its builds are
# kept): bench attention and base.yaml's step time, the tree under test against dbd2f5e, in one
# run and alternating. Logs and JSON under $OUT/r2.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=$OUT/r2; mkdir -p $R
T0=$SECONDS
NEW=$PWD
[[ -x /tmp/base/build/longnet && -x build/longnet ]] || { echo "run 1's builds are gone"; exit 3; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv > $R/gpu.txt
# The paper's attention at N = 32K (B = 32), head dims 64 and 128: base, new, base, new.
for round in 1 2; do
  for tree in base new; do
    dir=$NEW; [[ $tree == base ]] && dir=/tmp/base
    dense=--no-dense; [[ $tree == new && $round == 1 ]] && dense=
    (cd $dir && build/longnet bench attention --seq-lens 32768 --head-dims 64,128 $dense \
       --json $R/attention_${tree}_$round.json > $R/attention_${tree}_$round.log 2>&1)
  done
done
echo "attention done at $((SECONDS-T0)) s" >> $R/times.txt
# base.yaml, 20 steps each (steps 5-20 averaged), base then new.
build/longnet data build /usr/include /tmp/ui.tokens --val-fraction 0.02 > /dev/null 2>&1
COMMON="train.steps=20 optim.warmup_steps=5 eval.interval=1000 eval.batches=1 log.interval=5 \
checkpoint.interval=1000 checkpoint.resume=none data.path=/tmp/ui.tokens data.source=/usr/include"
for tree in base new; do
  dir=$NEW; [[ $tree == base ]] && dir=/tmp/base
  (cd $dir && timeout 200 build/longnet train configs/base.yaml $COMMON checkpoint.dir=/tmp/ck_$tree \
     log.metrics=$R/train_base_${tree}.jsonl > $R/train_base_${tree}.log 2>&1)
  echo "train $tree done at $((SECONDS-T0)) s" >> $R/times.txt
done
python3 - <<'PY' > $R/summary.txt 2>&1
import json, glob, os
R = os.environ['OUT'] + '/r2'
for f in sorted(glob.glob(R + '/attention_*.json')):
    d = json.load(open(f))
    for r in d['rows']:
        print(os.path.basename(f), r.get('attention'), 'N', r.get('seq_len'), 'D', r.get('head_dim'),
              'fwd %.2f ms %.1f TF/s' % (r['forward_ms'], r['forward_tflops']),
              'fb %.2f ms %.1f TF/s' % (r.get('forward_backward_ms', float('nan')),
                                         r.get('forward_backward_tflops', float('nan'))))
for f in sorted(glob.glob(R + '/train_base_*.jsonl')):
    L = [json.loads(l) for l in open(f) if '"loss"' in l]
    S = [l for l in L if l['step'] >= 5]
    if not S:
        print(os.path.basename(f), 'no steps'); continue
    ms = sum(l['step_ms'] for l in S) / len(S); mfu = sum(l['mfu'] for l in S) / len(S)
    tok = sum(l['tokens_per_s'] for l in S) / len(S)
    print(os.path.basename(f), 'steps 5-20: %.1f ms, %.0f tok/s, MFU %.2f%%, peak %.1f GiB, '
          'losses %s' % (ms, tok, 100 * mfu, L[-1]['peak_gib'], ['%.4f' % l['loss'] for l in L[:3]]))
PY
cat $R/summary.txt $R/times.txt
