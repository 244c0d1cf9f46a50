#!/usr/bin/env bash
# Faults during training on 2 CPU ranks: a rank killed with SIGKILL, SIGTERM, a crash half-way
# through a checkpoint write, a rank that stalls, a stop during an evaluation or a checkpoint's
# write, `longnet eval` stopped by SIGINT or failing at a later length, a metrics file that fails
# to take a row, the run folder deleted mid-run. Each must end the whole job quickly, never lose
# the last complete checkpoint, and resume must continue exactly (same losses as an
# uninterrupted run).
#   tests/fault_injection.sh LONGNET_BINARY CONFIG DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 CONFIG=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
MPIRUN=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
COMMON=(train "$CONFIG" data.source="$SRC" data.path="$WORK/data.tokens" train.steps=12
        checkpoint.interval=4 log.interval=1)
fail() { echo "FAIL: $*"; exit 1; }
losses() { grep -o '"step":[0-9]*,"loss":[^,]*' "$1" | sort -t: -k2 -n | uniq; }
# resumes NAME: continues the run in $WORK/NAME with `resume: auto`; it must start from the
# step-4 checkpoint and log the reference's losses for steps 5 to 12.
resumes() {
  "${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/$1" log.metrics="$WORK/${1}2.jsonl" \
    > "$WORK/${1}2.log" 2>&1 || fail "resume after $1: $(tail -5 "$WORK/${1}2.log")"
  grep -q "resume: .*step_00000004.ckpt at step 4" "$WORK/${1}2.log" ||
    fail "$1: did not resume at step 4"
  diff <(losses "$WORK/ref.jsonl" | sed -n '5,12p') <(losses "$WORK/${1}2.jsonl") ||
    fail "$1: resumed losses differ from the uninterrupted run"
}

# The reference: 12 uninterrupted steps.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/ref" log.metrics="$WORK/ref.jsonl" \
  checkpoint.resume=none > "$WORK/ref.log" 2>&1 || fail "reference run: $(tail -5 "$WORK/ref.log")"

# 1. A rank killed with SIGKILL mid-training: the job ends within 30 s naming the lost rank;
#    resume continues from the last complete checkpoint with the reference's losses.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/kill" log.metrics="$WORK/kill.jsonl" \
  checkpoint.resume=none train.steps=12 --debug-sleep-after 6 > "$WORK/kill.log" 2>&1 &
JOB=$!
for _ in $(seq 100); do grep -q "^step 6/" "$WORK/kill.log" 2>/dev/null && break; sleep 0.2; done
VICTIM=$(pgrep -f "^$BIN train.*$WORK/kill" | tail -1)
[[ -n "$VICTIM" ]] || fail "no rank process found to kill"
T0=$SECONDS
kill -9 "$VICTIM"
wait $JOB
RC=$?
((SECONDS - T0 <= 30)) || fail "job took $((SECONDS - T0)) s to end after a rank was killed"
((RC != 0)) || fail "job exited 0 after a rank was killed"
grep -qiE "rank [01].*(killed|exited|signal)|signal 9|Killed" "$WORK/kill.log" ||
  fail "no message naming the lost rank: $(tail -5 "$WORK/kill.log")"
ls "$WORK/kill/step_00000004.ckpt" > /dev/null || fail "checkpoint of step 4 missing"
resumes kill
echo "ok: SIGKILL of a rank ended the job in $((SECONDS - T0)) s; resume matched"

# 2. SIGTERM to one rank: every rank checkpoints at the next step boundary and exits 0.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]/#checkpoint.interval=4/checkpoint.interval=100}" \
  checkpoint.dir="$WORK/term" log.metrics="$WORK/term.jsonl" checkpoint.resume=none --debug-sleep-after 6 > "$WORK/term.log" 2>&1 &
JOB=$!
for _ in $(seq 100); do grep -q "^step 6/" "$WORK/term.log" 2>/dev/null && break; sleep 0.2; done
kill -TERM "$(pgrep -f "^$BIN train.*$WORK/term" | tail -1)"
wait $JOB || fail "SIGTERM run exited non-zero: $(tail -5 "$WORK/term.log")"
grep -q "stopping on a signal" "$WORK/term.log" || fail "no signal stop message"
ls "$WORK"/term/step_*.ckpt > /dev/null || fail "no checkpoint written on SIGTERM"
echo "ok: SIGTERM checkpointed and exited cleanly"

