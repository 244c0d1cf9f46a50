#!/usr/bin/env bash
# Sets up and builds (launch/setup.sh), then trains under mpirun.
#   launch/train.sh [CONFIG.yaml] [-np P] [key=value ...] [--flags for longnet train]
# (the flags, e.g. --stop-after N or --profile N, go to the training run only)
# Defaults: configs/tiny.yaml on 2 CPU ranks (one sequence-parallel group), which shows the
# validation loss falling within a few minutes. Progress on rank 0; the run folder is runs/tiny/
# (paths in the config and the overrides are relative to the directory you run this from).
# Afterwards it prints a 200-token sample from the newest checkpoint (LONGNET_NO_SAMPLE=1: not;
# LONGNET_SAMPLE_PROMPT: another prompt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="$ROOT/configs/tiny.yaml"
CONFIG_GIVEN=""
NP=""
EXTRA=()  # key=value overrides: they also decide the rank count and the sample's checkpoint
FLAGS=()  # --flags (and their values) for the training run alone
usage_error() { echo "launch/train.sh: $*" >&2; exit 2; }
if [[ "${1:-}" == --help || "${1:-}" == -h ]]; then
  sed -n '3,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo "(longnet train --help lists the training flags, once built: build/longnet train --help)"
  exit 0
fi
while (($#)); do
  if [[ "$1" == -np || "$1" == --np ]]; then
    [[ -z "$NP" ]] || usage_error "$1 given twice; give the rank count once"
    (($# >= 2)) || usage_error "$1 needs a rank count (e.g. -np 2)"
    [[ "$2" =~ ^[1-9][0-9]{0,5}$ ]] || usage_error "$1 '$2': the rank count is a positive integer"
    NP="$2"
    shift 2
  elif [[ "$1" == -* ]]; then
    # A flag of longnet train with its value (the next argument, whatever it looks like), but for
    # its switches and --flag=value.
    FLAGS+=("$1")
    shift
    case "${FLAGS[-1]}" in
      --print-ranks|--debug-parser-hang|--help|-h|--*=*) ;;
      *) if (($#)); then FLAGS+=("$1"); shift; fi ;;
    esac
  elif [[ ("$1" == *.yaml || "$1" == *.yml) && ("$1" != *=* || -f "$1") ]] ||
       [[ "$1" != *=* && -f "$1" ]]; then
    [[ -z "$CONFIG_GIVEN" ]] || usage_error "two configs given ('$CONFIG' and '$1'); give one"
    [[ -f "$1" ]] || usage_error "config '$1' is not a file (from $PWD)"
    CONFIG="$1"
    CONFIG_GIVEN=1
    shift
  elif [[ "$1" != *=* && "$1" =~ ^[a-z_]+\.[a-z_.]+:(.*)$ ]]; then
    usage_error "'$1' is no override: an override is key=value (e.g. ${1%%:*}=${BASH_REMATCH[1]:-...})"
  elif [[ "$1" != *=* ]]; then
    usage_error "'$1' is neither a key=value override nor a config file (a .yaml file here)"
  else
    EXTRA+=("$1")  # key=value (longnet train names anything else)
    shift
  fi
done
"$ROOT/launch/setup.sh"
source "$ROOT/launch/mpi_env.sh"
BIN="$ROOT/${LONGNET_BUILD_DIR:-build}/longnet"
# The rank count the resolved config's grid asks for (overrides included), unless -np says
# otherwise; a bad config or override is reported here, before mpirun.
if [[ -z "$NP" ]]; then
  NP=$("$BIN" train "$CONFIG" "${EXTRA[@]}" --print-ranks)
fi
# Every rank runs on this machine (oversubscribed if need be), each loading LibTorch (about
# 0.5 GB): far more ranks than cores is a typo in the grid, not a run (LONGNET_ALLOW_MANY_RANKS=1:
# run them anyway).
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # (nproc reads those two)
if ((NP > 8 && NP > 4 * CORES)) && [[ "${LONGNET_ALLOW_MANY_RANKS:-}" != 1 ]]; then
  usage_error "the config's grid (or -np) asks for $NP ranks, and train.sh runs them all on this \
machine of $CORES cores, each loading LibTorch (about 0.5 GB): lower grid.data_parallel / \
grid.sequence_parallel (or -np), run mpirun with a hostfile for several machines, or set \
LONGNET_ALLOW_MANY_RANKS=1 to run them here anyway"
fi
# One thread per rank when ranks share a small machine's cores.
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  export OMP_NUM_THREADS=$(( $(nproc) / NP > 0 ? $(nproc) / NP : 1 ))
fi
echo "[train] ${LONGNET_MPIRUN[*]} -np $NP $BIN train $CONFIG ${EXTRA[*]} ${FLAGS[*]}"
# Ctrl-C or SIGTERM here stops the job at the next step boundary with a checkpoint: mpirun runs in
# its own session (so the terminal's SIGINT does not reach it: Open MPI ends the ranks with
# SIGKILL a second after mpirun gets SIGINT or SIGTERM). SIGUSR1 goes to mpirun, which forwards it
# to every rank (remote ones included), and to this machine's ranks in that session directly, for
# an mpirun that does not forward it (as on a machine with Open MPI's isolated launcher); a rank
# that gets it twice stops once.
# A closed terminal (SIGHUP) stops it the same way. A second Ctrl-C or SIGTERM ends the ranks at
# once (SIGINT to each, which exits without a checkpoint), for a job that does not reach a step
# boundary.
setsid "${LONGNET_MPIRUN[@]}" -np "$NP" "$BIN" train "$CONFIG" "${EXTRA[@]}" "${FLAGS[@]}" &
MPIRUN_PID=$!
STOPS=0
stop() {
  STOPS=$((STOPS + 1))
  if ((STOPS == 1)); then
    echo "[train] stopping at the next step boundary with a checkpoint (resume with the same" \
      "command; a job still starting up ends without one); again to stop at once"
    kill -USR1 "$MPIRUN_PID" 2> /dev/null
    pkill -USR1 -s "$MPIRUN_PID" -x longnet 2> /dev/null || true
  else
    echo "[train] stopping now, without a checkpoint"
    pkill -INT -s "$MPIRUN_PID" -x longnet 2> /dev/null || true
  fi
}
trap stop INT TERM HUP
RC=0
while :; do
  wait "$MPIRUN_PID" && RC=0 || RC=$?
  kill -0 "$MPIRUN_PID" 2> /dev/null || break  # (a trapped signal ends `wait` early)
done
trap - INT TERM HUP
((RC == 0)) || exit "$RC"
# --print-ranks, --check-config and --help train nothing: no sample after them.
for flag in "${FLAGS[@]}"; do
  case "$flag" in --print-ranks | --check-config | --check-config=* | --help | -h) exit 0 ;; esac
done

# A short sample from the newest checkpoint, so that the model is seen to work. The checkpoint
# dir and tokenizer are the resolved config's.
key() {  # key SECTION NAME: a value of the resolved config, quotes removed
  "$BIN" train "$CONFIG" "${EXTRA[@]}" --check-config "$NP" |
    awk -v s="$1:" -v k="  $2:" '$0 == s {on = 1; next} /^[a-z]/ {on = 0}
                                 on && index($0, k) == 1 {sub(k " *", ""); gsub("\"", ""); print}'
}
CKPT=$(ls -t "$(key checkpoint dir)"/step_*.ckpt 2>/dev/null | head -1 || true)
TOKENIZER=$(key data tokenizer)
if [[ -n "$CKPT" && -z "${LONGNET_NO_SAMPLE:-}" ]]; then
  PROMPT=${LONGNET_SAMPLE_PROMPT:-"#include <"}
  echo "[train] a sample from $CKPT (prompt: $PROMPT):"
  "$BIN" generate --checkpoint "$CKPT" --tokenizer "${TOKENIZER:-bytes}" --prompt "$PROMPT" \
    --max-new-tokens 200 --temperature 0.8 --top-k 40 --seed 1
  echo
fi
