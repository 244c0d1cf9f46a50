#!/usr/bin/env bash
# Checkpoints are never replaced behind the user's back: a start that would write over or delete
# checkpoints of checkpoint.dir is refused before anything changes, whatever the files are (good,
# damaged, unreadable, misnamed), and so are lock files and output paths that would be turned
# against them. Every case must end the 2-rank job non-zero within 20 s with one message naming
# the problem, and leave every checkpoint byte for byte as it was.
#   tests/checkpoint_guard.sh LONGNET_BINARY CONFIG DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 CONFIG=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
MPIRUN=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
source "$(dirname "${BASH_SOURCE[0]}")/expect_lib.sh"
# A good run leaves checkpoints at steps 4 and 8.
"${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source="$SRC" data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/ckpt" train.steps=8 checkpoint.interval=4 checkpoint.resume=none \
  log.dir="$WORK/run0" > "$WORK/good.log" 2>&1 || fail "the good run failed: $(tail -3 "$WORK/good.log")"
sums() { sha256sum "$1"/step_* 2>/dev/null | cut -c1-64 | tr '\n' ' '; }

# expect NAME DIR MESSAGE ARGS... : a copy of the good checkpoints in WORK/DIR (prepared by the
# caller), then `longnet train CONFIG ARGS` on it; the copy must be unchanged afterwards.
expect() {
  local name=$1 dir=$WORK/$2 message=$3
  shift 3
  local before
  before=$(sums "$dir")
  expect_failure "$name" "$message" 20 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' \
    data.path="$WORK/data.tokens" checkpoint.dir="$dir" log.dir="$WORK/run_$name" "$@"
  [[ "$(sums "$dir")" == "$before" ]] || fail "$name: the checkpoints changed"
  # (the run folder's config.yaml is written once a start's checks passed)
  [[ ! -e "$WORK/run_$name/config.yaml" ]] || fail "$name: a refused start wrote config.yaml"
  expect_ok "$name" "$message"
}
copy() { rm -rf "$WORK/$1" && cp -r "$WORK/ckpt" "$WORK/$1" && rm -f "$WORK/$1/.longnet.lock"; }

copy none; expect resume_none_over_checkpoints none "already holds 2 checkpoint(s)" \
  checkpoint.resume=none train.steps=4
# ... before the data is built (a first build of a large corpus can take hours).
expect_failure resume_none_before_data "already holds 2 checkpoint(s)" 20 "${MPIRUN[@]}" "$BIN" \
  train "$CONFIG" data.source="$SRC" data.path="$WORK/not_built.tokens" checkpoint.dir="$WORK/none" \
  log.dir="$WORK/run_none_data" checkpoint.resume=none
[[ ! -e "$WORK/not_built.tokens" ]] || fail "resume_none_before_data: the data was built first"
expect_ok resume_none_before_data "already holds 2 checkpoint(s)"
copy older; expect resume_older_path older "training on would replace it" \
  checkpoint.resume="$WORK/older/step_00000004.ckpt" train.steps=12
copy renamed; cp "$WORK/ckpt/step_00000004.ckpt" "$WORK/renamed/step_00000100.ckpt"
expect misnamed_checkpoint renamed "holds step 4 but its name says step 100" train.steps=120
copy damaged; : > "$WORK/damaged/step_00000012.ckpt"
expect damaged_newer damaged "truncated (the file is empty)" train.steps=16
copy garbage; head -c 5000 /dev/urandom > "$WORK/garbage/step_00000010.ckpt"
expect garbage_newer garbage "training on would replace it" train.steps=16
if [[ $(id -u) != 0 ]]; then  # root reads any file
  copy unreadable; cp "$WORK/ckpt/step_00000008.ckpt" "$WORK/unreadable/step_00000012.ckpt"
  chmod 000 "$WORK/unreadable/step_00000012.ckpt"
  expect unreadable_newer unreadable "cannot open" train.steps=16
  chmod 644 "$WORK/unreadable/step_00000012.ckpt"
fi
copy symlock; ln -s step_00000008.ckpt "$WORK/symlock/.longnet.lock"
expect lock_symlink symlock "is a symbolic link" train.steps=16
copy hardlock; ln "$WORK/hardlock/step_00000008.ckpt" "$WORK/hardlock/.longnet.lock"
expect lock_hard_link hardlock "hard link" train.steps=16
copy outputs; copy outputs_target
expect metrics_onto_checkpoint outputs "is a training checkpoint" train.steps=12 \
  log.metrics="$WORK/outputs_target/step_00000008.ckpt"
