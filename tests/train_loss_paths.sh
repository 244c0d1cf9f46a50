#!/usr/bin/env bash
# The chunked output layer and loss in a whole training job: the same steps with train.loss=plain
# and train.loss=chunked (2 ranks, one sequence-parallel group, a 1,000-token vocabulary over a
# sharded bytes:eot dataset) give the same losses, step by step, to float32 rounding.
#   tests/train_loss_paths.sh LONGNET_BINARY CONFIG DATA_SRC WORK_DIR
set -uo pipefail
BIN=$1 CONFIG=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
MPIRUN=(mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none)
fail() { echo "FAIL: $*"; exit 1; }
"$BIN" data build --tokenizer bytes:eot --source "$SRC" --out "$WORK/ds" --shard-mb 0.05 \
  --no-progress > "$WORK/build.log" 2>&1 || fail "data build: $(tail -3 "$WORK/build.log")"
for loss in plain chunked; do
  "${MPIRUN[@]}" "$BIN" train "$CONFIG" data.path="$WORK/ds" model.vocab_size=1000 \
    train.steps=5 eval.interval=5 checkpoint.dir="$WORK/ck_$loss" checkpoint.resume=none \
    log.metrics="$WORK/$loss.jsonl" train.loss=$loss > "$WORK/$loss.log" 2>&1 ||
    fail "train.loss=$loss: $(tail -3 "$WORK/$loss.log")"
done
grep -q "loss chunked" "$WORK/chunked.log" || fail "the chunked run did not say it used the chunked loss"
python3 - "$WORK/plain.jsonl" "$WORK/chunked.jsonl" <<'PY' || fail "losses differ"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) >= 6, (len(a), len(b))
for x, y in zip(a, b):
    for k in ("loss", "val_loss", "grad_norm"):
        if k in x:
            assert abs(x[k] - y[k]) <= 2e-5 * abs(x[k]), (k, x, y)
print("loss paths: " + ", ".join(f"step {x['step']}: {x.get('loss', x.get('val_loss')):.6f} / "
                                  f"{y.get('loss', y.get('val_loss')):.6f}" for x, y in zip(a, b)))
PY
echo "loss paths: plain and chunked agree"