# 2b. SIGUSR1 as launch/train.sh sends it on Ctrl-C (SIGTERM to mpirun would kill the ranks a
# second later): to mpirun, and to the ranks of its session directly (an mpirun under Open MPI's
# isolated launcher did not forward it, on the GPU machine). Every rank stops at a step boundary
# with a checkpoint and the job exits 0. Then the ranks alone, as if mpirun did not forward it.
for who in both ranks; do
  setsid "${MPIRUN[@]}" "$BIN" "${COMMON[@]/#checkpoint.interval=4/checkpoint.interval=100}" \
    checkpoint.dir="$WORK/usr1_$who" log.metrics="$WORK/usr1_$who.jsonl" checkpoint.resume=none \
    --debug-sleep-after 6 > "$WORK/usr1_$who.log" 2>&1 &
  JOB=$!
  for _ in $(seq 100); do grep -q "^step 6/" "$WORK/usr1_$who.log" 2>/dev/null && break; sleep 0.2; done
  if [[ $who == both ]]; then kill -USR1 $JOB; fi
  pkill -USR1 -s "$JOB" -x longnet ||
    fail "SIGUSR1 ($who): no rank left to signal: $(tail -5 "$WORK/usr1_$who.log")"
  wait $JOB || fail "SIGUSR1 ($who): the job exited non-zero: $(tail -5 "$WORK/usr1_$who.log")"
  grep -q "stopping on a signal" "$WORK/usr1_$who.log" ||
    fail "SIGUSR1 ($who): no signal stop message: $(tail -5 "$WORK/usr1_$who.log")"
  ls "$WORK"/usr1_$who/step_*.ckpt > /dev/null || fail "SIGUSR1 ($who): no checkpoint written"
done
echo "ok: SIGUSR1 (to mpirun and the ranks, then the ranks alone) checkpointed on every rank and exited 0"

# 2c. A stop signal between two micro-steps of a step (train.grad_accumulation 3; a step of
#     2^20 micro-steps would otherwise keep the signal waiting for hours): the step is dropped,
#     step 6's state is checkpointed, the job exits 0, and the resume gives the uninterrupted
#     run's losses for steps 7 to 12 (the sampler and the generators taken back to the step's start).
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" train.grad_accumulation=3 checkpoint.dir="$WORK/ref3" \
  log.metrics="$WORK/ref3.jsonl" checkpoint.resume=none > "$WORK/ref3.log" 2>&1 ||
  fail "reference run with grad_accumulation 3: $(tail -5 "$WORK/ref3.log")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" train.grad_accumulation=3 checkpoint.dir="$WORK/micro" \
  log.metrics="$WORK/micro.jsonl" checkpoint.resume=none --debug-stop-in-step 6 \
  > "$WORK/micro.log" 2>&1 || fail "stop inside a step: exited non-zero: $(tail -5 "$WORK/micro.log")"
grep -q "stopping on a signal during step 7 (its micro-steps are dropped)" "$WORK/micro.log" ||
  fail "stop inside a step: no message: $(tail -5 "$WORK/micro.log")"
[[ -f "$WORK/micro/step_00000006.ckpt" && ! -e "$WORK/micro/step_00000007.ckpt" ]] ||
  fail "stop inside a step: step 6's checkpoint expected: $(ls "$WORK/micro")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" train.grad_accumulation=3 checkpoint.dir="$WORK/micro" \
  log.metrics="$WORK/micro2.jsonl" > "$WORK/micro2.log" 2>&1 ||
  fail "resume after a stop inside a step: $(tail -5 "$WORK/micro2.log")"
grep -q "resume: .*step_00000006.ckpt at step 6" "$WORK/micro2.log" || fail "micro: not resumed at 6"
diff <(losses "$WORK/ref3.jsonl" | sed -n '7,12p') <(losses "$WORK/micro2.jsonl") ||
  fail "stop inside a step: resumed losses differ from the uninterrupted run"
