#!/usr/bin/env bash
# This session's GPU checks (tests, not timings), one call on one GPU:
#   LONGNET_COMMIT=<hash> bash bench/results/2026-12-06_h100_session8/run.sh
# 1. build the CUDA path and run the tests that run CUDA code: the op from C++ and Python, the
#    Python package (modules, checkpoint loading, dropout), models, generation and its check;
# 2. check generate on the GPU (bf16, teacher-forced incremental logits against the full forward).
set -uo pipefail
cd "$(dirname "$0")/../../.."
L=${OUT:-/tmp/out}/logs
mkdir -p "$L"
export LONGNET_LOG_DIR=$L
LONGNET_CTEST_ARGS="-R dilated_attention|python.ops|python.package|^models$|^generation$|check_generate|check_attention|chunked_loss|config_data" \
  launch/gpu_run.sh build test
source launch/mpi_env.sh
B=build/longnet
for dt in bfloat16 float32; do
  timeout 180 $B check generate --config configs/tiny.yaml --device cuda --dtype $dt --seq-len 1100 \
    > "$L/check_generate_$dt.log" 2>&1
  echo "check generate $dt: rc=$? $(grep -E 'PASS|FAIL|error' "$L/check_generate_$dt.log" | tr '\n' ' ')"
done
