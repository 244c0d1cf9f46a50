#!/usr/bin/env bash
# Installs what longnet needs and builds it into build/. Idempotent: a second run with nothing
# changed takes seconds.
#   1. Debian packages: compilers, CMake, Ninja, OpenMPI, yaml-cpp, GoogleTest, zlib; and, where
#      they can be had, the optional ones of the tokenizers and corpus formats (PCRE2,
#      SentencePiece, zstd, nlohmann-json): without them those parts are built out (configure
#      says so).
#   2. LibTorch: a python whose `import torch` works (e.g. the GPU machine's), else the pinned
#      torch wheel installed into .venv/ at the repository root.
#   3. cmake configure (first time) and build.
# Environment: LONGNET_CUDA=AUTO|ON|OFF (default AUTO), LONGNET_BUILD_DIR (default build),
#              LONGNET_PYTHON (a python with torch to use), LONGNET_SKIP_APT=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TORCH_VERSION=2.11.0
BUILD_DIR="${LONGNET_BUILD_DIR:-build}"
say() { echo "[setup] $*"; }

# ---- 1. system packages --------------------------------------------------------------------
packages=(build-essential cmake ninja-build pkg-config libopenmpi-dev openmpi-bin
          libyaml-cpp-dev libgtest-dev python3-venv zlib1g-dev)
# tokenizers and corpus (issue 20): optional, see cmake/longnet_tokenizers.cmake; strace holds
# a syscall for a fault test (tests/bad_inputs.sh), which skips that case without it
optional_packages=(libpcre2-dev libsentencepiece-dev libzstd-dev nlohmann-json3-dev strace)
missing=()
missing_optional=()
if [[ "${LONGNET_SKIP_APT:-0}" != 1 ]] && command -v dpkg-query >/dev/null; then
  installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
  for p in "${optional_packages[@]}"; do installed "$p" || missing_optional+=("$p"); done
