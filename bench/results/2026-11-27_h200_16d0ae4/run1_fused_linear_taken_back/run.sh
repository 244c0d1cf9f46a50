#!/usr/bin/env bash
# Run 1: build HEAD (base) and the working tree (new) side by side; GPU ctest on new; NaN-skip
# checks on the GPU; b=4 timings alternating; a trace of new.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
R=$OUT/r; mkdir -p $R
T0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > $R/gpu.txt
NEW=$PWD
rm -rf /tmp/base && mkdir -p /tmp/base && tar --exclude=./build --exclude=./wip -cf - . | tar -C /tmp/base -xf -
(cd /tmp/base && git apply -R $NEW/wip/wip.diff && git status --short | head -20) > $R/base_apply.txt 2>&1
(cd /tmp/base && OUT=/tmp/out_base LONGNET_LOG_DIR=/tmp/logs_base launch/gpu_run.sh build > /tmp/base_build.txt 2>&1) &
OUT=/tmp/out_new LONGNET_LOG_DIR=/tmp/logs_new launch/gpu_run.sh build > $R/new_build.txt 2>&1
wait
cp /tmp/base_build.txt $R/base_build.txt
grep -iE "error|FAILED" /tmp/logs_new/build.log | head -20 > $R/new_build_errors.txt
echo "builds done at $((SECONDS-T0)) s" >> $R/times.txt
OUT=/tmp/out_new LONGNET_LOG_DIR=/tmp/logs_new launch/gpu_run.sh test > $R/new_test.txt 2>&1
cp /tmp/logs_new/ctest.log $R/new_ctest.log
echo "ctest done at $((SECONDS-T0)) s" >> $R/times.txt
build/longnet data build /usr/include /tmp/ui.tokens > /dev/null 2>&1
COMMON="train.steps=8 optim.warmup_steps=2 data.batch_size=4 train.grad_accumulation=1 eval.interval=1000 eval.batches=1 log.interval=1 checkpoint.interval=1000 checkpoint.resume=none data.path=/tmp/ui.tokens data.source=/usr/include"
# NaN skip on the GPU: two poisoned steps, then a limit of 2.
build/longnet train configs/base.yaml train.steps=6 optim.warmup_steps=2 data.batch_size=1 train.grad_accumulation=1 eval.interval=1000 eval.batches=1 log.interval=1 checkpoint.interval=1000 checkpoint.resume=none checkpoint.dir=/tmp/ck_nan data.path=/tmp/ui.tokens log.metrics=$R/nan_skip.jsonl --debug-nan-at 2,3 > $R/nan_skip.log 2>&1; echo "rc=$?" >> $R/nan_skip.log
build/longnet train configs/base.yaml train.steps=6 optim.warmup_steps=2 data.batch_size=1 train.grad_accumulation=1 eval.interval=1000 eval.batches=1 log.interval=1 checkpoint.interval=1000 checkpoint.resume=none checkpoint.dir=/tmp/ck_nan2 data.path=/tmp/ui.tokens train.max_bad_steps=2 log.metrics=$R/nan_limit.jsonl --debug-nan-at 2,3 > $R/nan_limit.log 2>&1; echo "rc=$?" >> $R/nan_limit.log
echo "nan checks done at $((SECONDS-T0)) s" >> $R/times.txt
for round in 1 2; do
  for tree in base new; do
    dir=$NEW; [[ $tree == base ]] && dir=/tmp/base
    (cd $dir && build/longnet train configs/base.yaml $COMMON checkpoint.dir=/tmp/ck_$tree log.metrics=$R/${tree}_b4_$round.jsonl > $R/${tree}_b4_$round.log 2>&1)
  done
done
echo "timings done at $((SECONDS-T0)) s" >> $R/times.txt
build/longnet train configs/base.yaml $COMMON checkpoint.dir=/tmp/ck_tr log.metrics=$R/new_trace_b4.jsonl --trace /tmp/new_trace.json > $R/new_trace_b4.log 2>&1
python3 bench/trace_summary.py /tmp/new_trace.json --top 45 --gaps 25 > $R/new_trace_b4.txt 2>&1
echo "trace done at $((SECONDS-T0)) s" >> $R/times.txt
python3 - <<'PY' > $R/summary.txt 2>&1
import json,glob,os
R=os.environ['OUT']+'/r'
for f in sorted(glob.glob(R+'/*_b4_*.jsonl')):
    L=[json.loads(l) for l in open(f) if '"loss"' in l]
    ms=[l['step_ms'] for l in L if l['step']>=3]
    print(os.path.basename(f), 'steps3-8 mean %.1f ms'%(sum(ms)/len(ms)), 'peak %.1f'%L[-1]['peak_gib'], 'loss', ['%.4f'%l['loss'] for l in L])
PY
cat $R/summary.txt $R/times.txt
tail -5 $R/new_ctest.log
tar -C $OUT -czf $OUT/r.tgz r && rm -rf $R
