#!/usr/bin/env bash
# Installs the Python package as a user would, `python -m pip install --no-build-isolation REPO`,
# into a fresh virtual env that sees the project's pinned torch (a .pth file naming the site-packages
# of the python that has it), then runs tests/python/test_package.py --installed with that env's
# python, and `import longnet; help(longnet.LongNetLM)`.
#   pip_install.sh PYTHON_WITH_TORCH REPO BUILD_DIR WORK_DIR
set -euo pipefail
PY="$1" REPO="$2" BUILD="$3" WORK="$4"
say() { echo "[pip_install] $*"; }
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "skipped: $PY has no torch"
  exit 77
fi
if ! "$PY" -c 'import scikit_build_core' 2>/dev/null; then
  echo "skipped: $PY has no scikit-build-core (launch/setup.sh installs it into .venv)"
  exit 77
fi
rm -rf "$WORK/venv"
mkdir -p "$WORK"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
torch_site="$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
venv_site="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# Beside the pinned torch: the new env imports it (and scikit-build-core, installed there by
# launch/setup.sh) from the project's env without a copy or a download.
echo "$torch_site" >"$venv_site/longnet_pinned_torch.pth"
say "venv $WORK/venv sees torch $("$VPY" -c 'import torch; print(torch.__version__)') at $torch_site"
# The compilers of the project's build (launch/setup.sh picks /usr/bin/g++ over a compiler that
# has no shared libstdc++, which CMakeLists.txt refuses): pip's CMake uses the same ones.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt" 2>/dev/null | head -1; }
for pair in CC:CMAKE_C_COMPILER CXX:CMAKE_CXX_COMPILER CUDAHOSTCXX:CMAKE_CUDA_HOST_COMPILER; do
  value="$(cache_value "${pair#*:}")"
  if [[ -n "$value" ]]; then export "${pair%%:*}=$value"; fi
done
say "compilers: CC=${CC:-default} CXX=${CXX:-default} CUDAHOSTCXX=${CUDAHOSTCXX:-default}"
t0=$(date +%s)
# --no-index: nothing is downloaded (the build uses the torch above; dependencies are satisfied).
"$VPY" -m pip install --disable-pip-version-check --no-index --no-build-isolation "$REPO"
say "pip install took $(($(date +%s) - t0)) s"
"$VPY" -m pip show longnet | sed -n '1,3p'
cd "$WORK"  # not the repository root: `import longnet` must find the installed package
"$VPY" -c 'import longnet, io, contextlib
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    help(longnet.LongNetLM)
assert "from_checkpoint" in buf.getvalue()
print("help(longnet.LongNetLM): %d lines, from %s" % (buf.getvalue().count("\n"), longnet.__file__))'
"$VPY" "$REPO/tests/python/test_package.py" --installed --build "$BUILD" --source "$REPO" \
  --work "$WORK/package"
