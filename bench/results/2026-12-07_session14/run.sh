#!/usr/bin/env bash
# Session 14 on one GPU: the whole CUDA build, every test but the four longest CPU-only ones
# (pip_install, flag_edges, bad_inputs, checkpoint_guard: the CPU machine runs them) 12 at a time,
# then the refusal of two ranks on one GPU (eval and generate under mpirun -np 2, --device cuda),
# which session 13 prepared (its run2.sh) and could not run. Everything in $OUT/r14.tgz.
#   bash bench/results/2026-12-07_session14/run.sh
set -uo pipefail
BUDGET=${BUDGET:-500}
source bench/device_common.sh r14
cmake --build build -j "$(nproc)" > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
source launch/mpi_env.sh
(cd build && timeout $((BUDGET - (SECONDS - T0))) ctest -j 12 --timeout 400 --output-on-failure \
  -E "pip_install|flag_edges|bad_inputs|checkpoint_guard" > $R/ctest.log 2>&1)
echo "ctest rc=$?" >> $R/times.txt; t ctest
CK=$(ls build/test_runs/faults/ref/step_*.ckpt 2>/dev/null | tail -1)
MP=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
timeout 120 "${MP[@]}" build/longnet eval --device cuda --checkpoint "$CK" \
  --data build/test_runs/faults/evaldata.tokens --context-lens 128 > $R/eval_np2.log 2>&1
echo "eval np2 rc=$?" >> $R/times.txt
timeout 120 "${MP[@]}" build/longnet generate --device cuda --checkpoint "$CK" --prompt x \
  --max-new-tokens 2 > $R/generate_np2.log 2>&1
echo "generate np2 rc=$?" >> $R/times.txt; t refusals
cat $R/times.txt; grep -E "tests passed|Failed|\*\*\*" $R/ctest.log | head -20
grep -h "error" $R/*_np2.log | head
