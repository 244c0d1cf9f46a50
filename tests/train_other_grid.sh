#!/usr/bin/env bash
# Resuming on another grid: 4 steps on 2 ranks as one sequence-parallel group, then the same
# checkpoint directory resumed as 2 data-parallel ranks and as 1 rank, each to step 8. Every
# resume must continue from step 4 (not start over) and finish.
#   tests/train_other_grid.sh LONGNET_BINARY CONFIG DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 CONFIG=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
fail() { echo "FAIL: $*"; exit 1; }
COMMON=(train "$CONFIG" data.source="$SRC" data.path="$WORK/data.tokens" train.steps=8)
"${MPIRUN[@]}" -np 2 "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/sp2" log.metrics="$WORK/a.jsonl" \
  --stop-after 4 > "$WORK/first.log" 2>&1 || fail "the first run failed: $(tail -3 "$WORK/first.log")"
for grid in "2 grid.data_parallel=2 grid.sequence_parallel=1" "1 grid.data_parallel=1 grid.sequence_parallel=1"; do
  read -r np dp sp <<< "$grid"
  rm -rf "$WORK/c$np" && cp -r "$WORK/sp2" "$WORK/c$np"
  "${MPIRUN[@]}" -np "$np" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/c$np" $dp $sp \
    log.metrics="$WORK/m$np.jsonl" > "$WORK/resume$np.log" 2>&1 ||
    fail "resume on $np rank(s) failed: $(tail -3 "$WORK/resume$np.log")"
  grep -q "was written with grid 1 data x 2 sequence parallel" "$WORK/resume$np.log" ||
    fail "resume on $np rank(s): no message about the other grid"
  grep -q '"step":5,' "$WORK/m$np.jsonl" || fail "resume on $np rank(s) did not continue at step 5"
  grep -q '"step":1,' "$WORK/m$np.jsonl" && fail "resume on $np rank(s) started over"
  grep -q "training done: 8 steps" "$WORK/resume$np.log" || fail "resume on $np rank(s) did not finish"
  echo "ok: resumed on $np rank(s) ($dp $sp) from step 4 to 8"
done
echo "other grid: all passed"