[[ "$(sums "$WORK/outputs_target")" == "$(sums "$WORK/ckpt")" ]] || fail "the metrics target changed"
# Outputs never land on the job's inputs: the token file, the config.
copy onto_data; cp "$WORK/data.tokens" "$WORK/data_copy.tokens"
expect metrics_onto_data onto_data "is an input of this job" train.steps=12 \
  log.metrics="$WORK/data.tokens"
cmp -s "$WORK/data.tokens" "$WORK/data_copy.tokens" || fail "metrics_onto_data: the data changed"
# (rank R traces into TRACE.rankR: rank 0's trace file is the config itself)
copy onto_config; cp "$CONFIG" "$WORK/config.yaml.rank0"
expect_failure trace_onto_config "is an input of this job" 20 "${MPIRUN[@]}" "$BIN" train \
  "$WORK/config.yaml.rank0" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/onto_config" log.dir="$WORK/run_trace" train.steps=12 \
  --trace "$WORK/config.yaml"
cmp -s "$CONFIG" "$WORK/config.yaml.rank0" || fail "trace_onto_config: the config changed"
expect_ok trace_onto_config "is an input of this job"
copy onto_other; printf 'not json\n' > "$WORK/notes.txt"
expect metrics_onto_text onto_other "does not hold longnet's metrics lines" train.steps=12 log.metrics="$WORK/notes.txt"
# A checkpoint of another model with parameters of the same shapes (other heads, activation,
# segments) is not resumed.
copy other_model
expect resume_other_model other_model "holds another model than this run's" train.steps=12 \
  model.activation=relu
# Checkpoints whose integrity record holds but whose values cannot be resumed (a run that had
# diverged, or a file edited elsewhere): refused before anything changes, the entry named.
FORGE="$(dirname "$BIN")/tests/checkpoint_forge"
forged() {  # forged NAME CASE MESSAGE: the newest checkpoint (8) forged as CASE
  copy "$1"
  "$FORGE" "$WORK/ckpt/step_00000008.ckpt" "$WORK/$1" "$2" || fail "$1: checkpoint_forge failed"
  expect "$1" "$1" "$3" train.steps=12
}
forged forged_param_nan param_nan "holds NaN or infinite values (the run had diverged"
forged forged_param_inf param_inf "holds NaN or infinite values"
forged forged_param_int param_int "has dtype Int, not a floating type"
forged forged_opt_nan opt_nan "optimizer state 'exp_avg' of"
forged forged_opt_negative opt_negative "holds negative values (Adam's second moments"
forged forged_opt_shape opt_shape "has shape [7] but the parameter's is"
forged forged_rng_float rng_float "its 'rng_cpu' entry has shape"
forged forged_rng_rows rng_rows "for each of the 2 ranks of its grid"
forged forged_rng_short rng_short "its 'rng_cpu' entry has shape"
forged forged_rng_zero rng_zero "its generator state of rank 0 (rng_cpu) is not one a generator accepts"
forged forged_grid_zero grid_zero "has no valid grid entry"
forged forged_bad_steps bad_steps "its bad_steps (9) exceeds its step (8)"
# A tensor whose pickled view reaches past its storage (sizes or strides edited, every zip CRC
# intact): refused as corrupted by every reader, never read (LibTorch builds such views unchecked).
VIEW="$(dirname "${BASH_SOURCE[0]}")/forge_tensor_view.py"
for w in sizes strides; do
  copy "view_$w"
  python3 "$VIEW" "$WORK/ckpt/step_00000008.ckpt" "$WORK/view_$w/step_00000008.ckpt" \
    token_embedding.weight "$w" || fail "view_$w: forge failed"
  expect "view_$w" "view_$w" "reach past its storage" train.steps=12
  expect_failure "view_${w}_generate" "reach past its storage" 20 "$BIN" generate --checkpoint \
    "$WORK/view_$w/step_00000008.ckpt" --device cpu --prompt x --max-new-tokens 1
  expect_ok "view_${w}_generate" "reach past its storage"
done
python3 "$VIEW" "$WORK/ckpt/step_00000008.ckpt" "$WORK/view_params.pt" token_embedding.weight \
  strides params || fail "view_params: forge failed"
expect_failure view_params "reach past its storage" 20 "$BIN" generate --checkpoint \
  "$WORK/view_params.pt" --config "$CONFIG" --device cpu --prompt x --max-new-tokens 1
expect_ok view_params "reach past its storage"
# Finite parameters whose activations overflow: generate and eval refuse the non-finite logits
# (never a NaN loss reported as a result, or ids sampled from NaN).
rm -rf "$WORK/huge" && mkdir -p "$WORK/huge"
"$FORGE" "$WORK/ckpt/step_00000008.ckpt" "$WORK/huge" norm_huge || fail "norm_huge: forge failed"
for g in --greedy --seed=1; do
  expect_failure "logits_not_finite$g" "are NaN or infinite" 20 "$BIN" generate --checkpoint \
    "$WORK/huge/step_00000008.ckpt" --device cpu --prompt x --max-new-tokens 3 "$g"
  expect_ok "logits_not_finite$g" "are NaN or infinite"
