#!/usr/bin/env bash
# Session 12 on one GPU: the merge weights normalised (every engine; core/dilated_merge_cuda.cu's
# kernel among them), the GPU tests of the attention, models, sequence parallelism, generation
# and the op; python.ops' CPU float64 case repeated under load as CTest runs it (2 OpenMP
# threads, 8 copies at once), with its errors printed at 1e-12. Everything in $OUT/r12.tgz
# after each stage; a summary last.
#   bash bench/results/2026-12-07_session12/run.sh
set -uo pipefail
BUDGET=${BUDGET:-560}
source bench/device_common.sh r12
cmake --build build -j "$(nproc)" --target longnet longnet_ops test_dilated_attention \
  test_models test_sequence_parallel test_generation > $R/build.txt 2>&1
echo "build rc=$?" >> $R/times.txt; t build
# The op's CPU float64 case, 8 processes at once with 2 threads each, 3 rounds.
cat > $R/f64.py <<'PY'
import sys, torch
sys.path.insert(0, "tests")
import test_ops
torch.ops.load_library("build/liblongnet_ops.so")
for it in range(int(sys.argv[1])):
    try:
        test_ops.check("cpu", torch.float64, 1e-12)
        print("ok below 1e-12", flush=True)
    except AssertionError as e:
        print("ABOVE 1e-12:", e, flush=True)
PY
for i in 1 2 3 4 5 6 7 8; do
  OMP_NUM_THREADS=2 timeout 150 python3 $R/f64.py 3 > $R/f64_$i.log 2>&1 &
done
wait; t f64
source launch/mpi_env.sh
left=$((BUDGET - 20 - (SECONDS - T0)))
(cd build && timeout $((left > 30 ? left : 30)) ctest -j8 --output-on-failure \
  -R "^dilated_attention$|python.ops|^models$|^sequence_parallel|^generation$|cli.check_generate|cli.check_attention" \
  > $R/ctest.log 2>&1)
echo "rc=$?" >> $R/ctest.log; t ctest
cat $R/gpu.txt $R/times.txt
cat $R/f64_*.log | sort | uniq -c | head -20
grep -E "tests passed|Failed|\*\*\*|Not Run|rc=|LargeLogits" $R/ctest.log 2>/dev/null | head -30