echo "ok: a stop between micro-steps dropped the step, checkpointed step 6; resume matched"

# 3. A crash half-way through writing the step-8 checkpoint: step 4's stays intact and resumes.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" --debug-crash-in-checkpoint 8 \
  checkpoint.dir="$WORK/crash" log.metrics="$WORK/crash.jsonl" checkpoint.resume=none \
  > "$WORK/crash.log" 2>&1 && fail "the crash run exited 0"
ls "$WORK/crash/step_00000008.ckpt" 2> /dev/null && fail "a half-written checkpoint has the final name"
resumes crash
echo "ok: crash during a checkpoint write lost nothing; resume matched"

# 4. A rank that stops responding (alive, never reaching the next collective): the collective
#    watchdog ends the whole job after train.collective_timeout_s, naming the collective, instead
#    of leaving the other rank waiting forever; the checkpoint of step 4 stays intact.
T0=$SECONDS
timeout 120 "${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/stall" \
  log.metrics="$WORK/stall.jsonl" checkpoint.resume=none train.collective_timeout_s=5 \
  log.dir="$WORK/stall_run" --debug-stall 1:6 > "$WORK/stall.log" 2>&1
RC=$?
((RC != 0 && RC != 124)) || fail "stalled job: exit status $RC (124: it hung): $(tail -5 "$WORK/stall.log")"
((SECONDS - T0 <= 60)) || fail "stalled job took $((SECONDS - T0)) s to end"
grep -q "stalling on purpose at step 6" "$WORK/stall.log" || fail "the stall did not happen"
grep -q "rank 0\] error: MPI .* has not finished after 5 s" "$WORK/stall.log" ||
  fail "no watchdog message: $(tail -5 "$WORK/stall.log")"
grep -q "^error: MPI .* has not finished after 5 s" "$WORK/stall_run/train.log" ||
  fail "the watchdog's error is not in train.log: $(tail -3 "$WORK/stall_run/train.log")"
resumes stall
echo "ok: a stalled rank ended the job in $((SECONDS - T0)) s with the watchdog's message; resume matched"
# 5. A stop signal during an evaluation (the final one, at step 12): the job checkpoints and exits
#    0; the resume does that evaluation first, with the uninterrupted run's loss, and ends.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/evalstop" log.metrics="$WORK/evalstop.jsonl" \
  checkpoint.resume=none --debug-stop-in-eval 12 > "$WORK/evalstop.log" 2>&1 ||
  fail "the run stopped during an evaluation exited non-zero: $(tail -5 "$WORK/evalstop.log")"
grep -q "eval at step 12: interrupted by a stop signal" "$WORK/evalstop.log" ||
  fail "the evaluation was not interrupted: $(tail -5 "$WORK/evalstop.log")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/evalstop" log.metrics="$WORK/evalstop.jsonl" \
  > "$WORK/evalstop2.log" 2>&1 || fail "resume after a stop in an evaluation: $(tail -5 "$WORK/evalstop2.log")"
grep -q "eval at step 12 (cut short by the stop before)" "$WORK/evalstop2.log" ||
  fail "the cut-short evaluation was not done at resume: $(tail -5 "$WORK/evalstop2.log")"
want=$(grep '"step":12,' "$WORK/ref.jsonl" | grep -o '"val_loss":[-0-9.e+]*')
got=$(grep '"step":12,' "$WORK/evalstop.jsonl" | grep -o '"val_loss":[-0-9.e+]*')
[[ -n "$want" && "$got" == "$want" ]] || fail "the resumed evaluation's $got is not the reference's $want"
# Step 12 has one row, as in the uninterrupted run: its loss and its evaluation together.
(($(grep -c '"step":12,' "$WORK/evalstop.jsonl") == 1)) && grep '"step":12,' "$WORK/evalstop.jsonl" |
  grep -q '"loss":.*"val_loss"' || fail "step 12's rows after the resume: $(grep '"step":12,' "$WORK/evalstop.jsonl")"
