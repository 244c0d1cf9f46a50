#!/usr/bin/env bash
# Session 14 on one GPU: session 13's run.sh (the whole CUDA build and every test but the four
# longest CPU-only ones, 12 at a time), then the refusal of two ranks on one GPU (eval and
# generate under mpirun -np 2, --device cuda), which session 13 prepared and could not run.
# Everything in $OUT/r13.tgz (the tests) and $OUT/r14.tgz (the refusals).
#   bash bench/results/2026-12-07_session14/run.sh
set -uo pipefail
bash bench/results/2026-12-07_session13/run.sh
source bench/device_common.sh r14
source launch/mpi_env.sh
CK=$(ls build/test_runs/faults/ref/step_*.ckpt 2>/dev/null | tail -1)
MP=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
timeout 120 "${MP[@]}" build/longnet eval --device cuda --checkpoint "$CK" \
  --data build/test_runs/faults/evaldata.tokens --context-lens 128 > $R/eval_np2.log 2>&1
echo "eval np2 rc=$?" >> $R/times.txt
timeout 120 "${MP[@]}" build/longnet generate --device cuda --checkpoint "$CK" --prompt x \
  --max-new-tokens 2 > $R/generate_np2.log 2>&1
echo "generate np2 rc=$?" >> $R/times.txt; t refusals
cat $R/times.txt; grep -h "error" $R/*_np2.log | head