fi
# Where they could not be had (a machine without a package registry), ask again only when the
# list changes, so that later runs stay fast: delete this file to retry.
APT_NOTE="$BUILD_DIR/.optional_packages_unavailable"
if ((${#missing_optional[@]})) && [[ -f "$APT_NOTE" && "$(cat "$APT_NOTE")" == "${missing_optional[*]}" ]]; then
  say "note: optional packages unavailable here (${missing_optional[*]}); not retrying ($APT_NOTE)"
  missing_optional=()
fi
packages_added=0
if ((${#missing[@]} + ${#missing_optional[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  }
  apt_updated=1
  $SUDO apt-get update -qq || apt_updated=0
  if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    ((apt_updated)) || { echo "[setup] error: apt-get update failed" >&2; exit 1; }
    apt_install "${missing[@]}"
  fi
  if ((${#missing_optional[@]})); then
    say "installing optional Debian packages (tokenizers, corpus formats): ${missing_optional[*]}"
    if ((apt_updated)) && apt_install "${missing_optional[@]}"; then
      packages_added=1
    else
      say "note: could not install them; the tokenizers and formats they provide are built out"
      mkdir -p "$BUILD_DIR" && echo "${missing_optional[*]}" >"$APT_NOTE"
    fi
  fi
fi

# ---- 2. LibTorch ---------------------------------------------------------------------------
# Beside torch: the Python package's build backend and YAML reader, the references the tokenizer
# tests compare with, and the readers and writers of the export formats (safetensors,
# TensorBoard event files) and the plotting scripts (matplotlib).
PY_EXTRAS=(scikit-build-core pyyaml tiktoken sentencepiece regex safetensors tensorboard numpy matplotlib)
PY_EXTRAS_IMPORT='import scikit_build_core, yaml, tiktoken, sentencepiece, regex, safetensors, tensorboard, numpy, matplotlib'
has_torch() { "$1" -c 'import torch' >/dev/null 2>&1; }
PY="${LONGNET_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python3 ]] && has_torch .venv/bin/python3; then
    PY="$ROOT/.venv/bin/python3"
  elif command -v python3 >/dev/null && has_torch python3; then
    PY="$(command -v python3)"
  else
    say "installing torch==$TORCH_VERSION into .venv (one time, a few minutes)"
    # A python with venv+pip: the one on PATH, else Debian's.
    BASE=python3
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then BASE=/usr/bin/python3; fi
    [[ -x .venv/bin/python3 ]] || "$BASE" -m venv .venv
    .venv/bin/python3 -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python3 -m pip install -q --disable-pip-version-check \
      "torch==$TORCH_VERSION" "${PY_EXTRAS[@]}"
    PY="$ROOT/.venv/bin/python3"
  fi
fi
has_torch "$PY" || { echo "[setup] error: $PY cannot import torch" >&2; exit 1; }
say "LibTorch from $("$PY" -c 'import torch;print(torch.__version__, "at", torch.__file__.rsplit("/",1)[0])')"
# The Python packages the tests and the Python package use beside torch (PY_EXTRAS), added to
# the project's own .venv when an older setup made it without them (never to a system python;
# the tests that need one skip without it).
if ! "$PY" -c "$PY_EXTRAS_IMPORT" >/dev/null 2>&1; then
  if [[ "$PY" == "$ROOT/.venv/bin/python3" ]]; then
    say "installing ${PY_EXTRAS[*]} into .venv"
    "$PY" -m pip install -q --disable-pip-version-check --retries 1 --timeout 15 \
      "${PY_EXTRAS[@]}" || say "note: pip could not install them; the tests that need them skip"
  else
    say "note: $PY lacks some of ${PY_EXTRAS[*]}; the tests that need them skip"
  fi
fi

# ---- 3. configure and build ----------------------------------------------------------------
TORCH_CMAKE="$("$PY" -c 'import torch;print(torch.utils.cmake_prefix_path)')"
CUDA_MODE="${LONGNET_CUDA:-AUTO}"
# nvcc is often installed without being on PATH.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
# A C++ compiler that has only a static libstdc++ (such as /opt/gcc on some CUDA images) would
# link a private copy of it into liblongnet_core.so, which crashes inside Python beside PyTorch's
# libstdc++; the system's g++ is used instead when it has a shared one (CMake refuses otherwise).
static_only_libstdcxx() { [[ "$("$1" -print-file-name=libstdc++.so 2>/dev/null)" == "libstdc++.so" ]]; }
system_gxx_ok() { [[ -x /usr/bin/g++ ]] && ! static_only_libstdcxx /usr/bin/g++; }
CXX_NOW="${CXX:-$(command -v c++ || true)}"
if [[ -n "$CXX_NOW" ]] && static_only_libstdcxx "$CXX_NOW" && system_gxx_ok; then
  say "note: $CXX_NOW has no shared libstdc++ (only libstdc++.a); building with /usr/bin/g++"
  if [[ -z "${CC:-}" || "$(dirname "$CC")" == "$(dirname "$CXX_NOW")" ]]; then export CC=/usr/bin/gcc; fi
  export CXX=/usr/bin/g++
fi
# nvcc's host compiler (CUDAHOSTCXX, else the g++ on PATH) gets the same treatment.
HOST_NOW="${CUDAHOSTCXX:-$(command -v g++ || true)}"
if [[ -n "$HOST_NOW" ]] && static_only_libstdcxx "$HOST_NOW" && system_gxx_ok; then
  say "note: CUDA host compiler $HOST_NOW has no shared libstdc++; using /usr/bin/g++"
  export CUDAHOSTCXX=/usr/bin/g++
fi
configure=0
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  configure=1
elif ((packages_added)); then
  configure=1  # optional libraries just installed: let CMake find them
elif [[ -n "${CXX:-}" ]] && command -v "$CXX" >/dev/null &&
     ! grep -qx "CMAKE_CXX_COMPILER:FILEPATH=$(command -v "$CXX")" "$BUILD_DIR/CMakeCache.txt"; then
  say "the C++ compiler changed to $CXX: configuring afresh"
  rm -rf "$BUILD_DIR/CMakeCache.txt" "$BUILD_DIR/CMakeFiles"
  configure=1
elif ! grep -q "^LONGNET_CUDA:STRING=$CUDA_MODE\$" "$BUILD_DIR/CMakeCache.txt" ||
     ! grep -q "^LONGNET_PYTHON:FILEPATH=$PY\$" "$BUILD_DIR/CMakeCache.txt"; then
  configure=1
fi
if ((configure)); then
  say "configuring $BUILD_DIR (LONGNET_CUDA=$CUDA_MODE)"
  mkdir -p "$BUILD_DIR"
  if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DLONGNET_CUDA="$CUDA_MODE" -DLONGNET_PYTHON="$PY" -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" \
      >"$BUILD_DIR/configure.log" 2>&1; then
    tail -40 "$BUILD_DIR/configure.log" >&2
    echo "[setup] error: cmake configure failed (full log: $BUILD_DIR/configure.log)" >&2
    exit 1
  fi
  grep -E "^-- longnet:" "$BUILD_DIR/configure.log" || true
fi
JOBS="${LONGNET_JOBS:-$(nproc)}"
say "building ($JOBS jobs)"
cmake --build "$BUILD_DIR" -j "$JOBS"
say "done: $BUILD_DIR/longnet, $BUILD_DIR/liblongnet_ops.so"