# A rerun of the now finished run does nothing: no evaluation again, no row added.
rows=$(grep -c '"val_loss"' "$WORK/evalstop.jsonl")
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/evalstop" log.metrics="$WORK/evalstop.jsonl" \
  > "$WORK/evalstop3.log" 2>&1 || fail "rerun of the finished run: $(tail -5 "$WORK/evalstop3.log")"
grep -q "this run is already finished" "$WORK/evalstop3.log" && ! grep -q "eval at step" "$WORK/evalstop3.log" ||
  fail "the rerun evaluated again or did not find the run finished: $(tail -5 "$WORK/evalstop3.log")"
(($(grep -c '"val_loss"' "$WORK/evalstop.jsonl") == rows)) || fail "the rerun added an evaluation row"
# Resumed with evaluations turned off, the held-back row is written without one, once.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/evaloff" log.metrics="$WORK/evaloff.jsonl" \
  checkpoint.resume=none --debug-stop-in-eval 12 > "$WORK/evaloff.log" 2>&1 ||
  fail "the second run stopped during an evaluation: $(tail -5 "$WORK/evaloff.log")"
# (a row of step 12 left by a resume that did not finish is dropped before the held-back one)
echo '{"step":12,"loss":0}' >> "$WORK/evaloff.jsonl"
for run in 2 3; do
  "${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/evaloff" log.metrics="$WORK/evaloff.jsonl" \
    eval.interval=0 > "$WORK/evaloff$run.log" 2>&1 || fail "resume $run with evaluations off: $(tail -5 "$WORK/evaloff$run.log")"
done
[[ $(grep -c '"step":12,' "$WORK/evaloff.jsonl") == 1 ]] && grep '"step":12,' "$WORK/evaloff.jsonl" |
  grep -q '"loss":[1-9]' && ! grep '"step":12,' "$WORK/evaloff.jsonl" | grep -q val_loss &&
  grep -q "step 12's row left by a resume that did not finish" "$WORK/evaloff2.log" ||
  fail "step 12's rows after resuming with evaluations off: $(grep '"step":12,' "$WORK/evaloff.jsonl")"
echo "ok: a stop during an evaluation checkpointed; the resume evaluated step 12 as the uninterrupted run did; a rerun did nothing; resumed with evaluations off, step 12 has one row"
# 6. `longnet eval` stopped by SIGINT to one rank after its first context length: every rank
#    stops before its next forward; the row done is printed and written to --json, marked as
#    stopped, and the status is 130. (Its validation split is long enough for 256K contexts.)
"$BIN" data build "$SRC" "$WORK/evaldata.tokens" --val-fraction 0.9 > "$WORK/evaldata.log" 2>&1 ||
  fail "eval data build: $(tail -3 "$WORK/evaldata.log")"
"${MPIRUN[@]}" "$BIN" eval --device cpu --checkpoint "$WORK/ref/step_00000012.ckpt" --data "$WORK/evaldata.tokens" \
  --context-lens 128,65536,131072,262144 --batches 8 --json "$WORK/evalsig.json" > "$WORK/evalsig.log" 2>&1 &
JOB=$!
for _ in $(seq 600); do grep -q "eval: \[1/4\]" "$WORK/evalsig.log" 2>/dev/null && break; sleep 0.1; done
grep -q "eval: \[1/4\]" "$WORK/evalsig.log" || fail "eval printed no first row: $(tail -5 "$WORK/evalsig.log")"
T0=$SECONDS
kill -INT "$(pgrep -f "^$BIN eval.*$WORK/evalsig" | tail -1)"
wait $JOB
RC=$?
((RC == 130)) || fail "eval stopped by SIGINT: status $RC, 130 expected: $(tail -5 "$WORK/evalsig.log")"
((SECONDS - T0 <= 20)) || fail "eval took $((SECONDS - T0)) s to stop"
grep -q "eval: stopped by signal 2 .* after [1-3] of 4 context length" "$WORK/evalsig.log" ||
  fail "no stop message: $(tail -5 "$WORK/evalsig.log")"
grep -q '"stopped_by_signal":2' "$WORK/evalsig.json" && grep -q '"context_len":128,' "$WORK/evalsig.json" ||
  fail "the partial --json lacks the stop or the first row: $(cat "$WORK/evalsig.json")"
