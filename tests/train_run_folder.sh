#!/usr/bin/env bash
# A run that explains itself, as a whole job (2 ranks): the run folder (log.dir) holds the
# resolved config.yaml (which loads back to the same config), train.log (rank 0's output,
# errors included) and metrics.jsonl with a UTC time and the elapsed seconds on every row;
# progress lines carry loss, speed and time; a re-run of the finished run says so and changes
# nothing; `train --print-ranks` gives the rank count of the config with its overrides; resumes
# beside other runs (a used folder, a shared checkpoint.dir, other data, a rank without the file).
#   tests/train_run_folder.sh LONGNET_BINARY CONFIG DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 CONFIG=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
MPIRUN=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
fail() { echo "FAIL: $*"; exit 1; }
COMMON=(train "$CONFIG" data.source="$SRC" data.path="$WORK/data.bin" log.interval=3)

# --print-ranks: the grid of the resolved config, overrides included; bad ones refused.
[[ $("$BIN" train "$CONFIG" --print-ranks) == 2 ]] || fail "--print-ranks of $CONFIG is not 2"
[[ $("$BIN" train "$CONFIG" grid.sequence_parallel=1 grid.data_parallel=3 --print-ranks) == 3 ]] ||
  fail "--print-ranks did not follow the grid overrides"
"$BIN" train "$CONFIG" grid.sequence_parallel=0 --print-ranks > "$WORK/bad.txt" 2>&1 &&
  fail "--print-ranks accepted grid.sequence_parallel=0"
grep -q "sequence_parallel" "$WORK/bad.txt" || fail "the --print-ranks error names no key: $(cat "$WORK/bad.txt")"

# A run with its folder.
# (eval.batches beyond what the validation split holds apart: capped with a warning)
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run" checkpoint.dir="$WORK/ck" \
  eval.batches=100000 > "$WORK/out1.txt" 2>&1 || fail "training failed: $(tail -3 "$WORK/out1.txt")"
grep -qE "warning: eval.batches = 100000 asks for [0-9]+ validation windows .* each evaluation reads [0-9]+ batch" \
  "$WORK/out1.txt" || fail "eval.batches was not capped: $(grep -m1 eval "$WORK/out1.txt")"
for f in config.yaml train.log metrics.jsonl; do
  [[ -s $WORK/run/$f ]] || fail "the run folder has no $f"
done
# config.yaml is the resolved config: loading it back resolves to the same text.
"$BIN" train "$WORK/run/config.yaml" --check-config 2 | tail -n +2 > "$WORK/again.yaml" ||
  fail "config.yaml does not load back"
cmp -s "$WORK/again.yaml" "$WORK/run/config.yaml" || fail "config.yaml does not resolve to itself"
# train.log: every line rank 0 printed, in order.
# (blank lines and mpirun's own notes, "--" and "[host:pid]" lines, left out of the comparison)
grep -vE "^\[|^--|^$" "$WORK/out1.txt" > "$WORK/stdout_lines.txt"
grep -v "^$" "$WORK/run/train.log" > "$WORK/log_lines.txt"
cmp -s "$WORK/stdout_lines.txt" "$WORK/log_lines.txt" ||
  fail "train.log is not the job's output: $(diff "$WORK/stdout_lines.txt" "$WORK/log_lines.txt" | head -5)"
grep -qE "^longnet train: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC, 2 rank" "$WORK/run/train.log" ||
  fail "train.log does not start with the start time"
# Progress lines: averaged over the interval, with elapsed time, ETA and the time of day.
grep -qE "^step 3/8 \| loss [0-9.]+ \| lr [0-9.e+-]+ \| [0-9]+ tok/s \| [0-9]+ ms/step \| elapsed [0-9]+:[0-9]{2}:[0-9]{2} \| ETA [0-9]+:[0-9]{2}:[0-9]{2} \| [0-9:]{8} UTC$" \
  "$WORK/run/train.log" || fail "no complete progress line at step 3: $(grep '^step' "$WORK/run/train.log" | head -2)"
