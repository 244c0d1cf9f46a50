#!/usr/bin/env bash
# `longnet data build` killed mid-way (the --debug-kill-after-shards hook ends the process as
# kill -9 would, leaving the next shard's temporary file), then rerun: the rerun keeps the
# complete shards, removes the temporary files and ends with the same bytes as an uninterrupted
# build; killed twice, ended by SIGTERM once (no temporary file left), and resumed with another
# worker count, likewise.
#   tests/data_build_kill.sh LONGNET_BINARY DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*"; exit 1; }
build() {  # OUT [flags...]
  local out=$1
  shift
  "$BIN" data build --tokenizer bytes:eot --source "$SRC" --out "$out" --shard-mb 0.02 \
    --val-fraction 0.05 --no-progress "$@"
}
build "$WORK/whole" > "$WORK/whole.log" 2>&1 || fail "the uninterrupted build: $(tail -2 "$WORK/whole.log")"
build "$WORK/ds" --workers 2 --debug-kill-after-shards 3 > "$WORK/kill1.log" 2>&1
rc=$?
((rc == 137)) || fail "expected the kill (exit 137), got $rc: $(tail -2 "$WORK/kill1.log")"
ls "$WORK"/ds/*.tmp > /dev/null 2>&1 || fail "the kill left no temporary file"
grep -q '"complete": false' "$WORK/ds/manifest.json" || fail "the manifest says complete"
build "$WORK/ds" --workers 1 --debug-kill-after-shards 5 > "$WORK/kill2.log" 2>&1
(($? == 137)) || fail "expected the second kill: $(tail -2 "$WORK/kill2.log")"
# Ended by SIGTERM (as `kill PID` or a closed terminal would): the process ends by the signal and
# its temporary files go with it.
build "$WORK/ds" --workers 2 --debug-term-after-shards 2 > "$WORK/term.log" 2>&1
(($? == 143)) || fail "expected the end by SIGTERM (exit 143): $(tail -2 "$WORK/term.log")"
! ls "$WORK"/ds/*.tmp > /dev/null 2>&1 || fail "SIGTERM left temporary files: $(ls "$WORK/ds")"
build "$WORK/ds" --workers 2 > "$WORK/resume.log" 2>&1 || fail "the resumed build: $(tail -2 "$WORK/resume.log")"
grep -q "resumed with 10 shard(s) kept" "$WORK/resume.log" || fail "not resumed from 10 shards: $(cat "$WORK/resume.log")"
! ls "$WORK"/ds/*.tmp > /dev/null 2>&1 || fail "temporary files left: $(ls "$WORK/ds")"
diff <(cd "$WORK/whole" && ls) <(cd "$WORK/ds" && ls) || fail "other files"
for f in "$WORK"/whole/*; do
  cmp -s "$f" "$WORK/ds/$(basename "$f")" || fail "$(basename "$f") differs from the uninterrupted build"
done
echo "data build kill: resumed twice to the uninterrupted bytes ($(ls "$WORK/ds" | wc -l) files)"
