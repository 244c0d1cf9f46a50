#!/usr/bin/env bash
# Run 8 on one H200 (not run yet): where a generation step's time goes. base.yaml, bf16, random
# parameters, every segment full (the costly end of the cycle), batch 1 and 64, with and without
# the CUDA graph; `bench generate --trace` keeps a Kineto trace of 8 steps of each measurement and
# bench/trace_summary.py sums each per kernel (GPU busy time against the step's wall time: how
# much of a step is kernels, how much the gaps between them). Everything in $OUT/r8.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/r8; rm -rf $R; mkdir -p $R
T0=$SECONDS
save() { tar -C /tmp -czf $OUT/r8.tgz r8; }
trap save EXIT
t() { echo "$1 at $((SECONDS-T0)) s" >> $R/times.txt; }
OUT=/tmp/out_f LONGNET_LOG_DIR=/tmp/logs_f8 launch/gpu_run.sh build > $R/build.txt 2>&1; t build
for g in graph eager; do
  flag=""; [ $g = eager ] && flag="--no-cuda-graph"
  timeout 200 build/longnet bench generate --config configs/base.yaml --random-init \
    --prompt-lens 32768 --batches 1,64 --steps 64 --cache-fill full $flag \
    --json $R/generate_$g.json --trace $R/trace_$g > $R/generate_$g.log 2>&1
  echo "rc=$?" >> $R/generate_$g.log; t "generate $g"
  for f in $R/trace_$g/*.json; do
    python3 bench/trace_summary.py "$f" --top 40 --gaps 10 > "${f%.json}_summary.txt" 2>&1
    gzip -f "$f"
  done
done
for g in graph eager; do tail -4 $R/generate_$g.log; head -30 $R/trace_$g/*_b1_summary.txt; done
cat $R/times.txt
