#!/usr/bin/env bash
# Session 15 on one GPU: session 13's run.sh (the whole CUDA build and every test but the four
# longest CPU-only ones, 12 at a time), then what this session changed that touches the GPU:
# the process grid (every device now counts the host's ranks), `bench generate --trace` (its
# traced steps now after the timed ones, with and without --cache-fill full), and the engine
# note (given on the CPU only: none expected here). Everything in $OUT/r13.tgz and $OUT/r15.tgz.
#   bash bench/results/2026-12-07_session15/run.sh
set -uo pipefail
bash bench/results/2026-12-07_session13/run.sh
source bench/device_common.sh r15
source launch/mpi_env.sh
CK=$(ls build/test_runs/faults/ref/step_*.ckpt 2>/dev/null | tail -1)
for fill in prompt full; do
  timeout 120 build/longnet bench generate --checkpoint "$CK" --device cuda --prompt-lens 300 \
    --batches 1,4 --steps 16 --cache-fill $fill --trace $R/trace_$fill \
    --json $R/bench_generate_$fill.json > $R/bench_generate_$fill.log 2>&1
  echo "bench generate --cache-fill $fill --trace rc=$?" >> $R/times.txt
done
ls $R/trace_* >> $R/times.txt 2>&1
timeout 120 build/longnet bench attention --device cuda --seq-lens 8192 --tokens 16384 --heads 4 \
  --segments 1024,2048 --rates 1,2 --streams 2 --no-fused-merge --repeats 3 --warmup 1 \
  > $R/bench_attention.log 2>&1
echo "bench attention rc=$? notes=$(grep -c 'act only on a GPU' $R/bench_attention.log)" >> $R/times.txt
t extras
cat $R/times.txt; grep -h "error" $R/*.log | head
