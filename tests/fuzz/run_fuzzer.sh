#!/usr/bin/env bash
# Builds a fuzz target with clang (libFuzzer + AddressSanitizer + UBSan) and runs it.
#   tests/fuzz/run_fuzzer.sh [SECONDS=600] [config|token_header]
# New interesting inputs go into tests/fuzz/corpus_<target>/ (commit them); crashes into
# tests/fuzz/crash-* with the input that caused them. For the config loader, a timeout or
# out-of-memory (tests/fuzz/timeout-*, oom-*) is yaml-cpp looping on a malformed document: add
# the pattern to yaml_reject_parser_traps() in train/yaml_strict.cpp and the input to the corpus,
# which CI replays through the guarded parse that config_load uses.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS_TO_RUN=${1:-600}
TARGET=${2:-config}
OUT=build/fuzz
mkdir -p "$OUT"
case "$TARGET" in
  config) mapfile -t SOURCES < tests/fuzz/config_sources.txt
          SOURCES=(tests/fuzz/fuzz_config.cpp "${SOURCES[@]}" -lyaml-cpp) ;;
  token_header) SOURCES=(tests/fuzz/fuzz_token_header.cpp train/token_header.cpp) ;;
  *) echo "run_fuzzer.sh: unknown target '$TARGET'; use config or token_header" >&2; exit 2 ;;
esac
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -DLONGNET_FUZZ_IN_PROCESS -I. \
  "${SOURCES[@]}" -o "$OUT/fuzz_$TARGET"
"$OUT/fuzz_$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=30 \
  -rss_limit_mb=2048 -artifact_prefix=tests/fuzz/ "tests/fuzz/corpus_$TARGET"
