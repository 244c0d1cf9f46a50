#!/usr/bin/env bash
# Builds a fuzz target with clang (libFuzzer + AddressSanitizer + UBSan) and runs it.
#   tests/fuzz/run_fuzzer.sh [SECONDS=600] [config|token_header|cli_flags|checkpoint]
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
  cli_flags | checkpoint)
    # These link LibTorch (not instrumented; the sanitizers watch longnet's own code).
    PY=${LONGNET_PYTHON:-.venv/bin/python3}
    TORCH=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    TORCH_FLAGS=(-isystem "$TORCH/include" -isystem "$TORCH/include/torch/csrc/api/include"
                 -D_GLIBCXX_USE_CXX11_ABI=1 -L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib")
    if [[ $TARGET == cli_flags ]]; then
      mapfile -t CONFIG < tests/fuzz/config_sources.txt
      # (command_flags.cpp sees parallel/ headers, which include mpi.h: its include path only)
      read -r -a MPI_FLAGS <<< "$(mpicxx --showme:compile)"
      SOURCES=(tests/fuzz/fuzz_cli_flags.cpp cli/cli_flags.cpp cli/common_flags.cpp
               cli/command_flags.cpp "${CONFIG[@]}" -lyaml-cpp "${TORCH_FLAGS[@]}" -lc10
               "${MPI_FLAGS[@]}")
    else
      SOURCES=(tests/fuzz/fuzz_checkpoint.cpp train/checkpoint_files.cpp train/crc32.cpp train/fault_injection.cpp
               core/file_util.cpp core/errors.cpp core/parameter_io.cpp core/zip_layout.cpp "${TORCH_FLAGS[@]}" -ltorch_cpu -lc10 -lz)
    fi ;;
  *) echo "run_fuzzer.sh: unknown target '$TARGET'; use config, token_header, cli_flags or" \
          "checkpoint" >&2; exit 2 ;;
esac
mkdir -p "tests/fuzz/corpus_$TARGET"
# The project's headers as longnet/... (as the CMake build sees them): a link to the repository.
mkdir -p "$OUT/include"
ln -sfn "$PWD" "$OUT/include/longnet"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize=vptr \
  -DLONGNET_FUZZ_IN_PROCESS -I"$OUT/include" -Ibuild/generated "${SOURCES[@]}" \
  -o "$OUT/fuzz_$TARGET"
# LibTorch's zip reader (miniz) leaks a few hundred bytes on a malformed archive, and its
# unpickler reserves a string of the length a pickle declares (up to 4 GiB) before finding the
# data shorter (corpus_checkpoint/oom-unpickler-string: 1.9 GB, then a clean "corrupted"
# error), and its memo table to the index a pickle declares (a 30 GB request seen: ASan aborts
# on it; a plain build gets std::bad_alloc, read as "corrupted", where the machine cannot hold
# it). All are LibTorch's, so the checkpoint target does not stop on leaks and has 6 GB.
EXTRA=(-rss_limit_mb=2048)
if [[ $TARGET == checkpoint ]]; then
  EXTRA=(-detect_leaks=0 -rss_limit_mb=6144)
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"  # nor at exit
fi
"$OUT/fuzz_$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=30 \
  -artifact_prefix=tests/fuzz/ "${EXTRA[@]}" "tests/fuzz/corpus_$TARGET"
