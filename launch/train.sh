#!/usr/bin/env bash
# Sets up and builds (launch/setup.sh), then trains under mpirun.
#   launch/train.sh [CONFIG.yaml] [-np P] [key=value ...] [--flags for longnet train]
# Defaults: configs/tiny.yaml on 2 CPU ranks (one sequence-parallel group), which shows the
# validation loss falling within a few minutes. Progress on rank 0; metrics in runs/tiny/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG=configs/tiny.yaml
NP=""
EXTRA=()
while (($#)); do
  case "$1" in
    -np|--np) NP="$2"; shift 2 ;;
    *.yaml|*.yml) CONFIG="$1"; shift ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
"$ROOT/launch/setup.sh"
source "$ROOT/launch/mpi_env.sh"
cd "$ROOT"
BIN="$ROOT/${LONGNET_BUILD_DIR:-build}/longnet"
# The rank count the resolved config's grid asks for (overrides included), unless -np says
# otherwise; a bad config or override is reported here, before mpirun.
if [[ -z "$NP" ]]; then
  NP=$("$BIN" train "$CONFIG" "${EXTRA[@]}" --print-ranks)
fi
# One thread per rank when ranks share a small machine's cores.
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  export OMP_NUM_THREADS=$(( $(nproc) / NP > 0 ? $(nproc) / NP : 1 ))
fi
echo "[train] ${LONGNET_MPIRUN[*]} -np $NP $BIN train $CONFIG ${EXTRA[*]}"
exec "${LONGNET_MPIRUN[@]}" -np "$NP" "$BIN" train "$CONFIG" "${EXTRA[@]}"