python3 - "$WORK/run/metrics.jsonl" "$WORK/run/train.log" <<'PY' || fail "metrics or progress lines wrong"
import datetime, json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "loss" in r]
assert [r["step"] for r in steps] == list(range(1, 9)), [r["step"] for r in steps]
last = -1.0
for r in steps:
    t = datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((datetime.datetime.utcnow() - t).total_seconds()) < 3600, r["time"]
    assert r["elapsed_s"] >= last, (r["elapsed_s"], last)
    last = r["elapsed_s"]
# The loss at step 6 is the mean of steps 4..6 (the interval), as printed to 4 decimals.
line = [l for l in open(sys.argv[2]) if l.startswith("step 6/8")][0]
shown = float(re.search(r"loss ([0-9.]+)", line).group(1))
mean = sum(r["loss"] for r in steps[3:6]) / 3
assert abs(shown - mean) < 1e-4, (shown, mean)
print(f"metrics: {len(rows)} rows; step 6 line shows the interval mean {shown} ({mean:.6f})")
PY
rows=$(wc -l < "$WORK/run/metrics.jsonl")

# The plot (with whichever python is first on PATH: the script finds the project's) and the
# TensorBoard event files, read back with the tensorboard package.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=python3; [[ -x $ROOT/.venv/bin/python3 ]] && PY=$ROOT/.venv/bin/python3
if "$PY" -c "import matplotlib, tensorboard, torch" 2>/dev/null; then
  python3 "$ROOT/launch/plot_metrics.py" "$WORK/run" > "$WORK/plot.txt" 2>&1 ||
    fail "plot_metrics: $(tail -2 "$WORK/plot.txt")"
  [[ $(head -c 8 "$WORK/run/metrics.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
    fail "plot_metrics wrote no PNG"
  python3 "$ROOT/launch/metrics_to_tensorboard.py" "$WORK/run" > "$WORK/tb.txt" 2>&1 ||
    fail "metrics_to_tensorboard: $(tail -2 "$WORK/tb.txt")"
  "$PY" - "$WORK/run" <<'PY' || fail "the event files do not hold the metrics"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
run = sys.argv[1]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
acc = EventAccumulator(run + "/tensorboard")
acc.Reload()
for key, tag in (("loss", "train/loss"), ("lr", "train/lr"), ("val_loss", "val/loss")):
    want = [(r["step"], r[key]) for r in rows if key in r]
    got = [(e.step, e.value) for e in acc.Scalars(tag)]
    assert len(got) == len(want) and all(a == c and abs(b - d) <= 1e-6 * max(1, abs(d))
                                         for (a, b), (c, d) in zip(got, want)), (tag, got, want)
print(f"tensorboard: {len(acc.Scalars('train/loss'))} training losses read back")
PY
else
  echo "note: no python with matplotlib, tensorboard and torch; plot and event files not checked"
fi

# The same command again: finished, says so, writes no metrics, exits 0.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run" checkpoint.dir="$WORK/ck" \
  > "$WORK/out2.txt" 2>&1 || fail "the re-run failed: $(tail -3 "$WORK/out2.txt")"
grep -q "already finished.*step 8.*train.steps is 8.*raise train.steps" "$WORK/out2.txt" ||
  fail "the re-run did not say the run is finished: $(tail -3 "$WORK/out2.txt")"
grep -q "^step" "$WORK/out2.txt" && fail "the re-run trained"
[[ $(wc -l < "$WORK/run/metrics.jsonl") == "$rows" ]] || fail "the re-run wrote metrics"
grep -q "already finished" "$WORK/run/train.log" || fail "train.log lacks the re-run's output"

# Continued with more steps and another learning rate and seed: said at resume, and the run
# folder keeps the config the first steps were trained with.
cp "$WORK/run/config.yaml" "$WORK/first_config.yaml"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run" checkpoint.dir="$WORK/ck" \
  train.steps=9 optim.lr=1.0e-3 train.seed=8 > "$WORK/out4.txt" 2>&1 ||
  fail "the continued run failed: $(tail -3 "$WORK/out4.txt")"
grep -q "resume: warning: this run's config differs from the one .* optim.lr (0.002 there, 0.001 here); train.seed (7 there, 8 here)" \
  "$WORK/out4.txt" || fail "the changed keys were not named: $(grep -m1 'resume:' "$WORK/out4.txt")"
# (config.1.yaml is the first run's, with eval.batches=100000, kept when the re-run above wrote
# its own; config.2.yaml the re-run's)
grep -q "batches: 100000" "$WORK/run/config.1.yaml" || fail "config.1.yaml is not the first run's"
cmp -s "$WORK/first_config.yaml" "$WORK/run/config.2.yaml" ||
  fail "the earlier config was not kept as config.2.yaml: $(ls "$WORK/run")"
grep -q "lr: 0.001" "$WORK/run/config.yaml" || fail "config.yaml is not this run's"

# A new run (from step 0, its own checkpoints) in the same folder: the earlier rows are kept as
# metrics.1.jsonl, and metrics.jsonl holds this run's alone.
before=$(wc -l < "$WORK/run/metrics.jsonl")
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run" checkpoint.dir="$WORK/ck_new" \
  checkpoint.resume=none train.steps=3 > "$WORK/out5.txt" 2>&1 ||
  fail "the new run in the same folder failed: $(tail -3 "$WORK/out5.txt")"
grep -q "metrics: the rows of an earlier run in $WORK/run/metrics.jsonl kept as $WORK/run/metrics.1.jsonl" \
  "$WORK/out5.txt" || fail "the earlier rows were not said to be kept: $(grep -m1 metrics: "$WORK/out5.txt")"
[[ $(wc -l < "$WORK/run/metrics.1.jsonl") == "$before" ]] || fail "metrics.1.jsonl is not the earlier file"
[[ $(grep '"loss"' "$WORK/run/metrics.jsonl" | grep -o '^{"step":[0-9]*' | tr '\n' ' ') == \
   '{"step":1 {"step":2 {"step":3 ' ]] ||
  fail "metrics.jsonl does not hold the new run's steps alone: $(cut -c1-60 "$WORK/run/metrics.jsonl")"

# A resume from a checkpoint older than the last rows (a kill after it): the rows of the steps
# run again are removed first, so every step has one row, in order.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run_again" checkpoint.dir="$WORK/ck_again" \
  train.steps=6 checkpoint.interval=4 > "$WORK/out6.txt" 2>&1 || fail "run_again: $(tail -3 "$WORK/out6.txt")"
rm "$WORK/ck_again/step_00000006.ckpt"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run_again" checkpoint.dir="$WORK/ck_again" \
  train.steps=6 checkpoint.interval=4 > "$WORK/out7.txt" 2>&1 || fail "run_again: $(tail -3 "$WORK/out7.txt")"
grep -q "metrics: removed 2 rows after step 4 from $WORK/run_again/metrics.jsonl" "$WORK/out7.txt" ||
  fail "run_again: the removal was not said: $(grep -m1 'metrics:' "$WORK/out7.txt")"
[[ $(grep '"loss"' "$WORK/run_again/metrics.jsonl" | grep -o '^{"step":[0-9]*' | tr '\n' ' ') == \
   '{"step":1 {"step":2 {"step":3 {"step":4 {"step":5 {"step":6 ' ]] ||
  fail "run_again: steps repeated or missing: $(grep -o '^{"step":[0-9]*' "$WORK/run_again/metrics.jsonl" | tr '\n' ' ')"

# The first run (ck, at step 9) resumed in the folder that the new run (ck_new) used since: the
# folder's metrics.jsonl is that run's, kept aside whole, not cut at step 9 and continued.
new_rows=$(wc -l < "$WORK/run/metrics.jsonl")
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/run" checkpoint.dir="$WORK/ck" \
  train.steps=10 optim.lr=1.0e-3 train.seed=8 > "$WORK/out8.txt" 2>&1 ||
  fail "the resume after another run failed: $(tail -3 "$WORK/out8.txt")"
grep -q "metrics: the rows of an earlier run in $WORK/run/metrics.jsonl kept as $WORK/run/metrics.2.jsonl; this run starts a new one at step 9 (the run folder's config.yaml was another run's, of checkpoint.dir '$WORK/ck_new')" \
  "$WORK/out8.txt" || fail "the other run's rows were not kept aside: $(grep -m2 metrics: "$WORK/out8.txt")"
[[ $(wc -l < "$WORK/run/metrics.2.jsonl") == "$new_rows" ]] || fail "metrics.2.jsonl is not the other run's file"
[[ $(grep '"loss"' "$WORK/run/metrics.jsonl" | grep -o '^{"step":[0-9]*' | tr '\n' ' ') == '{"step":10 ' ]] ||
  fail "metrics.jsonl does not hold the resumed run's step 10 alone: $(cut -c1-40 "$WORK/run/metrics.jsonl")"

# checkpoint.dir left unset is log.dir/checkpoints: a new log.dir alone is a new run. A
# checkpoint.dir given alike to another log.dir continues that run, and says so.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/derived/" train.steps=3 > "$WORK/out9.txt" 2>&1 ||
  fail "the run without checkpoint.dir failed: $(tail -3 "$WORK/out9.txt")"
[[ -f $WORK/derived/checkpoints/step_00000003.ckpt ]] || fail "no checkpoint in log.dir/checkpoints"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/derived2" checkpoint.dir="$WORK/derived/checkpoints" \
  train.steps=4 > "$WORK/out10.txt" 2>&1 || fail "the shared checkpoint.dir run failed: $(tail -3 "$WORK/out10.txt")"
grep -q "resume: warning: .*step_00000003.ckpt was written by the run of log.dir '$WORK/derived/'" \
  "$WORK/out10.txt" || fail "continuing another log.dir's run was not said: $(grep -m1 resume: "$WORK/out10.txt")"

# A run whose checkpoints were moved, resumed from their new place in its own folder: its own
# metrics rows are continued (not set aside as another run's). Then a fresh start there whose
# checkpoint.dir is not where the folder's last run kept them (which still hold some): said.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/mv" train.steps=3 > "$WORK/out16.txt" 2>&1 ||
  fail "mv run: $(tail -3 "$WORK/out16.txt")"
mv "$WORK/mv/checkpoints" "$WORK/mv_ck"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/mv" checkpoint.dir="$WORK/mv_ck" train.steps=4 \
  > "$WORK/out17.txt" 2>&1 || fail "the moved run's resume: $(tail -3 "$WORK/out17.txt")"
[[ ! -e $WORK/mv/metrics.1.jsonl ]] || fail "the moved run's own rows were set aside: $(grep -m1 metrics: "$WORK/out17.txt")"
[[ $(grep '"loss"' "$WORK/mv/metrics.jsonl" | grep -o '^{"step":[0-9]*' | tr '\n' ' ') == \
   '{"step":1 {"step":2 {"step":3 {"step":4 ' ]] || fail "the moved run's rows are not steps 1-4"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/mv" train.steps=3 > "$WORK/out18.txt" 2>&1 ||
  fail "the fresh start in mv: $(tail -3 "$WORK/out18.txt")"
grep -q "warning: the run folder's config.yaml ($WORK/mv) is of a run that kept its checkpoints in '$WORK/mv_ck', which holds 2" \
  "$WORK/out18.txt" || fail "the other checkpoint.dir was not said: $(grep -m2 -E 'warning|resume' "$WORK/out18.txt")"

# A resume onto data of another tokenizer is refused (its ids mean other text), nothing written.
"$BIN" tokenizer train --vocab-size 400 --source "$SRC" --out "$WORK/sp.model" > "$WORK/sp.txt" 2>&1 ||
  fail "tokenizer train: $(tail -2 "$WORK/sp.txt")"
"$BIN" data build --tokenizer "sentencepiece:$WORK/sp.model" --source "$SRC" --out "$WORK/ds_sp" \
  --no-progress > "$WORK/ds.txt" 2>&1 || fail "data build: $(tail -2 "$WORK/ds.txt")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/tok" model.vocab_size=512 train.steps=3 \
  > "$WORK/out11.txt" 2>&1 || fail "the bytes run failed: $(tail -3 "$WORK/out11.txt")"
cp "$WORK/tok/config.yaml" "$WORK/tok_config.yaml"
"${MPIRUN[@]}" "$BIN" train "$CONFIG" data.path="$WORK/ds_sp" log.interval=3 log.dir="$WORK/tok" \
  model.vocab_size=512 train.steps=5 > "$WORK/out12.txt" 2>&1 && fail "the other tokenizer's data was trained on"
grep -q "error: resume: the checkpoint was trained on data tokenized by bytes, but data.path '$WORK/ds_sp' is tokenized by sentencepiece:" \
  "$WORK/out12.txt" || fail "the tokenizer change was not refused: $(grep -m1 error "$WORK/out12.txt")"
cmp -s "$WORK/tok_config.yaml" "$WORK/tok/config.yaml" || fail "the refused start rewrote config.yaml"
[[ ! -e $WORK/tok/checkpoints/step_00000005.ckpt ]] || fail "the refused start trained"

# The dataset's tokenizer file changed since the build: training (which reads only the shards)
# goes on, and says that generate and eval will refuse the file. (A data.source that is not what
# the dataset was built from is said too: it builds only a missing data.path.)
"$BIN" tokenizer train --vocab-size 420 --source "$SRC" --out "$WORK/sp.model" > "$WORK/sp2.txt" 2>&1 ||
  fail "tokenizer train: $(tail -2 "$WORK/sp2.txt")"
"${MPIRUN[@]}" "$BIN" train "$CONFIG" data.path="$WORK/ds_sp" log.dir="$WORK/tokw" model.vocab_size=512 \
  train.steps=3 data.source="$WORK/elsewhere" > "$WORK/out15.txt" 2>&1 ||
  fail "training on ds_sp failed: $(tail -3 "$WORK/out15.txt")"
grep -q "warning: data.source '$WORK/elsewhere' is not what data.path '$WORK/ds_sp' was built from ('$SRC'" \
  "$WORK/out15.txt" || fail "the other data.source was not said: $(grep -m2 'data' "$WORK/out15.txt")"
grep -q "warning: its tokenizer file changed since the build" "$WORK/out15.txt" ||
  fail "the changed tokenizer file was not said: $(grep -m1 'data: tok' "$WORK/out15.txt")"
# Its evaluation (at the last step) is in bits per token, not per byte, in the log and the metrics.
grep -q "eval at step 3: loss .*, bits per token " "$WORK/out15.txt" &&
  grep '"step":3,' "$WORK/tokw/metrics.jsonl" | grep -q '"val_bits_per_token":' &&
  ! grep -q val_bpb "$WORK/tokw/metrics.jsonl" || fail "tokenized data's evaluation unit: $(tail -1 "$WORK/tokw/metrics.jsonl")"

# A rank that cannot read the checkpoint rank 0 resumes from (checkpoint.dir on one host's disk:
# here each rank's working directory): named, with the fix, before the run folder is rewritten.
mkdir -p "$WORK/w0" "$WORK/w1"
A=("$BIN" "${COMMON[@]}" log.dir=run checkpoint.dir=ck train.steps=3)
mpirun --oversubscribe --allow-run-as-root --bind-to none -np 1 -wdir "$WORK/w0" "${A[@]}" : \
  -np 1 -wdir "$WORK/w1" "${A[@]}" > "$WORK/out13.txt" 2>&1 || fail "the MPMD run failed: $(tail -3 "$WORK/out13.txt")"
cp "$WORK/w0/run/config.yaml" "$WORK/w0_config.yaml"
A=("$BIN" "${COMMON[@]}" log.dir=run checkpoint.dir=ck train.steps=4)
mpirun --oversubscribe --allow-run-as-root --bind-to none -np 1 -wdir "$WORK/w0" "${A[@]}" : \
  -np 1 -wdir "$WORK/w1" "${A[@]}" > "$WORK/out14.txt" 2>&1 && fail "rank 1 resumed a checkpoint it cannot read"
grep -q "error: rank 1 cannot read the checkpoint that rank 0 resumes from (.*): every rank reads checkpoint.dir, so it must hold the same files on every host" \
  "$WORK/out14.txt" || fail "the unreadable checkpoint was not named: $(grep -m2 error "$WORK/out14.txt")"
cmp -s "$WORK/w0_config.yaml" "$WORK/w0/run/config.yaml" || fail "the refused start rewrote config.yaml"

# An error ends up in train.log too.
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" log.dir="$WORK/bad_run" checkpoint.dir="$WORK/ck_bad" \
  train.max_bad_steps=2 --debug-nan-at 0,1 > "$WORK/out3.txt" 2>&1 && fail "the poisoned run succeeded"
grep -q "^error: training stopped: 2 steps in a row" "$WORK/bad_run/train.log" ||
  fail "train.log lacks the error: $(tail -2 "$WORK/bad_run/train.log")"
# eval without --data scores the checkpoint's data.path: the data trained on, silently; other
# data at that path (rebuilt since) with a warning naming both.
CK=$WORK/derived/checkpoints/step_00000003.ckpt
EVAL=("$BIN" eval --checkpoint "$CK" --device cpu --context-lens 16 --batches 1)
"${EVAL[@]}" > "$WORK/eval1.txt" 2>&1 || fail "eval: $(tail -3 "$WORK/eval1.txt")"
grep -q "warning" "$WORK/eval1.txt" && fail "eval warned on the data trained on: $(grep -m1 warning "$WORK/eval1.txt")"
"$BIN" data build "$SRC/../docs" "$WORK/data.bin" > "$WORK/rebuild.txt" 2>&1 ||
  fail "rebuild: $(tail -2 "$WORK/rebuild.txt")"
"${EVAL[@]}" > "$WORK/eval2.txt" 2>&1 || fail "eval on other data: $(tail -3 "$WORK/eval2.txt")"
grep -q "eval: warning: .* (the checkpoint's data.path) is not the data checkpoint $CK (step 3) was trained with" \
  "$WORK/eval2.txt" || fail "eval on other data did not warn: $(head -5 "$WORK/eval2.txt")"
# A metrics file outside the run folders, used by run A, then by a new run B, then by A resumed:
# B's rows (written since A's) are kept aside, not continued by A's; every row names its run.
SH=(log.metrics="$WORK/shared.jsonl" checkpoint.interval=3)
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" "${SH[@]}" log.dir="$WORK/shA" train.steps=6 --stop-after 3 > "$WORK/sh1.txt" 2>&1 ||
  fail "shared metrics, run A: $(tail -3 "$WORK/sh1.txt")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" "${SH[@]}" log.dir="$WORK/shB" train.steps=3 > "$WORK/sh2.txt" 2>&1 ||
  fail "shared metrics, run B: $(tail -3 "$WORK/sh2.txt")"
"${MPIRUN[@]}" "$BIN" "${COMMON[@]}" "${SH[@]}" log.dir="$WORK/shA" train.steps=6 > "$WORK/sh3.txt" 2>&1 ||
  fail "shared metrics, run A resumed: $(tail -3 "$WORK/sh3.txt")"
grep -q "metrics: the rows of an earlier run in $WORK/shared.jsonl kept as $WORK/shared.2.jsonl; this run starts a new one at step 3 (its last rows were written by the run of log.dir '.*/shB' since this one's)" \
  "$WORK/sh3.txt" || fail "A's resume did not keep B's rows aside: $(grep -m2 metrics "$WORK/sh3.txt")"
[[ $(grep -o '"step":[0-9]*' "$WORK/shared.jsonl" | tr '\n' ' ') == '"step":4 "step":5 "step":6 ' ]] &&
  (($(grep -c '"run":".*/shA"}$' "$WORK/shared.jsonl") == 3)) &&
  (($(grep -c '"run":".*/shB"}$' "$WORK/shared.2.jsonl") == 4)) &&
  (($(grep -c '"run":".*/shA"}$' "$WORK/shared.1.jsonl") == 4)) ||
  fail "the shared metrics files: $(cat "$WORK"/shared*.jsonl | cut -c1-60)"
echo "ok: a metrics file shared by two runs: a resume keeps the other run's later rows aside"
echo "run folder: all passed"
