#!/usr/bin/env bash
# The bad-input table (README "When things go wrong"): every case must end the 2-rank job with a
# non-zero status within 20 s, print one message naming the problem, and leave the existing
# checkpoints byte for byte as they were.
#   tests/bad_inputs.sh LONGNET_BINARY CONFIG DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 CONFIG=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
MPIRUN=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
DATA="data.source=$SRC data.path=$WORK/data.tokens"
source "$(dirname "${BASH_SOURCE[0]}")/expect_lib.sh"
# A good run leaves checkpoints at steps 4 and 8 to guard.
"${MPIRUN[@]}" "$BIN" train "$CONFIG" $DATA checkpoint.dir="$WORK/ckpt" train.steps=8 \
  checkpoint.interval=4 checkpoint.resume=none log.metrics="$WORK/m.jsonl" > "$WORK/good.log" 2>&1 ||
  fail "the good run failed: $(tail -3 "$WORK/good.log")"
SUM=$(cat "$WORK"/ckpt/*.ckpt | md5sum)

# expect NAME MESSAGE [env ...] -- ARGS... : runs `longnet ARGS` on 2 ranks.
expect() {
  local name=$1 message=$2
  shift 2
  expect_failure "$name" "$message" 20 "${MPIRUN[@]}" "$BIN" "$@"
  [[ "$(cat "$WORK"/ckpt/*.ckpt | md5sum)" == "$SUM" ]] || fail "$name: the checkpoints changed"
  expect_ok "$name" "$message"
}
T0=(train "$CONFIG" $DATA log.metrics="$WORK/m2.jsonl")  # T without checkpoint.dir
T=("${T0[@]}" checkpoint.dir="$WORK/ckpt")

# Configs.
printf 'model:\n  num_haeds: 4\n' > "$WORK/unknown.yaml"
expect config.unknown_key "did you mean 'model.num_heads'" train "$WORK/unknown.yaml"
printf 'model:\n  d_model: 64\n  d_model: 128\n' > "$WORK/dup.yaml"
expect config.duplicate_key "duplicate" train "$WORK/dup.yaml"
expect config.wrong_type "model.d_model" "${T[@]}" model.d_model=abc
python3 -c "print('x: ' + '[' * 100000 + ']' * 100000)" > "$WORK/deep.yaml"
expect config.deep_nesting "deep.yaml:1: lists or mappings nested more than 64 deep" train \
  "$WORK/deep.yaml"
expect config.octal "leading zero" "${T[@]}" train.seed=010
expect config.override_trailing "',8' follows the bracketed value" "${T[@]}" \
  'model.dilation_rates=[1,2,4] ,8'
expect config.override_lines "an override is one line" "${T[@]}" $'train.seed=5\n---\n9'
expect config.override_no_value "has no '=value'" "${T[@]}" train.steps
expect config.yes_bool "model.activation_checkpointing" "${T[@]}" model.activation_checkpointing=yes
expect config.zero_size "data.seq_len" "${T[@]}" data.seq_len=0
expect config.negative_size "train.steps" "${T[@]}" train.steps=-3
expect config.list_lengths "model.dilation_rates" "${T[@]}" model.dilation_rates=[1,2]
expect config.heads_width "does not divide d_model" "${T[@]}" model.num_heads=3
expect config.head_dim_8 "multiple of 8" "${T[@]}" model.d_model=48 model.num_heads=4
expect config.seq_sp "grid.sequence_parallel" "${T[@]}" data.seq_len=127
expect config.segment_nesting "neither divides the local length" "${T[@]}" model.segment_lengths=[32,64,96]
expect config.grid_world "but the job has 2 ranks" "${T[@]}" grid.data_parallel=2
printf 'model: [1, 2\n' > "$WORK/syntax.yaml"
expect config.syntax "YAML syntax error" train "$WORK/syntax.yaml"
expect config.missing_file "does not exist" train "$WORK/nope.yaml"
# Malformed documents on which yaml-cpp itself never returns: refused before it parses.
printf '"x" ,a\n' > "$WORK/trap1.yaml"
expect config.parser_trap_root "must be a mapping of sections" train "$WORK/trap1.yaml"
printf -- '- a\n,b\n' > "$WORK/trap2.yaml"
expect config.parser_trap_line "a line starting with ','" train "$WORK/trap2.yaml"
# One not known yet (simulated): the parse runs in a child with a time limit first.
cp "$CONFIG" "$WORK/hang.yaml"
expect config.parser_guard "the YAML parser did not finish" train "$WORK/hang.yaml" \
  --debug-parser-hang
# Config files that are not regular files or not config-sized: refused before reading (a FIFO
# would block, a device never ends).
mkfifo "$WORK/fifo.yaml"
expect config.fifo "is a FIFO" train "$WORK/fifo.yaml"
expect config.device "is a character device" train /dev/zero
head -c 2000000 /dev/zero | tr '\0' '#' > "$WORK/huge.yaml"
expect config.huge "at most 1048576 are read" train "$WORK/huge.yaml"
expect config.directory "is a directory" train "$WORK"
expect train.no_config "no config given" train
# Numbers from configs and flags: range-checked before any arithmetic.
expect number.eps_zero_in_float32 "optim.eps" "${T[@]}" optim.eps=1e-50
expect number.huge_segment "model.segment_lengths[0]" "${T[@]}" model.segment_lengths=[1125899906842624]
expect number.int_wrap "data.batch_size" "${T[@]}" data.batch_size=2147483648
expect number.check_config_zero "--check-config: 0 is out of range" "${T[@]}" --check-config 0
expect number.check_config_wrap "--check-config: 4294967298 is out of range" "${T[@]}" --check-config 4294967298
expect number.flag_overflow "--stop-after: 99999999999999999999 is out of range; it must be >= 0" "${T[@]}" --stop-after 99999999999999999999
expect number.bench_zero_len "--seq-lens: 0 is out of range" bench attention --device cpu --seq-lens 0
# Paths the job will write: checked at start, before any training.
expect paths.ckpt_dir_is_file "not a directory" "${T0[@]}" checkpoint.dir="$CONFIG"
expect paths.ckpt_dir_under_file "cannot be created" "${T0[@]}" checkpoint.dir="$CONFIG/sub"
mkfifo "$WORK/fifo.jsonl"
expect paths.metrics_fifo "is a FIFO" train "$CONFIG" $DATA checkpoint.dir="$WORK/c_metrics" \
  log.metrics="$WORK/fifo.jsonl"
expect paths.metrics_dir "is a directory" train "$CONFIG" $DATA checkpoint.dir="$WORK/c_metrics" \
  log.metrics="$WORK"
# A second job pointed at a checkpoint directory in use: refused at start, naming the holder.
"${MPIRUN[@]}" "$BIN" train "$CONFIG" $DATA checkpoint.dir="$WORK/c_busy" checkpoint.resume=none \
  log.metrics="$WORK/busy.jsonl" train.steps=400 --debug-sleep-after 1 > "$WORK/busy.log" 2>&1 &
BUSY=$!
for _ in $(seq 100); do grep -q "^step 1/" "$WORK/busy.log" && break; sleep 0.2; done
expect paths.ckpt_dir_in_use "in use by another training job" train "$CONFIG" $DATA \
  checkpoint.dir="$WORK/c_busy" log.metrics="$WORK/busy2.jsonl"
kill $BUSY 2>/dev/null; wait $BUSY 2>/dev/null
# Flags.
expect flag.unknown "unknown flag --stpo-after" "${T[@]}" --stpo-after 3
expect flag.missing_value "--stop-after needs a value" "${T[@]}" --stop-after
expect flag.bad_number "is not a whole number" "${T[@]}" --stop-after x3
# Data files.
expect data.missing "does not exist" train "$CONFIG" data.source='""' data.path="$WORK/none.tokens" \
  checkpoint.dir="$WORK/ckpt"
# (data.source has no default: a data.path typo is not built from some directory)
expect data.missing_no_source "does not exist and no data.source is set" train "$CONFIG" \
  data.path="$WORK/typo.tokens" checkpoint.dir="$WORK/ckpt"
[[ ! -e "$WORK/typo.tokens" ]] || fail "data.missing_no_source: built $WORK/typo.tokens"
# A model past memory is refused before data.source is built (a build can take hours) ...
expect train.past_memory "train: a model of" train "$CONFIG" data.source="$SRC" \
  data.path="$WORK/big.tokens" checkpoint.dir="$WORK/ck_big" data.batch_size=100000
[[ ! -e "$WORK/big.tokens" ]] || fail "train.past_memory: built $WORK/big.tokens first"
# ... and so is a checkpoint dir without room for one checkpoint (on a 1 MiB file system, where
# this machine lets a mount namespace make one).
mkdir -p "$WORK/small_fs"
if unshare -m sh -c 'mount -t tmpfs -o size=1m none "$1"' sh "$WORK/small_fs" 2> /dev/null; then
  expect_failure train.checkpoint_no_room "MiB free; one checkpoint of this model takes about" 30 \
    unshare -m sh -c 'mount -t tmpfs -o size=1m none "$1" && shift && exec "$@"' sh "$WORK/small_fs" \
    "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source="$SRC" data.path="$WORK/small.tokens" \
    checkpoint.dir="$WORK/small_fs/ck"
  [[ ! -e "$WORK/small.tokens" ]] || fail "train.checkpoint_no_room: built $WORK/small.tokens first"
  expect_ok train.checkpoint_no_room "MiB free"
else
  echo "skipped: train.checkpoint_no_room (no mount namespace here)"
fi
: > "$WORK/empty.tokens"
expect data.empty "tokens' is empty" train "$CONFIG" data.source='""' data.path="$WORK/empty.tokens" checkpoint.dir="$WORK/ckpt"
head -c 5000 "$CONFIG" > "$WORK/text.tokens"
expect data.not_token_file "not a longnet token file" train "$CONFIG" data.source='""' \
  data.path="$WORK/text.tokens" checkpoint.dir="$WORK/ckpt"
head -c 100000 "$WORK/data.tokens" > "$WORK/cut.tokens"
expect data.truncated "truncated" train "$CONFIG" data.source='""' data.path="$WORK/cut.tokens" \
  checkpoint.dir="$WORK/ckpt"
expect data.short "shorter than one sequence" "${T[@]}" data.seq_len=524288 \
  model.segment_lengths=[32,64,128] data.batch_size=1
# Ranks started with different configs (MPMD, or another file on another host).
MP1=(mpirun -np 1 --oversubscribe --allow-run-as-root --bind-to none)
expect_failure config.ranks_differ "resolved another config than rank 0" 20 "${MP1[@]}" "$BIN" \
  "${T[@]}" : -np 1 "$BIN" "${T[@]}" optim.lr=1e-2
expect_ok config.ranks_differ "resolved another config than rank 0"
# The same config, but data.path (relative) holds other data on each rank, as a stale copy on
# another host would: the ranks would train on pieces of different texts.
mkdir -p "$WORK/host_a" "$WORK/host_b"
cp "$WORK/data.tokens" "$WORK/host_a/d.tokens"
mkdir -p "$WORK/src_b" && find "$SRC" -maxdepth 1 -type f | sort | head -12 | xargs cp -t "$WORK/src_b"
"$BIN" data build "$WORK/src_b" "$WORK/host_b/d.tokens" > "$WORK/host_b.log" 2>&1 ||
  fail "data build for data.ranks_differ: $(tail -2 "$WORK/host_b.log")"
TD=(train "$CONFIG" data.source='""' data.path=d.tokens checkpoint.dir="$WORK/ck_hosts"
  log.metrics="$WORK/m_hosts.jsonl")
expect_failure data.ranks_differ "rank 1 opened other data than rank 0" 20 "${MP1[@]}" \
  --wdir "$WORK/host_a" "$BIN" "${TD[@]}" : -np 1 --wdir "$WORK/host_b" "$BIN" "${TD[@]}"
expect_ok data.ranks_differ "rank 1 opened other data than rank 0"
ln -sfn "$WORK/no_such_volume/data.tokens" "$WORK/dangling.tokens"
expect data.dangling_link "is a symbolic link to nothing" train "$CONFIG" data.path="$WORK/dangling.tokens" \
  checkpoint.dir="$WORK/ckpt" log.metrics="$WORK/m2.jsonl"
[[ -L "$WORK/dangling.tokens" ]] || fail "data.dangling_link: the link was replaced"
expect data.format_mismatch "is a byte-token file (made by longnet data build SRC_DIR OUT), not a" \
  "${T[@]}" data.format=longnet
# Checkpoints (the guarded ones are never written to: each case reads a copy).
cp -r "$WORK/ckpt" "$WORK/c_trunc"; f=$(ls "$WORK"/c_trunc/*.ckpt | tail -1)
head -c 2000 "$f" > "$f.x" && mv "$f.x" "$f"
expect ckpt.truncated "truncated" train "$CONFIG" $DATA checkpoint.resume="$f" checkpoint.dir="$WORK/c_trunc"
cp -r "$WORK/ckpt" "$WORK/c_flip"; f=$(ls "$WORK"/c_flip/*.ckpt | tail -1)
python3 -c "import sys;p=sys.argv[1];b=bytearray(open(p,'rb').read());b[len(b)//2]^=0xFF;open(p,'wb').write(b)" "$f"
expect ckpt.corrupted "corrupt" train "$CONFIG" $DATA checkpoint.resume="$f" checkpoint.dir="$WORK/c_flip"
# (a file every rank fails to read is rank 0's error, not a rank without the file)
! grep -q "cannot read the checkpoint that rank 0 resumes from" "$WORK/ckpt.corrupted.log" ||
  fail "ckpt.corrupted: a damaged file was blamed on the file system"
expect ckpt.other_shape "holds another model than this run's (model.dim_feedforward" train \
  "$CONFIG" $DATA checkpoint.dir="$WORK/ckpt" model.dim_feedforward=192 train.steps=12
cp -r "$WORK/ckpt" "$WORK/c_all"; for f in "$WORK"/c_all/*.ckpt; do head -c 1000 "$f" > "$f.x" && mv "$f.x" "$f"; done
expect ckpt.none_intact "none reads back intact" train "$CONFIG" $DATA checkpoint.dir="$WORK/c_all"
# ---- sharded datasets (issues 18, 20) ------------------------------------------------------
# expect1 NAME MESSAGE ARGS...: as expect, one process (data build writes one directory).
expect1() {
  local name=$1 message=$2
  shift 2
  expect_failure "$name" "$message" 0 "$BIN" "$@"
  expect_ok "$name" "$message"
}
# An override written as YAML (key:value) is answered with the key=value form.
expect1 cli.override_colon "an override is key=value (e.g. train.steps=5)" train "$CONFIG" train.steps:5
# Corrupts a copy of dataset DIR: python3 EXPR on each training shard's bytes b (bytearray).
corrupt() {
  cp -r "$DS" "$1"
  python3 -c "import sys,glob
for p in sorted(glob.glob(sys.argv[1] + '/train_*.bin')):
    b = bytearray(open(p, 'rb').read()); $2; open(p, 'wb').write(b)" "$1"
}
DS="$WORK/ds"
"$BIN" data build --tokenizer bytes --source "$SRC" --out "$DS" --shard-mb 0.05 --no-progress \
  > "$WORK/ds_build.log" 2>&1 || fail "building the dataset failed: $(tail -3 "$WORK/ds_build.log")"
# A validation share far over --val-fraction is said, at large fractions too (units 0 and 2 of
# three: 92% here against 0.5).
mkdir -p "$WORK/val_src" && head -c 10000 /dev/urandom | base64 > "$WORK/val_src/a.txt" &&
  head -c 900 /dev/urandom | base64 > "$WORK/val_src/b.txt" && cp "$WORK/val_src/b.txt" "$WORK/val_src/c.txt"
"$BIN" data build --tokenizer bytes:eot --source "$WORK/val_src" --out "$WORK/ds_val_half" \
  --val-fraction 0.5 --no-progress > "$WORK/ds_val_half.log" 2>&1 || fail "ds_val_half: $(tail -2 "$WORK/ds_val_half.log")"
grep -q "warning: the validation split holds 9[0-9]% of the tokens .*, more than --val-fraction 0.5" \
  "$WORK/ds_val_half.log" || fail "ds_val_half: no warning: $(tail -3 "$WORK/ds_val_half.log")"
TD=(train "$CONFIG" data.source='""' checkpoint.dir="$WORK/ck_data" checkpoint.resume=none
    log.metrics="$WORK/m3.jsonl")
mkfifo "$WORK/pipe"
expect data.fifo "pipe' is a FIFO (named pipe), not a regular file" "${TD[@]}" data.path="$WORK/pipe"
cp -r "$DS" "$WORK/ds_fifo" && rm "$WORK/ds_fifo/train_000001.bin" && mkfifo "$WORK/ds_fifo/train_000001.bin"
expect data.fifo_shard "train_000001.bin' is a FIFO" "${TD[@]}" data.path="$WORK/ds_fifo"
cp -r "$DS" "$WORK/ds_dir" && rm "$WORK/ds_dir/train_000002.bin" && mkdir "$WORK/ds_dir/train_000002.bin"
expect data.dir_shard "train_000002.bin' is a directory" "${TD[@]}" data.path="$WORK/ds_dir"
expect1 build.interrupted "stopped after 2 shard(s)" data build --tokenizer bytes --source "$SRC" \
  --out "$WORK/ds_cut" --shard-mb 0.05 --no-progress --debug-fail-after-shards 2
expect data.incomplete "is incomplete: its build was interrupted" "${TD[@]}" data.path="$WORK/ds_cut"
expect data.tokenizer_mismatch "its manifest records 'bytes'" "${TD[@]}" data.path="$DS" \
  data.tokenizer=bytes:eot model.vocab_size=257
expect data.vocab_small "model.vocab_size: 200 is smaller than the vocabulary of longnet dataset" \
  "${TD[@]}" data.path="$DS" model.vocab_size=200
corrupt "$WORK/ds_crc" "b[100] ^= 1"
expect data.checksum "is corrupt: its CRC-32" "${TD[@]}" data.path="$WORK/ds_crc"
corrupt "$WORK/ds_ids" "b[64:] = b'\xff' * (len(b) - 64)"
expect data.corrupt_ids "not below the vocabulary 256 of the dataset" "${TD[@]}" \
  data.path="$WORK/ds_ids" data.verify=sizes
cp -r "$DS" "$WORK/ds_shrink"
expect data.shrunk "shrank while in use" "${TD[@]}" data.path="$WORK/ds_shrink" \
  --debug-truncate-data-at 2
! grep -qiE "bus error|sigbus|signal 7" "$WORK/data.shrunk.log" || fail "data.shrunk: died of a signal"
printf '{"text": "fine"}\n{"text": "cut off\n' > "$WORK/bad.jsonl"
expect1 build.malformed_jsonl "bad.jsonl:2: not valid JSON" data build --tokenizer bytes \
  --source "$WORK/bad.jsonl" --out "$WORK/ds_bad" --no-progress
[[ ! -e "$WORK/ds_bad" ]] || fail "build.malformed_jsonl: left $WORK/ds_bad behind"
# JSON Lines with bare CR line ends: the error says so and how to convert.
printf '{"text": "a"}\r{"text": "b"}\r' > "$WORK/cr.jsonl"
expect1 build.jsonl_cr_lines "ends its lines with CR alone" data build --tokenizer bytes \
  --source "$WORK/cr.jsonl" --out "$WORK/ds_cr" --no-progress
# Every line skipped by --skip-bad-lines: the refusal says how many and why the first was.
printf '{"txt": "a"}\n{"txt": "b"}\n' > "$WORK/all_bad.jsonl"
expect1 build.all_lines_skipped '2 malformed JSON line(s) with --skip-bad-lines, the first: ' \
  data build --tokenizer bytes --source "$WORK/all_bad.jsonl" --out "$WORK/ds_all_bad" \
  --skip-bad-lines --no-progress
expect1 tokenizer.all_lines_skipped 'no field "text" (fields: '"'txt'"')' tokenizer train \
  --vocab-size 300 --source "$WORK/all_bad.jsonl" --out "$WORK/all_bad.model" --skip-bad-lines
printf '{"meta": {"text": "inner"}, "text": "fine"}\n{"text": "a", "text": "b"}\n' > "$WORK/dup.jsonl"
expect1 build.jsonl_duplicate_field 'dup.jsonl:2: the field "text" appears 2 times' data build \
  --tokenizer bytes --source "$WORK/dup.jsonl" --out "$WORK/ds_dup" --no-progress
if command -v gzip > /dev/null; then
  seq 1 200000 > "$WORK/nums.txt" && gzip -n "$WORK/nums.txt"
  head -c 50000 "$WORK/nums.txt.gz" > "$WORK/cut.txt.gz"
  expect1 build.truncated_gz "cut.txt.gz" data build --tokenizer bytes --source "$WORK/cut.txt.gz" \
    --out "$WORK/ds_gz" --no-progress
fi
echo x > "$WORK/afile"
expect1 build.out_is_file "exists and is not a directory" data build --tokenizer bytes \
  --source "$SRC" --out "$WORK/afile"
expect1 build.out_foreign "is not empty" data build --tokenizer bytes --source "$SRC" --out "$WORK/c_all"
expect1 build.out_other_inputs "built from other inputs (the tokenizer: bytes there, bytes:eot here)" \
  data build --tokenizer bytes:eot --source "$SRC" --out "$DS" --shard-mb 0.05
expect1 build.fifo_source "neither a directory nor a regular file" data build --tokenizer bytes \
  --source "$WORK/pipe" --out "$WORK/ds_pipe"
# Commands that write one output with every core, started as several ranks: refused on each,
# before anything is written (the copies would build into one output together).
expect build.under_mpirun "longnet data build: started as one of 2 ranks (mpirun -np)" data build \
  --tokenizer bytes:eot --source "$SRC" --out "$WORK/ds_mpi"
expect tok.train_under_mpirun "longnet tokenizer train: started as one of 2 ranks" tokenizer train \
  --vocab-size 300 --source "$SRC" --out "$WORK/mpi.model"
[[ ! -e "$WORK/ds_mpi" && ! -e "$WORK/mpi.model" ]] || fail "build.under_mpirun: an output was written"
# ---- end sharded datasets ------------------------------------------------------------------
# generate and eval use the tokenizer of the model's data, and refuse another.
"$BIN" data build --tokenizer bytes:eot --source "$SRC" --out "$WORK/ds_eot" --val-fraction 0.05 \
  --no-progress > "$WORK/ds_eot.log" 2>&1 || fail "ds_eot build: $(tail -2 "$WORK/ds_eot.log")"
"${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/ds_eot" model.vocab_size=300 optim.warmup_steps=1 \
  train.steps=2 checkpoint.dir="$WORK/ck_eot" checkpoint.resume=none log.metrics="$WORK/m_eot.jsonl" \
  > "$WORK/train_eot.log" 2>&1 || fail "train on ds_eot: $(grep -m2 error "$WORK/train_eot.log")"
CK_EOT=$(ls "$WORK"/ck_eot/*.ckpt | tail -1)
# An empty prompt starts a document where the tokenizer has an end-of-text token (CK_EOT's
# bytes:eot); without one (CK's bytes) it is refused, named by where it came from.
: > "$WORK/empty_prompt.txt"
"$BIN" generate --checkpoint "$CK_EOT" --device cpu --prompt-file "$WORK/empty_prompt.txt" --greedy \
  --max-new-tokens 4 > "$WORK/eot_gen.out" 2> "$WORK/eot_gen.err" ||
  fail "generate from an empty prompt: $(tail -2 "$WORK/eot_gen.err")"
grep -q "the prompt is empty: generating from the end-of-text token" "$WORK/eot_gen.err" ||
  fail "generate from an empty prompt: $(cat "$WORK/eot_gen.err")"
expect1 gen.empty_prompt_file "--prompt-file '$WORK/empty_prompt.txt' is empty, and tokenizer bytes has no end-of-text token" \
  generate --checkpoint "$(ls "$WORK"/ckpt/*.ckpt | tail -1)" --device cpu --prompt-file "$WORK/empty_prompt.txt"
expect1 gen.other_tokenizer "is not the tokenizer" generate --checkpoint "$CK_EOT" --device cpu \
  --prompt x --tokenizer bytes
expect1 eval.other_tokenizer "was made by tokenizer bytes" eval --checkpoint "$CK_EOT" \
  --device cpu --data "$WORK/data.tokens" --context-lens 32
# The tokenizer file itself replaced after the data was made (same name, other contents, as
# another `tokenizer train --out` onto it): generate compares contents, not names.
if "$BIN" tokenizer train --vocab-size 400 --source "$SRC" --out "$WORK/sp.model" \
  > "$WORK/sp.log" 2>&1; then
  "$BIN" data build --tokenizer sentencepiece:"$WORK/sp.model" --source "$SRC" --out "$WORK/ds_sp" \
    --val-fraction 0.05 --no-progress > "$WORK/ds_sp.log" 2>&1 || fail "ds_sp: $(tail -2 "$WORK/ds_sp.log")"
  "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.source='""' data.path="$WORK/ds_sp" model.vocab_size=512 \
    optim.warmup_steps=1 train.steps=2 checkpoint.dir="$WORK/ck_sp" checkpoint.resume=none \
    log.metrics="$WORK/m_sp.jsonl" > "$WORK/train_sp.log" 2>&1 ||
    fail "train on ds_sp: $(grep -m2 error "$WORK/train_sp.log")"
  CK_SP=$(ls "$WORK"/ck_sp/*.ckpt | tail -1)
  # A model too small for the tokenizer a missing data.path would be built with: refused before
  # the build (which on a real corpus takes hours), nothing built.
  expect config.vocab_before_build "256 is smaller than the vocabulary of data.tokenizer" train \
    "$CONFIG" data.source="$SRC" data.path="$WORK/ds_never" data.tokenizer=sentencepiece:"$WORK/sp.model" \
    model.vocab_size=256 checkpoint.dir="$WORK/ck_never" log.metrics="$WORK/m_never.jsonl"
  [[ ! -e "$WORK/ds_never" ]] || fail "config.vocab_before_build: the dataset was built"
  "$BIN" generate --checkpoint "$CK_SP" --device cpu --prompt x --max-new-tokens 3 \
    > "$WORK/gen_sp.log" 2>&1 || fail "generate with the sentencepiece model: $(tail -2 "$WORK/gen_sp.log")"
  # Bytes that are no UTF-8 are warned about by encode as by data build (SentencePiece reads
  # each as U+FFFD).
  printf 'caf\xe9\n' | "$BIN" tokenizer encode --tokenizer sentencepiece:"$WORK/sp.model" \
    > /dev/null 2> "$WORK/enc_latin1.log" || fail "encode latin-1: $(tail -2 "$WORK/enc_latin1.log")"
  grep -q "warning: 1 byte(s) of the input are not UTF-8" "$WORK/enc_latin1.log" ||
    fail "encode latin-1: no warning: $(cat "$WORK/enc_latin1.log")"
  # export carries the tokenizer: named in config.json, its file copied beside the model.
  "$BIN" export "$CK_SP" --out "$WORK/exp_sp" > "$WORK/exp_sp.log" 2>&1 ||
    fail "export with sentencepiece: $(tail -2 "$WORK/exp_sp.log")"
  cmp -s "$WORK/sp.model" "$WORK/exp_sp/tokenizer.model" &&
    grep -q '"tokenizer": {"kind": "sentencepiece", "spec": "sentencepiece:.*"file": "tokenizer.model"}' \
      "$WORK/exp_sp/config.json" || fail "export with sentencepiece: $(cat "$WORK/exp_sp/config.json")"
  # --out holding the model's own tokenizer file under the copy's name (here a hard link to it),
  # or the checkpoint under one of the export's temporary names: inputs, refused, left as they
  # are (a later export would remove the first as an earlier copy, and writes over the second).
  mkdir -p "$WORK/exp_src" && ln "$WORK/sp.model" "$WORK/exp_src/tokenizer.model"
  expect1 out.export_onto_tokenizer_source "exp_src/tokenizer.model' is an input of this job" \
    export "$CK_SP" --out "$WORK/exp_src"
  mkdir -p "$WORK/exp_tmpname" && cp "$CK_SP" "$WORK/exp_tmpname/.model.safetensors.new"
  expect1 out.export_input_in_out ".model.safetensors.new' is an input of this job" \
    export "$WORK/exp_tmpname/.model.safetensors.new" --out "$WORK/exp_tmpname"
  cmp -s "$CK_SP" "$WORK/exp_tmpname/.model.safetensors.new" && [[ -f "$WORK/exp_src/tokenizer.model" ]] ||
    fail "export changed an input in --out: $(ls -a "$WORK/exp_tmpname" "$WORK/exp_src")"
  # An export cut short before its config.json (which goes first) is exported again into its
  # folder: the tokenizer file left there is the one it writes.
  cp -r "$WORK/exp_sp" "$WORK/exp_cut" && rm "$WORK/exp_cut/config.json"
  "$BIN" export "$CK_SP" --out "$WORK/exp_cut" > "$WORK/exp_cut.log" 2>&1 ||
    fail "export again after one cut short: $(tail -2 "$WORK/exp_cut.log")"
  cmp -s "$WORK/exp_sp/config.json" "$WORK/exp_cut/config.json" || fail "the export again differs"
  # Only the tokenizer file an export named is its own: another tool's is not replaced, and a
  # later export of a model without one removes the earlier copy.
  cp -r "$WORK/exp_sp" "$WORK/exp_sp_bytes"
  "$BIN" export "$CK_EOT" --out "$WORK/exp_sp_bytes" > "$WORK/exp_sp_bytes.log" 2>&1 &&
    [[ ! -e "$WORK/exp_sp_bytes/tokenizer.model" ]] ||
    fail "export over an export with a tokenizer: $(ls "$WORK/exp_sp_bytes")"
  printf 'notes\n' > "$WORK/exp_sp_bytes/tokenizer.model"
  expect1 out.export_foreign_tokenizer "exp_sp_bytes/tokenizer.model' exists and is not from a longnet export" \
    export "$CK_SP" --out "$WORK/exp_sp_bytes"
  [[ "$(cat "$WORK/exp_sp_bytes/tokenizer.model")" == notes ]] || fail "export replaced a foreign tokenizer.model"
  "$BIN" tokenizer train --vocab-size 450 --source "$SRC" --out "$WORK/sp.model" > "$WORK/sp2.log" 2>&1 ||
    fail "retraining the tokenizer: $(tail -2 "$WORK/sp2.log")"
  expect1 gen.tokenizer_file_replaced "its contents changed since the training data was made" \
    generate --checkpoint "$CK_SP" --device cpu --prompt x
  "$BIN" export "$CK_SP" --out "$WORK/exp_sp2" > "$WORK/exp_sp2.log" 2>&1 &&
    grep -q "warning: the tokenizer file .* is no longer the one the model was trained with" \
      "$WORK/exp_sp2.log" && [[ ! -e "$WORK/exp_sp2/tokenizer.model" ]] ||
    fail "export with a replaced tokenizer file: $(tail -2 "$WORK/exp_sp2.log")"
  # Exported again into the folder that holds the copy made before the file was replaced: that
  # copy (the model's tokenizer, by its hash) is kept and named, not deleted.
  cp "$WORK/exp_sp/tokenizer.model" "$WORK/sp_before.model"
  "$BIN" export "$CK_SP" --out "$WORK/exp_sp" > "$WORK/exp_sp3.log" 2>&1 &&
    grep -q "the copy already in .*exp_sp is that tokenizer (by its hash) and was kept" \
      "$WORK/exp_sp3.log" && cmp -s "$WORK/sp_before.model" "$WORK/exp_sp/tokenizer.model" &&
    grep -q '"file": "tokenizer.model"' "$WORK/exp_sp/config.json" ||
    fail "export again with a replaced tokenizer file: $(tail -2 "$WORK/exp_sp3.log"; ls "$WORK/exp_sp")"
  # tokenizer train reads JSON lines as data build does: a malformed line stops it, or with
  # --skip-bad-lines is skipped and counted.
  python3 -c "import glob, json, sys
for p in sorted(glob.glob(sys.argv[1] + '/*.h'))[:20]:
    print(json.dumps({'text': open(p, errors='replace').read()}))" "$SRC" > "$WORK/good.jsonl"
  cat "$WORK/good.jsonl" "$WORK/bad.jsonl" > "$WORK/mixed.jsonl"
  expect1 tok.malformed_jsonl "mixed.jsonl:22: not valid JSON" tokenizer train --vocab-size 400 \
    --source "$WORK/mixed.jsonl" --out "$WORK/sp_mixed.model"
  "$BIN" tokenizer train --vocab-size 400 --source "$WORK/mixed.jsonl" --out "$WORK/sp_mixed.model" \
    --skip-bad-lines > "$WORK/sp_skip.log" 2>&1 || fail "tok.skip_bad_lines: $(tail -2 "$WORK/sp_skip.log")"
  grep -q ", 1 malformed JSON lines skipped" "$WORK/sp_skip.log" ||
    fail "tok.skip_bad_lines: not counted: $(tail -1 "$WORK/sp_skip.log")"
elif ! grep -q "has no SentencePiece support" "$WORK/sp.log"; then
  fail "tokenizer train: $(tail -2 "$WORK/sp.log")"
fi
for seed in 1 2 3 4 5 6; do  # its own bytes:eot; ids 257..299 (padding) are never sampled
  "$BIN" generate --checkpoint "$CK_EOT" --device cpu --prompt x --max-new-tokens 40 --seed $seed \
    > "$WORK/gen_eot.log" 2>&1 || fail "generate with the recorded tokenizer: $(tail -2 "$WORK/gen_eot.log")"
done
# An endless stdin ends in a clear error, not in the memory running out: a device that never
# ends is refused before anything is written, an endless pipe after 1 GiB (decode holds it).
for cmd in encode decode; do
  expect_failure tok.endless_device_$cmd "is a device that does not end" 5 \
    bash -c "'$BIN' tokenizer $cmd --tokenizer bytes < /dev/zero > '$WORK/endless.out'"
  [[ ! -s "$WORK/endless.out" ]] || fail "tokenizer $cmd < /dev/zero wrote output before refusing"
  expect_ok tok.endless_device_$cmd "is a device that does not end"
done
expect_failure tok.endless_pipe "stdin holds more than 1 GiB" 30 \
  bash -c "cat /dev/zero | '$BIN' tokenizer decode --tokenizer bytes"
expect_ok tok.endless_pipe "stdin holds more than 1 GiB"
[[ "$("$BIN" tokenizer encode --tokenizer bytes < /dev/null)" == "" ]] || fail "encode < /dev/null"
# ---- the command line (cli/) ----------------------------------------------------------------
CK=$(ls "$WORK"/ckpt/*.ckpt | tail -1)
# Ranks started with other flags, another command, or reading other data (MPMD here; another
# file at the same path on another host in practice): refused at once, never a hang.
EV=(eval --checkpoint "$CK" --device cpu --context-lens 64)
expect_failure ranks.flags_differ "rank 1 was started with --batches=2, rank 0 with --batches=1" 30 \
  "${MP1[@]}" "$BIN" "${EV[@]}" --data "$WORK/data.tokens" --batches 1 \
  : -np 1 "$BIN" "${EV[@]}" --data "$WORK/data.tokens" --batches 2
expect_ok ranks.flags_differ "rank 1 was started with --batches=2, rank 0 with --batches=1"
expect_failure ranks.commands_differ "rank 1 runs \`longnet eval\`, rank 0 \`longnet train\`" 30 \
  "${MP1[@]}" "$BIN" "${T[@]}" : -np 1 "$BIN" "${EV[@]}" --data "$WORK/data.tokens"
expect_ok ranks.commands_differ "rank 1 runs \`longnet eval\`, rank 0 \`longnet train\`"
mkdir -p "$WORK/src2" && cp "$SRC"/*.h "$WORK/src2/"
"$BIN" data build "$WORK/src2" "$WORK/other.tokens" --val-fraction 0.5 > /dev/null 2>&1 ||
  fail "ranks.data_differ: data build"
expect_failure ranks.data_differ "rank 1 read other validation data than rank 0" 30 \
  "${MP1[@]}" "$BIN" "${EV[@]}" --data "$WORK/data.tokens" : -np 1 "$BIN" "${EV[@]}" --data "$WORK/other.tokens"
expect_ok ranks.data_differ "rank 1 read other validation data than rank 0"
mkfifo "$WORK/out.fifo" "$WORK/fifo.png"
# Output paths: checked at the start, before any work (a FIFO there would block the write forever,
# a directory fail only after the run).
# A model whose segment lengths do not nest: a context length past its xPos range is refused
# before the shorter ones run.
"$BIN" train "$CONFIG" 'model.segment_lengths=[64,96]' 'model.dilation_rates=[1,2]' \
  data.seq_len=192 train.steps=1 optim.warmup_steps=0 grid.sequence_parallel=1 \
  data.source="$SRC" data.path="$WORK/data.tokens" checkpoint.dir="$WORK/ck_nonnested" \
  log.metrics="$WORK/m_nonnested.jsonl" eval.interval=0 data.batch_size=1 \
  > "$WORK/nonnested.log" 2>&1 || fail "training a non-nested model: $(tail -2 "$WORK/nonnested.log")"
CK_NN=$(ls "$WORK"/ck_nonnested/*.ckpt | tail -1)
expect1 eval.xpos_past_range "eval --context-lens: 80000 is past what this model's xPos can score" \
  eval --checkpoint "$CK_NN" --device cpu --context-lens 192,60000,80000 --batches 1 \
  --json "$WORK/nn.json"
grep -q "eval: \[1/3\]" "$WORK/eval.xpos_past_range.log" && fail "eval.xpos_past_range: a length ran first"
# A dataset of no training split: eval scores its validation split all the same.
mkdir -p "$WORK/val_only" && echo "a few words of validation text" > "$WORK/val_only/a.txt"
"$BIN" data build "$WORK/val_only" "$WORK/val_only.tokens" --val-fraction 0.99 > /dev/null 2>&1 ||
  fail "val_only: data build"
"$BIN" eval --checkpoint "$CK" --device cpu --data "$WORK/val_only.tokens" --context-lens 4 \
  > "$WORK/val_only.log" 2>&1 || fail "eval.no_training_split: $(tail -2 "$WORK/val_only.log")"
# An empty --prompt starts a document, as an empty prompt file does.
"$BIN" generate --checkpoint "$CK_EOT" --device cpu --prompt '' --max-new-tokens 3 --greedy \
  > /dev/null 2> "$WORK/empty_prompt.log" || fail "generate --prompt '': $(tail -2 "$WORK/empty_prompt.log")"
grep -q "the prompt is empty: generating from the end-of-text token" "$WORK/empty_prompt.log" ||
  fail "generate --prompt '': $(cat "$WORK/empty_prompt.log")"
expect1 out.eval_json_fifo "eval --json '$WORK/out.fifo' is a FIFO" eval --checkpoint "$CK" \
  --device cpu --json "$WORK/out.fifo"
expect1 out.eval_json_dir "eval --json '$WORK' is a directory" eval --checkpoint "$CK" \
  --device cpu --json "$WORK"
expect1 out.eval_plot_fifo "eval --plot '$WORK/fifo.png' is a FIFO" eval --checkpoint "$CK" \
  --device cpu --json "$WORK/e.json" --plot "$WORK/fifo.png"
# matplotlib adds ".png" to a name without an extension: only names it writes as given are taken.
expect1 out.eval_plot_ext "name a .png, .svg or .pdf file, the format follows the extension (got none)" \
  eval --checkpoint "$CK" --device cpu --json "$WORK/e.json" --plot "$WORK/plot"
[[ ! -e "$WORK/e.json" ]] || fail "out.eval_plot_ext: wrote $WORK/e.json before refusing --plot"
# Outputs never replace the command's inputs or a file of another kind.
cp "$CK" "$WORK/eval_in.ckpt"
expect1 out.eval_json_onto_checkpoint "is an input of this job" eval --checkpoint \
  "$WORK/eval_in.ckpt" --device cpu --data "$WORK/data.tokens" --json "$WORK/eval_in.ckpt"
cmp -s "$CK" "$WORK/eval_in.ckpt" || fail "out.eval_json_onto_checkpoint: the checkpoint changed"
# Other JSON is not a results file: a dataset's manifest, a corpus in JSON lines, a plain list
# are never replaced by --json (nor a trace dir's other files by bench generate --trace).
printf '{"format": "a manifest of someone else"}\n' > "$WORK/other_manifest.json"
printf '[1, 2, 3]\n' > "$WORK/list.json"
for f in other_manifest.json list.json; do
  cp "$WORK/$f" "$WORK/$f.orig"
  expect1 "out.eval_json_onto_$f" "does not hold longnet's results JSON" eval --checkpoint "$CK" \
    --device cpu --json "$WORK/$f"
  cmp -s "$WORK/$f" "$WORK/$f.orig" || fail "out.eval_json_onto_$f: the file changed"
done
mkdir -p "$WORK/tracedir" && printf 'notes\n' > "$WORK/tracedir/generate_p16_b1.json"
expect1 out.bench_trace_onto_notes "does not hold a profiler trace" bench generate --device cpu \
  --checkpoint "$CK" --prompt-lens 16 --batches 1 --steps 1 --warmup 2 --trace "$WORK/tracedir"
grep -q notes "$WORK/tracedir/generate_p16_b1.json" || fail "out.bench_trace_onto_notes: replaced"
expect1 out.bench_json_is_trace "is the --trace file of prompt 16, batch 1" bench generate \
  --device cpu --checkpoint "$CK" --prompt-lens 16 --batches 1 --steps 1 --warmup 2 \
  --trace "$WORK/tracedir2" --json "$WORK/tracedir2/generate_p16_b1.json"
expect1 out.eval_json_onto_data "is an input of this job" eval --checkpoint "$CK" --device cpu \
  --data "$WORK/data.tokens" --json "$WORK/data.tokens"
expect1 out.eval_json_into_dataset "lies inside an input of this job" eval --checkpoint "$CK" \
  --device cpu --data "$DS" --context-lens 32 --json "$DS/manifest.json"
cp "$CK" "$WORK/eval_in.ckpt.png"
expect1 out.eval_plot_onto_other "does not hold a PNG, SVG or PDF" eval --checkpoint "$CK" \
  --device cpu --json "$WORK/e.json" --plot "$WORK/eval_in.ckpt.png" --data "$WORK/data.tokens"
expect1 out.bench_attention_json "bench attention --json '$WORK/out.fifo' is a FIFO" bench attention \
  --device cpu --seq-lens 256 --tokens 256 --json "$WORK/out.fifo"
# Every --seq-lens value is checked before the first is measured.
expect1 bench.scaling_lengths_first "N = 16384 does not divide the total 24576" bench scaling \
  --device cpu --dtype float32 --warmup 0 --repeats 1 --no-dense --total-tokens 24576 \
  --seq-lens 8192,16384
expect1 out.bench_scaling_json "bench scaling --json '$WORK' is a directory" bench scaling \
  --device cpu --json "$WORK"
expect1 out.bench_generate_json "bench generate --json '$WORK/out.fifo' is a FIFO" bench generate \
  --checkpoint "$CK" --device cpu --dtype float32 --json "$WORK/out.fifo"
expect1 out.tokenizer_train "tokenizer train --out '$WORK/out.fifo' is a FIFO" tokenizer train \
  --vocab-size 400 --source "$SRC" --out "$WORK/out.fifo"
expect1 out.export "export --out '$WORK/out.fifo' is a FIFO" export "$CK" --out "$WORK/out.fifo"
# Bench flags are named as flags, not as the options they fill.
# A size that does not fit is refused before any is timed (found midway it lost the rows before).
expect1 bench.memory_first "bench attention (--head-dims 1024, --seq-lens 1024): 5 tensors" \
  bench attention --device cpu --dtype float32 --warmup 0 --repeats 1 --tokens 1048576 \
  --seq-lens 1024 --heads 16 --head-dims 8,1024 --segments 16 --rates 1 --forward-only
((EXPECT_DT <= 5)) || fail "bench.memory_first: refused after $EXPECT_DT s (timed first?)"
expect1 bench.rates_count "bench attention: --rates: " bench attention --device cpu --seq-lens 512 \
  --segments 64,128 --rates 1 --warmup 0 --repeats 1
# A failed export (a bad --dtype, a missing checkpoint) leaves no --out directory behind.
expect1 out.export_bad_dtype "dtype 'float64'" export "$CK" --out "$WORK/exp_new" --dtype float64
expect1 out.export_missing "cannot open" export "$WORK/none.ckpt" --out "$WORK/exp_new"
[[ ! -e "$WORK/exp_new" ]] || fail "out.export: a failed export left $WORK/exp_new behind"
# eval: one file for --json and --plot (the plot would replace the results), refused at start.
expect1 out.eval_json_is_plot "name the same file" eval --checkpoint "$CK" --device cpu \
  --json "$WORK/same.png" --plot "$WORK/same.png"
[[ ! -e "$WORK/same.png" ]] || fail "out.eval_json_is_plot: wrote $WORK/same.png"
# A reader that closes stdout early is not an error (`| head`): eval still exits 0 (`true` reads
# nothing and exits at once, so eval's table meets a closed pipe).
"$BIN" eval --checkpoint "$CK" --device cpu --context-lens 32,64 --batches 1 2> "$WORK/epipe.err" | true
rc=${PIPESTATUS[0]}
[[ $rc == 0 ]] || fail "eval | true: exit $rc, not 0: $(tail -2 "$WORK/epipe.err")"
# An output file that is the command's own redirected stdout: the table would end up in it.
timeout 60 "$BIN" eval --checkpoint "$CK" --device cpu --context-lens 32 --json "$WORK/redirect.json" \
  > "$WORK/redirect.json" 2> "$WORK/redirect.err" && fail "out.json_is_stdout: exited 0"
grep -q "is this command's standard output" "$WORK/redirect.err" ||
  fail "out.json_is_stdout: $(tail -1 "$WORK/redirect.err")"
cases=$((cases + 1))
# A command that fails leaves no empty output folders behind (made for --json and --plot).
expect1 out.eval_no_dirs_left "does not exist" eval --checkpoint "$CK" --device cpu \
  --json "$WORK/nd_json/a/e.json" --plot "$WORK/nd_plot/e.png" --context-lens 32 \
  --data "$WORK/no_such.tokens"
[[ ! -e "$WORK/nd_json" && ! -e "$WORK/nd_plot" ]] || fail "out.eval_no_dirs_left: folders left"
# Prompt files: regular files of at most 1 GiB (a FIFO blocks, /dev/zero never ends).
expect1 prompt.fifo "generate --prompt-file '$WORK/out.fifo' is a FIFO" generate --checkpoint "$CK" \
  --device cpu --prompt-file "$WORK/out.fifo"
expect1 prompt.device "generate --prompt-file '/dev/zero' is a character device" generate \
  --checkpoint "$CK" --device cpu --prompt-file /dev/zero
expect1 prompt.directory "generate --prompts-file '$WORK' is a directory" generate \
  --checkpoint "$CK" --device cpu --prompts-file "$WORK"
# A model too large for the machine is refused before it is built (with its key first when it
# cannot be built at all).
sed 's/^\( *d_model:\).*/\1 1048576/' "$CONFIG" > "$WORK/huge_model.yaml"
expect1 model.too_large "parameters) needs about" generate --random-init --config \
  "$WORK/huge_model.yaml" --device cpu --prompt a
sed 's/^\( *d_model:\).*/\1 100/' "$CONFIG" > "$WORK/bad_model.yaml"
expect1 model.bad_key "model.num_heads" bench generate --random-init --config "$WORK/bad_model.yaml" \
  --device cpu
# A flag or override given twice would silently take its last value.
expect1 flag.twice "generate: --prompt given twice" generate --checkpoint "$CK" --prompt a --prompt b
expect flag.twice_np2 "check comm: --elements given twice" check comm --elements 5 --elements 7
expect flag.comm_elements_mpi "give --elements 268435455 or fewer" check comm --elements 268435456
expect override.twice "train.steps is overridden twice with different values" "${T[@]}" \
  train.steps=5 train.steps=6
# A section's override merges into it: it conflicts with a key it sets, not with the others.
expect override.section_and_key "'model={num_heads: 2}' and 'model.num_heads=4' both set model.num_heads" \
  "${T[@]}" 'model={num_heads: 2}' model.num_heads=4
"$BIN" "${T[@]}" 'model={num_heads: 2}' model.d_model=64 model.dim_feedforward=128 \
  --check-config=2 > "$WORK/section_and_other.log" 2>&1 &&
  grep -q "num_heads: 2" "$WORK/section_and_other.log" &&
  grep -q "d_model: 64" "$WORK/section_and_other.log" ||
  fail "override.section_and_other: $(tail -2 "$WORK/section_and_other.log")"
# Arguments that are no flag, and positionals for commands that take none, would be ignored.
expect1 arg.single_dash "unexpected argument '-checkpoint' (flags start with --" generate \
  -checkpoint "$CK"
expect1 arg.stray "generate: unexpected argument 'X'" generate --checkpoint "$CK" --prompt a X
expect1 arg.stray_bench "bench attention: unexpected argument '512'" bench attention --device cpu 512
expect1 arg.empty_command "the command is empty ('')" ""
# bench attention: flags that must agree with every sequence length.
expect1 bench.tokens_multiple "--tokens 100 is not a positive multiple of --seq-lens 256" \
  bench attention --device cpu --tokens 100 --seq-lens 256
expect1 bench.weak_scaling_first "--weak-scaling-first 512 must divide the local length N / P = 256" \
  bench attention --device cpu --tokens 256 --seq-lens 256 --weak-scaling-first 512
# tokenizer train: one message per flag, naming it and its range.
TT=(tokenizer train --vocab-size 400 --source "$SRC" --out "$WORK/t.model")
expect1 tok.seed "tokenizer train --seed: 4294967296 is out of range" "${TT[@]}" --seed 4294967296
expect1 tok.threads "tokenizer train --threads: 5000 is out of range" "${TT[@]}" --threads 5000
expect1 tok.max_sentences "tokenizer train --max-sentences: 0 is out of range" "${TT[@]}" \
  --max-sentences 0
python3 -c "import random,sys;random.seed(1);c=[chr(0x4e00+i) for i in range(400)]
open(sys.argv[1],'w').write(''.join(''.join(random.choice(c) for _ in range(40))+'\n' for _ in range(3000)))" \
  "$WORK/cjk.txt"
if ! "$BIN" tokenizer train --vocab-size 300 --source "$WORK/cjk.txt" --out "$WORK/cjk.model" 2>&1 |
  grep -q "has no SentencePiece support"; then
  expect1 tok.vocab_chars "--vocab-size 300 is below the pieces SentencePiece needs" \
    tokenizer train --vocab-size 300 --source "$WORK/cjk.txt" --out "$WORK/cjk.model"
fi
# A reader that closes the pipe early (`| head`) ends the command with status 0, not SIGPIPE (141).
head -c 3000000 /dev/urandom | "$BIN" tokenizer encode --tokenizer bytes 2> "$WORK/pipe_encode.err" |
  head -c 10 > /dev/null
rc=${PIPESTATUS[1]}; ((rc == 0)) || fail "pipe.encode: exited $rc: $(cat "$WORK/pipe_encode.err")"
timeout 60 "$BIN" generate --checkpoint "$CK" --device cpu --prompt x --max-new-tokens 100000 \
  2> "$WORK/pipe_generate.err" | head -c 10 > /dev/null
rc=${PIPESTATUS[0]}; ((rc == 0)) || fail "pipe.generate: exited $rc: $(cat "$WORK/pipe_generate.err")"
cases=$((cases + 2))
echo "ok: pipe.encode, pipe.generate: status 0 when stdout closes early"
# A stop signal ends generation after the current token: the text so far is printed (the
# streamed line's newline, a batch's texts), and the status is 128 + the signal's number.
gen_stop() {  # NAME SIGNAL ARGS...
  local name=$1 sig=$2 rc=0
  shift 2
  "$BIN" generate --checkpoint "$CK" --device cpu --max-new-tokens 100000000 "$@" \
    > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local pid=$!
  for _ in $(seq 600); do  # until it generates: streamed text, or the batch's start line
    [[ -s "$WORK/$name.out" ]] || grep -q "generating up to" "$WORK/$name.err" && break
    sleep 0.1
  done
  kill -"$sig" $pid
  wait $pid || rc=$?
  ((rc == 128 + $(kill -l "$sig"))) || fail "$name: status $rc: $(tail -2 "$WORK/$name.err")"
  grep -q "stopped by signal $(kill -l "$sig")" "$WORK/$name.err" ||
    fail "$name: no stop message: $(tail -2 "$WORK/$name.err")"
  [[ "$(tail -c 1 "$WORK/$name.out" | od -An -tx1 | tr -d ' \n')" == 0a ]] ||
    fail "$name: the text does not end with a newline"
  cases=$((cases + 1))
}
gen_stop gen_stop.int INT --prompt x --stats
grep -q "tokens/s" "$WORK/gen_stop.int.err" || fail "gen_stop.int: no --stats line"
printf 'first\nsecond\n' > "$WORK/two_prompts.txt"
gen_stop gen_stop.term TERM --prompts-file "$WORK/two_prompts.txt"
grep -q "=== line 2 ===" "$WORK/gen_stop.term.out" || fail "gen_stop.term: the batch's texts are lost"
echo "ok: gen_stop.int, gen_stop.term: a stop signal prints what was generated"
# decode writes a long text in pieces, but checks every id first: a bad last id prints nothing.
n=$(yes 97 | head -10000 | tr '\n' ' ' | "$BIN" tokenizer decode --tokenizer bytes | wc -c)
[[ $n == 10000 ]] || fail "decode.pieces: 10000 ids gave $n bytes"
{ yes 97 | head -10000 | tr '\n' ' '; echo 300; } |
  "$BIN" tokenizer decode --tokenizer bytes > "$WORK/dec_bad.out" 2> "$WORK/dec_bad.err" &&
  fail "decode.bad_last_id: exited 0"
[[ ! -s "$WORK/dec_bad.out" ]] || fail "decode.bad_last_id: printed text before refusing"
grep -q "300" "$WORK/dec_bad.err" || fail "decode.bad_last_id: $(cat "$WORK/dec_bad.err")"
cases=$((cases + 2))
# Outputs that would replace a source file or a file of another kind are refused; so are settings
# that overflow (a tiny temperature) or score tokens twice (eval windows beyond the data).
mkdir -p "$WORK/osrc" && cp "$SRC"/*.cpp "$WORK/osrc/" && echo "my notes" > "$WORK/notes.txt"
mkdir -p "$WORK/hf" && echo '{"mine": 1}' > "$WORK/hf/config.json"
if ! "$BIN" tokenizer train --vocab-size 400 --source "$WORK/cjk.txt" --out "$WORK/probe.model" 2>&1 |
  grep -q "has no SentencePiece support"; then
  expect1 out.tok_in_source "is inside --source" \
    tokenizer train --vocab-size 400 --source "$WORK/osrc" --out "$WORK/osrc/x.model"
  expect1 out.tok_not_model "exists and is not a SentencePiece model" \
    tokenizer train --vocab-size 400 --source "$WORK/osrc" --out "$WORK/notes.txt"
fi
expect1 out.data_in_source "is inside the source" data build "$WORK/osrc" "$WORK/osrc/x.tokens"
expect1 out.dataset_in_source "overlap (one is, or lies inside, the other)" \
  data build --tokenizer bytes --source "$WORK/osrc" --out "$WORK/osrc/ds"
[[ ! -e "$WORK/osrc/ds" ]] || fail "out.dataset_in_source: created $WORK/osrc/ds"
expect1 out.dataset_in_source_dotdot "overlap (one is, or lies inside, the other)" \
  data build --tokenizer bytes --source "$WORK/osrc" --out "$WORK/not_yet/../osrc/ds"
[[ ! -e "$WORK/osrc/ds" && ! -e "$WORK/not_yet" ]] || fail "out.dataset_in_source_dotdot: created it"
expect out.run_folder_in_source "lies inside an input of this job ('$WORK/osrc')" train "$CONFIG" \
  data.source="$WORK/osrc" data.path="$WORK/data.tokens" checkpoint.dir="$WORK/ck_osrc" \
  log.dir="$WORK/osrc/run"
[[ ! -e "$WORK/osrc/run" ]] || fail "out.run_folder_in_source: created $WORK/osrc/run"
expect1 out.data_not_tokens "exists and is not a longnet token file" \
  data build "$WORK/osrc" "$WORK/notes.txt"
# A byte-token output named as a directory: refused before anything is read.
expect1 out.data_dir_slash "names a directory (it ends in '/')" data build "$WORK/osrc" "$WORK/legacy_dir/"
# Two byte-token builds of one output: the second is refused at once while the first writes
# (the lock held here as a build holds it); the first's temporary file is left alone.
flock "$WORK/locked.tokens.tmp" sleep 20 &
flock_pid=$!
for _ in $(seq 50); do [ -e "$WORK/locked.tokens.tmp" ] && break; sleep 0.1; done
expect1 data.build_concurrent "another build is writing" data build "$WORK/osrc" "$WORK/locked.tokens"
[ -e "$WORK/locked.tokens.tmp" ] || fail "data.build_concurrent: the other build's file was removed"
kill $flock_pid 2> /dev/null
wait $flock_pid 2> /dev/null
# File names from a directory walk reach the terminal escaped.
mkdir -p "$WORK/esc_src" && printf '{"text": 5}\n' > "$WORK/esc_src/$(printf 'a\033[2Jb.jsonl')"
expect1 build.name_escaped 'a\x1b[2Jb.jsonl:1: field "text" is a JSON number' \
  data build --tokenizer bytes:eot --source "$WORK/esc_src" --out "$WORK/esc_out"
# A build that fails in an empty --out leaves it empty: the rerun with the fixed flag runs.
mkdir -p "$WORK/jf_src" "$WORK/jf_out" && printf '{"content": "doc 1"}\n{"content": "doc 2"}\n' > "$WORK/jf_src/a.jsonl"
expect1 build.field_missing 'no field "text"' data build --tokenizer bytes:eot --source "$WORK/jf_src" \
  --out "$WORK/jf_out"
[ -z "$(ls -A "$WORK/jf_out")" ] || fail "build.field_missing: left $(ls -A "$WORK/jf_out")"
"$BIN" data build --tokenizer bytes:eot --source "$WORK/jf_src" --out "$WORK/jf_out" --val-fraction 0 \
  --jsonl-field content --no-progress > "$WORK/jf_fixed.log" 2>&1 ||
  fail "build.field_fixed: $(tail -2 "$WORK/jf_fixed.log")"
expect1 out.export_foreign "is not from a longnet export" export "$CK" --out "$WORK/hf"
[[ "$(cat "$WORK/notes.txt")" == "my notes" && "$(cat "$WORK/hf/config.json")" == '{"mine": 1}' ]] ||
  fail "out.*: a file that was not ours changed"
# Another tool's config that merely mentions our format is not ours either.
mkdir -p "$WORK/hf2" && echo '{"model_type": "gpt2", "from": "longnet-export-1"}' > "$WORK/hf2/config.json"
expect1 out.export_mentions_format "is not from a longnet export" export "$CK" --out "$WORK/hf2"
grep -q gpt2 "$WORK/hf2/config.json" || fail "out.export_mentions_format: the foreign config changed"
# An export's config.json does not make the model.safetensors beside it ours: each file is
# checked (a foreign one, and a checkpoint copied there), and a real export is replaced.
"$BIN" export "$CK" --out "$WORK/hf3" > "$WORK/hf3.log" 2>&1 || fail "export: $(tail -2 "$WORK/hf3.log")"
mkdir -p "$WORK/hf4" && cp "$WORK/hf3/config.json" "$WORK/hf4/"
echo "my notes" > "$WORK/hf4/model.safetensors"
expect1 out.export_foreign_weights "model.safetensors' exists and is not from a longnet export" \
  export "$CK" --out "$WORK/hf4"
[[ "$(cat "$WORK/hf4/model.safetensors")" == "my notes" ]] || fail "out.export_foreign_weights: replaced"
cp "$CK" "$WORK/hf4/model.safetensors"
expect1 out.export_checkpoint_as_weights "model.safetensors' exists and is not from a longnet export" \
  export "$CK" --out "$WORK/hf4"
cmp -s "$CK" "$WORK/hf4/model.safetensors" || fail "out.export_checkpoint_as_weights: replaced"
"$BIN" export "$CK" --out "$WORK/hf3" > "$WORK/hf3.log" 2>&1 || fail "export again: $(tail -2 "$WORK/hf3.log")"
expect1 gen.temperature_tiny "is below 1e-4" \
  generate --checkpoint "$CK" --device cpu --prompt x --temperature 1e-45
expect1 gen.greedy_and_sampling "--top-k applies to sampling only" \
  generate --checkpoint "$CK" --device cpu --prompt x --greedy --top-k 5
expect1 gen.greedy_and_seed "so --seed (the sampling's seed) would change nothing" \
  generate --checkpoint "$CK" --device cpu --prompt x --greedy --seed 4
expect1 gen.zero_temperature_and_seed "--temperature 0 takes the most likely token, so --seed" \
  generate --checkpoint "$CK" --device cpu --prompt x --temperature 0 --seed 4
expect1 eval.windows_overlap "would score some tokens twice" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 64 \
  --batch-size 100
# The longest window's forward is estimated against the memory there, refused before it runs
# (16 TiB here, 1 TiB of it the CPU attention's scores: no machine passes it).
expect1 eval.memory "needs about 16384.0 GiB on cpu" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 4096 \
  --batch-size 1048576
cp -r "$DS" "$WORK/ds_val_crc" && python3 -c "import glob
p = sorted(glob.glob('$WORK/ds_val_crc/val_*.bin'))[0]
b = bytearray(open(p, 'rb').read()); b[70] ^= 1; open(p, 'wb').write(b)"
expect1 eval.val_checksum "is corrupt: its CRC-32" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/ds_val_crc" --context-lens 32
expect1 eval.list_trailing_comma "ends with a comma" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 64,
expect eval.context_not_split "eval --context-lens: 100 cannot be split over the 2 ranks" eval \
  --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 64,100
expect1 eval.duplicate_len "a length is given twice" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 64,64
expect1 eval.plot_only_extension "the file name is only an extension" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 64 --json "$WORK/pe.json" --plot "$WORK/.png"
expect1 eval.context_past_data "the longest context 100000000 needs at least" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 100000000
expect1 eval.score_past_context "score tokens 300 must lie in [1, 64]" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 64 --score-tokens 300
expect1 eval.data_not_tokens "give a dataset or token file" \
  eval --checkpoint "$CK" --device cpu --data "$WORK/notes.txt" --context-lens 64
expect1 checkgen.default_prompt_short "--seq-len 2 is too short" \
  check generate --config "$CONFIG" --seq-len 2
expect1 checkgen.too_big "more than its" \
  check generate --config "$CONFIG" --seq-len 1099511627776
# Prompts whose KV caches cannot fit the machine are refused before any cache is made.
python3 -c "print('a\n' * 10000000, end='')" > "$WORK/many_prompts.txt"
expect_failure gen.prompts_past_memory "generate: 10000000 sequence(s) of prompts up to 1 tokens (915.53 GiB of KV caches" 50 \
  "$BIN" generate --checkpoint "$CK" --device cpu --prompts-file "$WORK/many_prompts.txt" \
  --max-new-tokens 1
expect_ok gen.prompts_past_memory "GiB of KV caches"
# One long line beside many short ones: prefilled in groups of similar lengths, so no padded
# batch of 20,001 x 100,000 ids (16 GB, past a 6 GB limit) is made; it runs.
python3 -c "print('a' * 100000); print('x\n' * 20000, end='')" > "$WORK/wide_prompts.txt"
bash -c 'ulimit -v 6000000 && exec "$@"' _ timeout 120 "$BIN" generate --checkpoint "$CK" \
  --device cpu --prompts-file "$WORK/wide_prompts.txt" --max-new-tokens 1 --stats \
  > "$WORK/gen.prompt_groups.out" 2> "$WORK/gen.prompt_groups.log" ||
  fail "gen.prompt_groups: $(tail -2 "$WORK/gen.prompt_groups.log")"
EXPECT_DT=0
[ "$(grep -c '^=== line' "$WORK/gen.prompt_groups.out")" = 20001 ] ||
  fail "gen.prompt_groups: not 20001 texts"
expect_ok gen.prompt_groups "in 2 groups of similar lengths"
# Memory running out while a huge prompts file is read and tokenized (700 MB of text, 2.8 GB of
# ids, past 1.5 GB above what the process maps at start) is said to be the file's, with its
# size, not the model's. (What it maps at start, its libraries, is measured: it differs between
# builds.)
"$BIN" tokenizer encode --tokenizer bytes < <(sleep 30) > /dev/null &
enc=$!
base_kb=
for _ in $(seq 100); do
  grep -q liblongnet "/proc/$enc/maps" 2>/dev/null && sleep 0.5 &&
    base_kb=$(awk '/^VmSize/ {print $2}' "/proc/$enc/status") && break
  sleep 0.1
done
kill $enc; wait $enc
[[ -n "$base_kb" ]] || fail "gen.prompts_file_memory: the process's start-up size was not measured"
python3 -c "import sys; sys.stdout.write('a' * 700000000 + '\n')" > "$WORK/huge_prompts.txt"
expect_failure gen.prompts_file_memory "out of host memory while reading and tokenizing --prompts-file '$WORK/huge_prompts.txt' (700000001 bytes)" 50 \
  bash -c 'ulimit -v $1 && shift && exec "$@"' _ $((base_kb + 1500000)) "$BIN" generate --checkpoint "$CK" --device cpu \
  --prompts-file "$WORK/huge_prompts.txt" --max-new-tokens 1
rm -f "$WORK/huge_prompts.txt"
expect_ok gen.prompts_file_memory "out of host memory while reading"
# One stop request delivered twice at once (`timeout -s INT` signals the process and its group;
# mpirun and a terminal both forward Ctrl-C) stops cleanly, as one Ctrl-C: not "a second stop
# signal: exiting now", which is for a second Ctrl-C a second or more later.
"$BIN" generate --checkpoint "$CK" --device cpu --prompt a --max-new-tokens 1000000 \
  > "$WORK/gen.twice.out" 2> "$WORK/gen.twice.err" &
p=$!
for _ in $(seq 600); do [ -s "$WORK/gen.twice.out" ] && break; sleep 0.1; done
kill -INT $p; sleep 0.2; kill -INT $p  # (apart: two signals pending at once are one)
wait $p
rc=$?
((rc == 130)) && grep -q "generate: stopped by signal 2" "$WORK/gen.twice.err" &&
  ! grep -q "second stop signal" "$WORK/gen.twice.err" ||
  fail "gen.signal_twice: status $rc: $(tail -2 "$WORK/gen.twice.err")"
echo "ok: gen.signal_twice: two SIGINTs 0.2 s apart stop generation cleanly (status 130)"
# An export stopped by SIGTERM between its writes and its renames (strace holds each rename after
# the first for 2 s) leaves none of its new files (.model.safetensors.new, .config.json.new).
if strace -f -o /dev/null true > /dev/null 2>&1; then
  strace -f -o /dev/null -e trace=rename -e inject=rename:delay_enter=2000000:when=2+ \
    "$BIN" export "$CK" --out "$WORK/exp_signal" > "$WORK/exp_signal.log" 2>&1 &
  sp=$!
  for _ in $(seq 600); do ls -A "$WORK/exp_signal" 2>/dev/null | grep -q 'safetensors\.new$' && break; sleep 0.1; done
  ls -A "$WORK/exp_signal" | grep -q 'safetensors\.new$' || fail "export.signal: no new file: $(tail -2 "$WORK/exp_signal.log")"
  kill -TERM "$(pgrep -P $sp)"
  wait $sp
  grep -q "stopped by SIGTERM" "$WORK/exp_signal.log" && [[ -z "$(ls -A "$WORK/exp_signal")" ]] ||
    fail "export.signal: $(ls -A "$WORK/exp_signal") left; $(tail -2 "$WORK/exp_signal.log")"
  echo "ok: export.signal: an export stopped before its renames left no new file"
else
  echo "skipped: export.signal (strace cannot trace here)"
fi
# A byte-order mark at the start of a prompts file is no part of its first prompt.
printf '\xef\xbb\xbfstatic int\r\nstatic int\r\n' > "$WORK/bom_prompts.txt"
"$BIN" generate --checkpoint "$CK" --device cpu --prompts-file "$WORK/bom_prompts.txt" --greedy \
  --max-new-tokens 12 > "$WORK/bom_prompts.out" 2> "$WORK/bom_prompts.err" ||
  fail "gen.bom: $(tail -2 "$WORK/bom_prompts.err")"
python3 - "$WORK/bom_prompts.out" <<'PY' || fail "gen.bom: the two lines' texts differ: $(cat -A "$WORK/bom_prompts.out")"
import sys
t = open(sys.argv[1], "rb").read().split(b"=== line 2 ===\n")
assert len(t) == 2 and t[0].split(b"=== line 1 ===\n")[1] == t[1], t
PY
echo "ok: gen.bom: a prompts file's byte-order mark is dropped"
# Past the longest segment (128) the scored tokens see only their segment: said per row.
"$BIN" eval --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 32,160 \
  --batches 1 --json "$WORK/seen.json" > "$WORK/seen.out" 2>&1 || fail "eval.seen: $(tail -2 "$WORK/seen.out")"
grep -q "^ *160 .*(sees 1-32)" "$WORK/seen.out" && ! grep -q "^ *32 .*(sees" "$WORK/seen.out" &&
  grep -q '"context_len":160,.*"context_seen_min":1,"context_seen_max":32' "$WORK/seen.json" ||
  fail "eval.seen: $(cat "$WORK/seen.out")"
echo "ok: eval.seen: context 160 past the longest segment sees 1-32 tokens"
expect1 bench.generate_zero_prompt "bench generate --prompt-lens: 0 is out of range" bench generate \
  --checkpoint "$WORK/no_such.ckpt" --device cpu --prompt-lens 0
# bench generate checks every (prompt, batch) pair before it measures anything (92 GiB of
# caches here).
expect1 bench.generate_past_memory "bench generate: 1048576 sequence(s) of prompts up to 64 tokens" \
  bench generate --checkpoint "$CK" --device cpu --dtype float32 --steps 1 --warmup 2 \
  --prompt-lens 64 --batches 1,1048576
# Outputs named like checkpoints, or an export into a checkpoint dir: a resume there would stop.
expect1 out.eval_json_checkpoint_name "is named as a training checkpoint (step_*.ckpt)" eval \
  --checkpoint "$CK" --device cpu --data "$WORK/data.tokens" --context-lens 32 \
  --json "$WORK/ck_named/step_00000100.ckpt"
[[ ! -e "$WORK/ck_named" ]] || fail "out.eval_json_checkpoint_name: created $WORK/ck_named"
expect1 out.export_into_checkpoints "holds training checkpoints (step_*.ckpt)" export "$CK" \
  --out "$(dirname "$CK")"
[[ ! -e "$(dirname "$CK")/config.json" ]] || fail "out.export_into_checkpoints: wrote config.json"
# One export at a time writes a directory: a second, while the first holds it (here flock(1)
# holds its lock), is refused and writes nothing; the directory gets no lock file of its own.
mkdir -p "$WORK/ex_locked"
expect_failure out.export_locked "is being written by another export" 30 \
  flock "$WORK/ex_locked" "$BIN" export "$CK" --out "$WORK/ex_locked"
[[ -z "$(ls -A "$WORK/ex_locked")" ]] || fail "out.export_locked: wrote $(ls -A "$WORK/ex_locked")"
expect_ok out.export_locked "being written by another export"
"$BIN" export "$CK" --out "$WORK/ex_locked" > "$WORK/ex_locked.log" 2>&1 &&
  [[ "$(ls -A "$WORK/ex_locked" | tr '\n' ' ')" == "config.json model.safetensors " ]] ||
  fail "out.export_locked: the export after it: $(tail -1 "$WORK/ex_locked.log"); $(ls -A "$WORK/ex_locked")"
# JSON allows numbers past double's range; one in a field the corpus does not read is no error.
mkdir -p "$WORK/jl" && python3 -c "
for i in range(40): print('{\"text\": \"line %d of some text to train on\", \"n\": 1e99999}' % i)" \
  > "$WORK/jl/a.jsonl" && printf '{"text": 1e99999}\n' > "$WORK/jl_bad.jsonl"
"$BIN" data build --tokenizer bytes:eot --source "$WORK/jl" --out "$WORK/ds_jl" --val-fraction 0 \
  --no-progress > "$WORK/ds_jl.log" 2>&1 || fail "jsonl with a huge number: $(tail -2 "$WORK/ds_jl.log")"
expect1 build.jsonl_huge_text 'field "text" is a JSON number, not a string' \
  data build --tokenizer bytes:eot --source "$WORK/jl_bad.jsonl" --out "$WORK/ds_jl_bad"
# A FIFO inside a source directory is skipped (never opened) and counted.
mkfifo "$WORK/jl/pipe.txt"
"$BIN" data build --tokenizer bytes:eot --source "$WORK/jl" --out "$WORK/ds_jl2" --val-fraction 0 \
  > "$WORK/ds_jl2.log" 2>&1 || fail "a FIFO in a source directory: $(tail -2 "$WORK/ds_jl2.log")"
grep -q "1 FIFO(s), socket(s) or device(s)" "$WORK/ds_jl2.log" ||
  fail "the skipped FIFO is not counted: $(tail -1 "$WORK/ds_jl2.log")"
# A dataset without a validation split trains with eval.interval: 0, and only so.
expect data.no_val_split "set eval.interval: 0 to train without evaluation" "${TD[@]}" \
  data.path="$WORK/ds_jl" model.vocab_size=257 data.tokenizer=bytes:eot
rm -f "$WORK/m3.jsonl"
"${MPIRUN[@]}" "$BIN" "${TD[@]}" data.path="$WORK/ds_jl" model.vocab_size=257 \
  data.tokenizer=bytes:eot eval.interval=0 optim.warmup_steps=1 train.steps=2 \
  > "$WORK/train_noval.log" 2>&1 || fail "train without validation: $(grep -m2 error "$WORK/train_noval.log")"
grep -q "no evaluation" "$WORK/train_noval.log" || fail "train without validation: no notice"
grep -q '"step":2' "$WORK/m3.jsonl" || fail "train without validation: no metrics of step 2"
! grep -q "val_loss\|eval before training" "$WORK/train_noval.log" "$WORK/m3.jsonl" ||
  fail "train without validation: it evaluated"
expect1 flag.empty_value "--tokenizer has an empty value; give one, or leave the flag out" \
  generate --checkpoint "$CK" --device cpu --prompt x --tokenizer=
"$BIN" export "$CK" --out "$WORK/exp_ok" > "$WORK/exp_ok.log" 2>&1 || fail "export: $(tail -2 "$WORK/exp_ok.log")"
grep -q '"tokenizer": {"kind": "bytes", "spec": "bytes"}' "$WORK/exp_ok/config.json" ||
  fail "export: config.json names no bytes tokenizer: $(cat "$WORK/exp_ok/config.json")"
# bytes:eot is built in: named, no file copied (nor one named eot looked for).
"$BIN" export "$CK_EOT" --out "$WORK/exp_eot" > "$WORK/exp_eot.log" 2>&1 ||
  fail "export bytes:eot: $(tail -2 "$WORK/exp_eot.log")"
grep -q '"tokenizer": {"kind": "bytes", "spec": "bytes:eot"}' "$WORK/exp_eot/config.json" &&
  [[ ! -e "$WORK/exp_eot/tokenizer.model" ]] || fail "export bytes:eot: $(ls "$WORK/exp_eot")"
expect1 gen.safetensors "looks like a safetensors file (as \`longnet export\` writes)" \
  generate --checkpoint "$WORK/exp_ok/model.safetensors" --config "$CONFIG" --device cpu --prompt x
# tokenizer encode reads and tokenizes stdin in pieces: a 3 MB input gives every id.
head -c 3000000 /dev/zero | tr '\0' 'a' > "$WORK/big.txt"
n=$("$BIN" tokenizer encode --tokenizer bytes < "$WORK/big.txt" | wc -w)
[[ $n == 3000000 ]] || fail "tokenizer encode of 3 MB gave $n ids"
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
  expect1 device.no_gpu "--device cuda: this machine has no usable GPU" \
    generate --checkpoint "$CK" --device cuda --prompt x
fi
# Configs that say nothing, comments in overrides, limits no collective meets, mixed modes.
printf '# only a comment\n---\n' > "$WORK/empty.yaml"
expect config.empty_file "holds no keys" train "$WORK/empty.yaml"
expect config.override_comment "would be read as a YAML comment and dropped" "${T0[@]}" \
  "checkpoint.dir=$WORK/ckpt #2"
expect config.timeout_tiny "too short for a collective to finish" "${T[@]}" \
  train.collective_timeout_s=0.001
expect1 flag.two_modes "--check-config P and --print-ranks both ask" train "$CONFIG" \
  --check-config 2 --print-ranks
# What YAML would drop or cut silently, values that round, and rules found before any data is
# built (all by --check-config, nothing trained).
CC=(train "$CONFIG" --check-config 2)
expect1 config.override_after_quotes "'y' follows the quoted value" "${CC[@]}" 'data.path="x" y'
expect1 config.escaped_nul "the string holds control character 0" "${CC[@]}" 'log.dir="r\0z"'
printf 'model:\n  activation: !custom gelu\n' > "$WORK/tagged.yaml"
expect1 config.tagged_string "tagged !custom; remove the tag" train "$WORK/tagged.yaml" \
  --check-config 2
expect1 config.long_number "(100000 characters) is no number this key takes" "${CC[@]}" \
  "model.d_model=$(head -c 100000 /dev/zero | tr '\0' 1)"
expect1 config.int64_rounding "1152921504606847104 is out of range" "${CC[@]}" \
  engine.chunk_above=1152921504606847104
expect1 config.grad_clip_denormal "below the smallest normal float32" "${CC[@]}" \
  optim.grad_clip=1e-310
expect1 config.tokenizer_kind "data.tokenizer: unknown tokenizer 'x'" "${CC[@]}" data.tokenizer=x
expect1 config.legacy_tokenizer "cannot make a byte-token file" "${CC[@]}" data.format=legacy \
  data.tokenizer=bytes:eot
printf 'model:\ndata: {}\n' > "$WORK/sections_only.yaml"
expect1 config.empty_sections "holds no keys" train "$WORK/sections_only.yaml" --check-config 2
expect1 config.merge_key "merge keys ('<<: *anchor') are not supported" "${CC[@]}" \
  'model={<<: {d_model: 64}}'
expect1 config.ranks_overflow "ranks, more than the 1048576 a job can have" train "$CONFIG" \
  grid.data_parallel=1048576 grid.sequence_parallel=2048 --print-ranks
# Flags whose refusal names the flag, its value and what works; a value below the smallest
# normal double is read as the config reader reads it (the flag's own rule then decides).
expect1 flag.check_attention_sp "check attention: --sp 2 does not divide the world size 1" \
  check attention --seq-len 64 --segments 32,64 --rates 1,2 --sp 2
expect1 flag.bench_generate_warmup "--warmup: 1 is out of range; it must be >= 2" bench generate \
  --checkpoint "$CK" --device cpu --prompt-lens 64 --batches 1 --warmup 1
expect1 flag.temperature_subnormal "is below 1e-4, where logits / temperature overflow" generate \
  --checkpoint "$CK" --device cpu --prompt x --temperature 1e-320
expect1 flag.temperature_overflow "'1e999' is not finite" generate --checkpoint "$CK" --device cpu \
  --prompt x --temperature 1e999
# GPU-only engine settings on the CPU are named in a note (they change nothing there).
"$BIN" train "$CONFIG" $DATA checkpoint.dir="$WORK/ck_engine" log.dir="$WORK/run_engine" \
  grid.sequence_parallel=1 engine.streams=2 engine.backend=flash train.steps=1 optim.warmup_steps=0 \
  > "$WORK/engine_cpu.log" 2>&1 &&
  grep -q "note: engine.backend, engine.streams act only on a GPU" "$WORK/engine_cpu.log" ||
  fail "engine keys on the CPU: $(grep -m2 "error\|note" "$WORK/engine_cpu.log")"
# A config in a folder whose name holds '=' is the config, not an override.
mkdir -p "$WORK/lr=1e-3" && cp "$CONFIG" "$WORK/lr=1e-3/config.yaml"
"$BIN" train "$WORK/lr=1e-3/config.yaml" --check-config 2 > "$WORK/config_eq.log" 2>&1 ||
  fail "config.path_with_equals: $(tail -2 "$WORK/config_eq.log")"
expect1 config.missing_path_with_equals "is no file (a config), and no key=value override" \
  train "$WORK/lr=2e-3/config.yaml" --check-config 2
# Thousands of overrides are checked in time (pairwise it took minutes).
many=(); for _ in $(seq 20000); do many+=(train.seed=3); done
timeout 60 "$BIN" train "$CONFIG" "${many[@]}" --check-config 2 > "$WORK/many.log" 2>&1 ||
  fail "config.many_overrides: $(tail -2 "$WORK/many.log")"
# llm.c shards are read, never built: a missing path is refused before anything is built.
expect1 data.nanogpt_not_built "longnet reads but does not build" train "$CONFIG" \
  data.source="$SRC" data.path="$WORK/nano_missing" data.format=nanogpt data.tokenizer=bytes \
  grid.sequence_parallel=1 checkpoint.dir="$WORK/ck_nano" log.metrics="$WORK/nano.jsonl"
[[ ! -e "$WORK/nano_missing" ]] || fail "data.nanogpt_not_built: something was built"
expect1 data.legacy_flags "--shard-mb applies to sharded datasets" data build "$SRC" \
  "$WORK/legacy.tokens" --shard-mb 7
cases=$((cases + 2))
# A resume mode in the wrong case is no path either: --check-config finds it (no data loaded).
expect1 config.resume_mode_case "checkpoint.resume: 'AUTO' is neither a checkpoint file" train \
  "$CONFIG" checkpoint.resume=AUTO --check-config 2
expect1 config.resume_missing "checkpoint.resume: 'no' is neither a checkpoint file" train \
  "$CONFIG" checkpoint.resume=no --check-config 2
expect1 config.resume_directory "is a directory; give a checkpoint file in it" train \
  "$CONFIG" checkpoint.resume="$WORK" --check-config 2
# log.metrics onto the run folder's own files would corrupt them.
expect1 config.metrics_is_run_config "is the run folder's own config.yaml" train "$CONFIG" \
  grid.sequence_parallel=1 data.source="$SRC" data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/ck_metrics" log.dir="$WORK/run_metrics" \
  log.metrics="$WORK/run_metrics/config.yaml"
# Metrics in another job's folder (it holds that job's lock file): that run's own metrics would
# be set aside and continued with this run's rows.
expect1 config.metrics_in_other_run "lies in another job's folder" train "$CONFIG" \
  grid.sequence_parallel=1 data.source="$SRC" data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/ck_metrics2" log.dir="$WORK/run_metrics2" \
  log.metrics="$WORK/ckpt/metrics.jsonl"
# A resume on other data at the same data.path is said (its batches are not an uninterrupted
# run's).
cp "$WORK/data.tokens" "$WORK/swap.tokens"
SW=(train "$CONFIG" data.source='""' data.path="$WORK/swap.tokens" checkpoint.dir="$WORK/ck_swap"
  log.metrics="$WORK/m_swap.jsonl" optim.warmup_steps=1)
"${MPIRUN[@]}" "$BIN" "${SW[@]}" train.steps=2 > "$WORK/swap1.log" 2>&1 ||
  fail "data.swapped: $(tail -2 "$WORK/swap1.log")"
cp "$WORK/host_b/d.tokens" "$WORK/swap.tokens"
"${MPIRUN[@]}" "$BIN" "${SW[@]}" train.steps=3 > "$WORK/swap2.log" 2>&1 &&
  grep -q "is not the data the checkpoint was trained on" "$WORK/swap2.log" ||
  fail "data.swapped: no warning: $(grep -m2 "resume\|error" "$WORK/swap2.log")"
# A run folder whose config.yaml is a directory: refused at start, not at the first write.
mkdir -p "$WORK/run_cfgdir/config.yaml"
expect1 config.run_config_directory "its config.yaml is a directory" train "$CONFIG" \
  grid.sequence_parallel=1 data.source="$SRC" data.path="$WORK/data.tokens" \
  checkpoint.dir="$WORK/ck_cfgdir" log.dir="$WORK/run_cfgdir"
# ... or marked immutable (where the file system keeps such marks): refused at start too.
mkdir -p "$WORK/run_cfgimm" && echo "old: 1" > "$WORK/run_cfgimm/config.yaml"
if chattr +i "$WORK/run_cfgimm/config.yaml" 2> /dev/null; then
  # (the mark is cleared before anything can fail, so that the work folder can be removed)
  timeout 60 "$BIN" train "$CONFIG" grid.sequence_parallel=1 data.source="$SRC" \
    data.path="$WORK/data.tokens" checkpoint.dir="$WORK/ck_cfgimm" log.dir="$WORK/run_cfgimm" \
    > "$WORK/config.run_config_immutable.log" 2>&1
  rc=$?
  chattr -i "$WORK/run_cfgimm/config.yaml"
  ((rc == 1)) || fail "config.run_config_immutable: exit status $rc"
  EXPECT_DT=0
  grep -qF "its config.yaml is marked immutable or append-only" \
    "$WORK/config.run_config_immutable.log" ||
    fail "config.run_config_immutable: $(tail -2 "$WORK/config.run_config_immutable.log")"
  expect_ok config.run_config_immutable "its config.yaml is marked immutable"
fi
expect1 flag.mode_with_run_flag "--trace applies to a training run" train "$CONFIG" \
  --print-ranks --trace "$WORK/t.json"
expect flag.trace_short_run "--trace records steps 4 to 5 of a run, but this one trains 3" \
  "${T0[@]}" checkpoint.dir="$WORK/ck_trace" train.steps=3 --trace "$WORK/short.json"
# The trace is none of the files this job writes otherwise, existing or not yet (on one rank the
# run folder's metrics.jsonl, train.log, config.yaml and log.metrics; on several, log.metrics as
# any rank's PATH.rankR): it would replace them. Every rank refuses before anything is made.
expect1 flag.trace_onto_run_metrics "is the run folder's own metrics.jsonl" train "$CONFIG" $DATA \
  grid.sequence_parallel=1 log.dir="$WORK/tr_run" checkpoint.dir="$WORK/ck_tr" \
  --trace "$WORK/tr_run/metrics.jsonl"
expect1 flag.trace_onto_train_log "is the run folder's own train.log" train "$CONFIG" $DATA \
  grid.sequence_parallel=1 log.dir="$WORK/tr_run" checkpoint.dir="$WORK/ck_tr" \
  --trace "$WORK/tr_run/train.log"
expect flag.trace_rank_onto_metrics "(rank 1's trace) this job's metrics file (log.metrics)" train \
  "$CONFIG" $DATA log.metrics="$WORK/tr_m.jsonl.rank1" log.dir="$WORK/tr_run" \
  checkpoint.dir="$WORK/ck_tr" --trace "$WORK/tr_m.jsonl"
[[ ! -e "$WORK/tr_run" && ! -e "$WORK/ck_tr" ]] || fail "flag.trace_*: a refused start made folders"
# '~' and '$NAME' in a path key are a shell's to expand: refused, never made as folders here.
expect config.path_tilde "the path '~/x' starts with '~'" "${T0[@]}" checkpoint.dir='~/x'
expect config.path_variable "holds '\$HOME'" "${T0[@]}" checkpoint.dir="$WORK/ck_var" \
  'log.dir=$HOME/runs'
expect config.path_tokenizer_tilde "starts with '~'" "${T[@]}" data.tokenizer='sentencepiece:~/m.model'
[[ ! -e "~" && ! -e '$HOME' ]] || fail "config.path_*: made a folder named '~' or '\$HOME'"
# train.log is appended to, never through a link.
mkdir -p "$WORK/run_link" && printf 'precious\n' > "$WORK/victim.log"
ln -sf ../victim.log "$WORK/run_link/train.log"
expect run.train_log_link "its train.log is a symbolic link" "${T0[@]}" \
  checkpoint.dir="$WORK/ck_link" log.dir="$WORK/run_link"
[[ "$(cat "$WORK/victim.log")" == precious ]] || fail "run.train_log_link: written through the link"
mkdir -p "$WORK/run_link2" && printf '' > "$WORK/victim.jsonl"
ln -sf ../victim.jsonl "$WORK/run_link2/metrics.jsonl"
expect run.metrics_link "its metrics.jsonl is a symbolic link" train "$CONFIG" $DATA \
  checkpoint.dir="$WORK/ck_link2" log.dir="$WORK/run_link2"
[[ ! -s "$WORK/victim.jsonl" ]] || fail "run.metrics_link: written through the link"
# What a command prints must reach stdout: a full disk is an error; a reader that stops early
# (`| head`) is not.
if [[ -w /dev/full ]]; then
  expect_failure out.stdout_full "writing stdout failed" 20 \
    bash -c "'$BIN' tokenizer info --tokenizer bytes > /dev/full"
  expect_ok out.stdout_full "writing stdout failed"
fi
"$BIN" tokenizer encode --tokenizer bytes < "$WORK/big.txt" | head -c 10 > /dev/null
[[ ${PIPESTATUS[0]} == 0 ]] || fail "tokenizer encode | head: exited ${PIPESTATUS[0]}"
# Help on every command and command group (exit 0).
for c in "" data bench check tokenizer train "data build" "bench attention" "check comm" \
         "tokenizer encode"; do
  out=$("$BIN" $c --help 2>&1) || fail "help: 'longnet $c --help' exited non-zero: $out"
  grep -q "usage" <<< "$out" || fail "help: 'longnet $c --help' printed no usage"
done
echo "ok: --help on every command and group"
echo "bad inputs: all $cases passed, checkpoints untouched"