done
expect_failure loss_not_finite "the model's logits are not finite" 20 "$BIN" eval --checkpoint \
  "$WORK/huge/step_00000008.ckpt" --device cpu --data "$WORK/data.tokens" --context-lens 16 \
  --batches 1
expect_ok loss_not_finite "the model's logits are not finite"
# Resuming from a checkpoint elsewhere into a directory that holds another run's checkpoints:
# retention would delete them.
copy into_used
expect resume_from_elsewhere into_used "would count them as this run's and delete them" train.steps=12 \
  checkpoint.resume="$WORK/ckpt/step_00000004.ckpt"
# A directory where a checkpoint of this run would be written is found at the start.
copy blocked; mkdir "$WORK/blocked/step_00000012.ckpt"
expect checkpoint_name_is_dir blocked "with a checkpoint's name" train.steps=12
# retention_keeps NAME WHY ARGS...: a 3-step run with ARGS (another model, or only another
# log.dir) leaves a checkpoint, put into a copy of the good directory; a run continuing there
# with keep 2 neither counts nor deletes it, and names it as not this run's (WHY).
retention_keeps() {
  local name=$1 why=$2
  shift 2
  rm -rf "$WORK/$name" && mkdir -p "$WORK/$name"
  timeout 120 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
    checkpoint.dir="$WORK/$name" log.dir="$WORK/run_${name}_other" train.steps=3 \
    checkpoint.resume=none "$@" > "$WORK/${name}0.log" 2>&1 || fail "$name: $(tail -2 "$WORK/${name}0.log")"
  mv "$WORK/$name/step_00000003.ckpt" "$WORK/${name}_step3.ckpt"
  rm -rf "$WORK/$name" && copy "$name" && cp "$WORK/${name}_step3.ckpt" "$WORK/$name/step_00000003.ckpt"
  timeout 120 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
    checkpoint.dir="$WORK/$name" log.dir="$WORK/run_$name" train.steps=16 checkpoint.interval=4 \
    checkpoint.keep=2 > "$WORK/$name.log" 2>&1 || fail "$name: $(grep -m2 error "$WORK/$name.log")"
  cmp -s "$WORK/${name}_step3.ckpt" "$WORK/$name/step_00000003.ckpt" ||
    fail "$name: retention deleted or changed the other checkpoint"
  grep -q "step_00000003.ckpt' is not this run's ($why)" "$WORK/$name.log" ||
    fail "$name: not reported: $(grep -m2 "not this run" "$WORK/$name.log")"
  [[ ! -e "$WORK/$name/step_00000008.ckpt" && -e "$WORK/$name/step_00000012.ckpt" ]] ||
    fail "$name: retention did not keep the newest 2 of this run's: $(ls "$WORK/$name")"
  cases=$((cases + 1))
  echo "ok: $name"
}
retention_keeps retention_keeps_foreign_model "it holds another model" model.activation=relu
retention_keeps retention_keeps_other_runs_checkpoint \
  "it was written by the run of log.dir '.*run_retention_keeps_other_runs_checkpoint_other'"
# One checkpoint.dir continued by a new log.dir per job (a preemptible cluster's pattern): each
# checkpoint records the runs it continues, so after three jobs retention still keeps `keep` in
# all, never another job's as "not this run's". (Each job writes fewer checkpoints than keep:
# job 3 meets job 1's, which only the recorded chain names as this run's.)
rm -rf "$WORK/chain"
for job in 1 2 3; do
  timeout 120 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
    checkpoint.dir="$WORK/chain" log.dir="$WORK/run_chain$job" train.steps=$((job + 2)) \
    checkpoint.interval=1 checkpoint.keep=2 > "$WORK/chain$job.log" 2>&1 ||
    fail "chain job $job: $(grep -m2 error "$WORK/chain$job.log")"
done
! grep -q "not this run's" "$WORK"/chain*.log || fail "chain: $(grep -m1 "not this run's" "$WORK"/chain*.log)"
[[ "$(ls "$WORK/chain" | grep -c '^step_')" == 2 && -e "$WORK/chain/step_00000005.ckpt" ]] ||
  fail "chain: retention kept $(ls "$WORK/chain")"
