#!/usr/bin/env bash
# Builds the config-loader fuzzer with clang (libFuzzer + AddressSanitizer + UBSan) and runs it.
#   tests/fuzz/run_fuzzer.sh [SECONDS=600]
# New interesting inputs go into tests/fuzz/corpus_config/ (commit them); crashes into
# tests/fuzz/crash-* with the input that caused them. A timeout (tests/fuzz/timeout-*) is yaml-cpp
# looping: config_load bounds those with a trial parse in a child process; add the input to the
# corpus, which CI replays through that guarded path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS_TO_RUN=${1:-600}
OUT=build/fuzz
mkdir -p "$OUT"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -DLONGNET_FUZZ_IN_PROCESS -I. \
  tests/fuzz/fuzz_config.cpp train/config.cpp -lyaml-cpp -o "$OUT/fuzz_config"
"$OUT/fuzz_config" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=30 \
  -artifact_prefix=tests/fuzz/ tests/fuzz/corpus_config
