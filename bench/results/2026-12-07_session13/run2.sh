#!/usr/bin/env bash
# Session 13, second call: train.faults.np2 (its eval now on the CPU, as the test means) and the
# refusal of two ranks on one GPU (eval and generate under mpirun -np 2, --device cuda), which
# NCCL refuses with "invalid usage". Everything in $OUT/r13b.tgz.
#   bash bench/results/2026-12-07_session13/run2.sh
set -uo pipefail
source bench/device_common.sh r13b
cmake --build build -j "$(nproc)" > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
source launch/mpi_env.sh
(cd build && ctest -R "train.faults" --output-on-failure > $R/ctest.log 2>&1)
echo "ctest rc=$?" >> $R/times.txt; t ctest
CK=build/test_runs/faults/ref/step_00000012.ckpt
MP=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
timeout 120 "${MP[@]}" build/longnet eval --device cuda --checkpoint $CK \
  --data build/test_runs/faults/evaldata.tokens --context-lens 128 > $R/eval_np2.log 2>&1
echo "eval np2 rc=$?" >> $R/times.txt
timeout 120 "${MP[@]}" build/longnet generate --device cuda --checkpoint $CK --prompt x \
  --max-new-tokens 2 > $R/generate_np2.log 2>&1
echo "generate np2 rc=$?" >> $R/times.txt; t refusals
cat $R/times.txt; grep -E "tests passed|Failed" $R/ctest.log; grep -h "error" $R/*_np2.log