grep -q '"context_len":262144' "$WORK/evalsig.json" && fail "eval ran every length after SIGINT"
echo "ok: eval stopped by SIGINT in $((SECONDS - T0)) s with status 130; the rows done are in its --json"
#    A SIGINT during the last (here the only) forward, after which no check for a stop comes:
#    the row is finished and kept, and the stop is still reported (status 130, the JSON marked).
"$BIN" eval --device cpu --checkpoint "$WORK/ref/step_00000012.ckpt" --data "$WORK/evaldata.tokens" \
  --context-lens 262144 --batches 1 --json "$WORK/evallast.json" > "$WORK/evallast.log" 2>&1 &
JOB=$!
for _ in $(seq 600); do grep -q " rank(s), device cpu" "$WORK/evallast.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -INT "$(pgrep -f "^$BIN eval.*$WORK/evallast" | tail -1)"
wait $JOB
RC=$?
((RC == 130)) || fail "eval with SIGINT during its last forward: status $RC, 130 expected: $(tail -3 "$WORK/evallast.log")"
grep -q '"stopped_by_signal":2' "$WORK/evallast.json" ||
  fail "eval with SIGINT during its last forward: the --json is not marked: $(cat "$WORK/evallast.json")"
echo "ok: eval with SIGINT during its last forward: status 130, $(grep -o 'stopped by signal 2.*' "$WORK/evallast.log" | cut -c1-90)"
# 7. `longnet eval` failing at its second context length (an error, as a failed forward's): the
#    row done is printed and written to --json with the error (no backtrace), and the status is
#    non-zero naming the lengths done.
"$BIN" eval --device cpu --checkpoint "$WORK/ref/step_00000012.ckpt" --data "$WORK/evaldata.tokens" \
  --context-lens 128,256 --batches 2 --json "$WORK/evalfail.json" --debug-fail-at-length 1 \
  > "$WORK/evalfail.log" 2>&1 && fail "eval with a failure at its second length exited 0"
grep -q "eval: \[1/2\] context 128" "$WORK/evalfail.log" &&
  grep -q "injected failure at context length 256.*the 1 of 2 context length(s) done are above and in" "$WORK/evalfail.log" ||
  fail "eval's failure at a later length: $(tail -5 "$WORK/evalfail.log")"
grep -q '"context_len":128,' "$WORK/evalfail.json" && grep -q '"context_lens_done":1,' "$WORK/evalfail.json" &&
  grep -q '"error":"eval: an injected failure at context length 256' "$WORK/evalfail.json" &&
  ! grep -q '"context_len":256' "$WORK/evalfail.json" && ! grep -q "Exception raised from" "$WORK/evalfail.json" ||
  fail "eval's --json after a failure at a later length: $(cat "$WORK/evalfail.json")"
echo "ok: eval failing at a later length kept and reported the row done"
# 8. A stop signal while a periodic checkpoint (step 4) is written: the job stops there, exit 0,
#    with no further step and no second checkpoint.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/savestop" log.metrics="$WORK/savestop.jsonl" \
  checkpoint.resume=none --debug-stop-in-save 4 > "$WORK/savestop.log" 2>&1 ||
  fail "the run stopped during a checkpoint write exited non-zero: $(tail -5 "$WORK/savestop.log")"
grep -q "stopping on a signal after step 4" "$WORK/savestop.log" ||
  fail "no stop after step 4's checkpoint: $(tail -5 "$WORK/savestop.log")"
[[ "$(ls "$WORK/savestop")" == *step_00000004.ckpt* && "$(ls "$WORK/savestop" | grep -c '\.ckpt$')" == 1 ]] ||
  fail "checkpoints after a stop during step 4's: $(ls "$WORK/savestop")"
echo "ok: a stop during a checkpoint's write stops at that step"
# 9. The metrics file fails to take step 6's row (a full disk): the job trains on to step 7, saves
#    its checkpoint and fails naming the write; the resume continues from step 7 with the
#    reference's losses.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/metricsfail" log.metrics="$WORK/metricsfail.jsonl" \
  checkpoint.resume=none --debug-metrics-fail-at 6 > "$WORK/metricsfail.log" 2>&1 &&
  fail "the run whose metrics write failed exited 0"