cases=$((cases + 1))
echo "ok: retention_over_a_chain_of_jobs"
# A second job on the same run folder (log.dir) is refused while the first runs.
copy busy
"${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/busy" log.dir="$WORK/run_shared" train.steps=40 \
  --debug-sleep-after 8 > "$WORK/busy1.log" 2>&1 &
first=$!
for _ in $(seq 100); do grep -q "^step" "$WORK/busy1.log" 2>/dev/null && break; sleep 0.2; done
copy busy2
t0=$SECONDS
timeout 60 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/busy2" log.dir="$WORK/run_shared" train.steps=12 > "$WORK/busy2.log" 2>&1
rc=$?
# Refused the same way with a checkpoint.dir of its own to make: it is not left behind.
timeout 60 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/busy_new/ck" log.dir="$WORK/run_shared" train.steps=12 \
  > "$WORK/busy3.log" 2>&1 && fail "run_folder_in_use (new checkpoint.dir): exited 0"
[[ ! -e "$WORK/busy_new" ]] || fail "run_folder_in_use: the refused job left $WORK/busy_new behind"
kill "$first" 2>/dev/null; wait "$first" 2>/dev/null
((rc != 0)) || fail "run_folder_in_use: exited 0"
grep -qF "log.dir '$WORK/run_shared' is in use by another training job" "$WORK/busy2.log" ||
  fail "run_folder_in_use: $(grep -m2 error "$WORK/busy2.log")"
cases=$((cases + 1))
echo "ok: run_folder_in_use ($((SECONDS - t0)) s)"
# Links planted at the temporary names of the next checkpoints (symbolic, hard) are never
# written through, and other *.ckpt.tmp files (the user's) are left alone.
copy planted
printf 'precious\n' > "$WORK/victim1.txt" && printf 'precious\n' > "$WORK/victim2.txt"
ln -s ../victim1.txt "$WORK/planted/step_00000012.ckpt.tmp"
ln "$WORK/victim2.txt" "$WORK/planted/step_00000016.ckpt.tmp"
printf 'notes\n' > "$WORK/planted/notes.ckpt.tmp"
timeout 120 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/planted" log.dir="$WORK/run_planted" train.steps=16 checkpoint.interval=4 \
  > "$WORK/planted.log" 2>&1 || fail "planted_links: $(grep -m2 error "$WORK/planted.log")"
for v in victim1 victim2; do
  [[ "$(cat "$WORK/$v.txt")" == precious ]] || fail "planted_links: $v.txt was written through a link"
done
for s in 12 16; do
  f="$WORK/planted/step_000000$s.ckpt"
  [[ -f "$f" && ! -L "$f" && $(stat -c %h "$f") == 1 ]] || fail "planted_links: $f is not a file of its own"
done
[[ -e "$WORK/planted/notes.ckpt.tmp" ]] || fail "planted_links: the user's notes.ckpt.tmp was deleted"
cases=$((cases + 1))
echo "ok: planted_links"
# A complete checkpoint left under its temporary name (a stop between its write and its rename),
# resumed from by that name: it gets its own name first, so the next save does not remove it
# with the leftovers of interrupted writes.
copy tmpname && mv "$WORK/tmpname/step_00000008.ckpt" "$WORK/tmpname/step_00000008.ckpt.tmp"
timeout 120 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/tmpname" log.dir="$WORK/run_tmpname" train.steps=12 checkpoint.interval=4 \
  checkpoint.resume="$WORK/tmpname/step_00000008.ckpt.tmp" > "$WORK/tmpname.log" 2>&1 ||
  fail "resume_temporary_name: $(grep -m2 error "$WORK/tmpname.log")"
grep -q "resume: .*step_00000008.ckpt.tmp at step 8" "$WORK/tmpname.log" &&
  grep -q "renamed to .*/tmpname/step_00000008.ckpt, so that it is kept" "$WORK/tmpname.log" &&
  [[ -f "$WORK/tmpname/step_00000008.ckpt" && -f "$WORK/tmpname/step_00000012.ckpt" &&
     ! -e "$WORK/tmpname/step_00000008.ckpt.tmp" ]] ||
  fail "resume_temporary_name: $(tail -3 "$WORK/tmpname.log"); $(ls "$WORK/tmpname")"
cases=$((cases + 1))
echo "ok: resume_temporary_name"
# The good directory itself still resumes and trains on.
timeout 120 "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/ckpt" log.dir="$WORK/run0" train.steps=12 checkpoint.interval=4 \
  > "$WORK/resume.log" 2>&1 || fail "resume of the good run: $(grep -m2 error "$WORK/resume.log")"
grep -q "resume: .*step_00000008.ckpt at step 8" "$WORK/resume.log" || fail "did not resume at 8"
echo "checkpoint guard: all $cases cases passed"