grep -q "error: metrics file .*write failed.*rows from step 6 on are missing; training stopped at step 7, whose checkpoint is in" "$WORK/metricsfail.log" &&
  [[ -f "$WORK/metricsfail/step_00000007.ckpt" ]] && ! grep -q '"step":[6-9],' "$WORK/metricsfail.jsonl" ||
  fail "a failed metrics write: $(tail -5 "$WORK/metricsfail.log"); $(ls "$WORK/metricsfail")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/metricsfail" log.metrics="$WORK/metricsfail.jsonl" \
  > "$WORK/metricsfail2.log" 2>&1 || fail "resume after a failed metrics write: $(tail -5 "$WORK/metricsfail2.log")"
grep -q "resume: .*step_00000007.ckpt at step 7" "$WORK/metricsfail2.log" &&
  diff <(losses "$WORK/ref.jsonl" | sed -n '8,12p') <(losses "$WORK/metricsfail.jsonl" | grep -v '"step":[1-5],') ||
  fail "the resume after a failed metrics write: $(tail -5 "$WORK/metricsfail2.log")"
# ... also when the step whose row fails is the last this job trains (--stop-after): no exit 0.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" checkpoint.dir="$WORK/metricsfail3" log.metrics="$WORK/metricsfail3.jsonl" \
  checkpoint.resume=none --debug-metrics-fail-at 6 --stop-after 6 > "$WORK/metricsfail3.log" 2>&1 &&
  fail "the run whose last row failed to write exited 0"
grep -q "rows from step 6 on are missing; training stopped at step 6, whose checkpoint" "$WORK/metricsfail3.log" &&
  [[ -f "$WORK/metricsfail3/step_00000006.ckpt" ]] ||
  fail "a failed metrics write at the last step: $(tail -3 "$WORK/metricsfail3.log")"
echo "ok: a failed metrics write saved a checkpoint before failing; the resume continued exactly"
# 10. The run folder (with its checkpoints) deleted while the job runs: the next save says so,
#     makes it again, locks it and writes its checkpoint there, with config.yaml, train.log and
#     metrics.jsonl again, every line so far in them; the job ends normally.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/gone" checkpoint.dir="$WORK/gone/checkpoints" \
  checkpoint.resume=none --debug-sleep-after 5 > "$WORK/gone.log" 2>&1 &
JOB=$!
for _ in $(seq 150); do grep -q "^step 5/" "$WORK/gone.log" 2>/dev/null && break; sleep 0.2; done
grep -q "^step 5/" "$WORK/gone.log" || fail "the run to delete the folder of printed no step 5"
rm -rf "$WORK/gone"
wait $JOB || fail "the run whose folder was deleted failed: $(tail -5 "$WORK/gone.log")"
grep -q "log.dir '$WORK/gone' (or its lock file) was removed or replaced while this job ran" "$WORK/gone.log" &&
  [[ -f "$WORK/gone/checkpoints/step_00000012.ckpt" && -f "$WORK/gone/.longnet.lock" &&
     -f "$WORK/gone/checkpoints/.longnet.lock" ]] ||
  fail "a run folder deleted mid-run: $(grep -m2 -i "warning\|error" "$WORK/gone.log"); $(ls -a "$WORK/gone" "$WORK/gone/checkpoints" 2>&1)"
grep -q "run folder: train.log, config.yaml, $WORK/gone/metrics.jsonl removed while this job ran; written again" "$WORK/gone.log" &&
  [[ -s "$WORK/gone/config.yaml" ]] && grep -q "^step 1/" "$WORK/gone/train.log" &&
  grep -q "^step 12/" "$WORK/gone/train.log" && grep -q '"step":1,' "$WORK/gone/metrics.jsonl" &&
  grep -q '"step":12,' "$WORK/gone/metrics.jsonl" ||
  fail "the run folder's files after it was deleted mid-run: $(ls -a "$WORK/gone"; grep -m2 "run folder" "$WORK/gone.log")"
echo "ok: a run folder deleted mid-run was made again and locked at the next save, its files whole"
echo "fault injection: all passed"
