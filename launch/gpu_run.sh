#!/usr/bin/env bash
# The GPU side of longnet in one go, on a machine with NVIDIA GPUs and PyTorch: builds the
# CUDA/NCCL path against the machine's torch, runs the tests (GPU ones included), the
# multi-GPU checks and the benchmarks. Results go to bench/results/ (JSON with card, date,
# commit, command); logs to $OUT (or out/), and a summary is printed last.
#   launch/gpu_run.sh [stage ...]
# stages: build test check bench breakdown weak scaling scaling4 train trace train4 stall data
#   generate longctx4
# (default: build test check bench weak)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_DIR="${OUT:-$ROOT/out}"
LOGS="${LONGNET_LOG_DIR:-/tmp/longnet_gpu_logs}"
mkdir -p "$LOGS" "$OUT_DIR" bench/results
# Scratch checkpoint directories of the runs below (a fresh run refuses to replace checkpoints).
rm -rf /tmp/longnet_ckpt /tmp/longnet_ckpt_* /tmp/longnet_paper
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
source launch/mpi_env.sh
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
((NGPU > 0)) || { echo "gpu_run: no GPU visible (nvidia-smi -L lists none)" >&2; exit 2; }
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 |
       sed 's/NVIDIA //; s/ .*//' | tr 'A-Z' 'a-z')
CARD=${CARD:-gpu}
BIN=build/longnet
STAGES=("$@")
((${#STAGES[@]})) || STAGES=(build test check bench weak)
KNOWN=" $(sed -n 's/^    \([a-z0-9_]*\))$/\1/p' "${BASH_SOURCE[0]}" | tr '\n' ' ')"
for stage in "${STAGES[@]}"; do
  [[ "$KNOWN" == *" $stage "* ]] ||
    { echo "gpu_run: unknown stage '$stage' (stages:$KNOWN)" >&2; exit 2; }
done
FAILED=0  # commands that failed (the script goes on to the next, and exits 1 at the end)
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
note "gpu_run: $(date -u +%FT%TZ) $NGPU x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), commit ${LONGNET_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null)}"

# run NAME TIMEOUT_S CMD...: logs to $LOGS/NAME.log, notes the exit status and duration.
run() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  note "[$name] rc=$rc in $((SECONDS - t0)) s: $*"
  ((rc == 0)) || FAILED=$((FAILED + 1))
  return $rc
}

for stage in "${STAGES[@]}"; do
  case "$stage" in
    build)
      run build 420 env LONGNET_CUDA=ON LONGNET_SKIP_APT=1 LONGNET_JOBS="$(nproc)" launch/setup.sh
      grep -E "^-- longnet:" build/configure.log | tee -a "$SUMMARY"
      ;;
    test)
      pushd build > /dev/null  # (not a subshell: run counts the failures)
      run ctest 300 ctest -j4 --output-on-failure ${LONGNET_CTEST_ARGS:-}
      popd > /dev/null
      grep -E "tests passed|Failed|\*\*\*|Not Run" "$LOGS/ctest.log" | tee -a "$SUMMARY"
      ;;
    check)
      # The paper's configuration (all branches local at P = 2) and the Figure-5 schedule
      # (the longest branch spans both GPUs), bf16 through NCCL.
      run check_paper 120 mpirun -np "$NGPU" $BIN check attention --device cuda --dtype bfloat16 \
        --seq-len 1048576 --heads 12 --head-dim 64 --segments 2048,4096,8192,16384,32768 \
        --rates 1,2,4,6,12 --causal
      grep -E "relative error|PASS|FAIL|error" "$LOGS/check_paper.log" | tee -a "$SUMMARY"
      run check_span 120 mpirun -np "$NGPU" $BIN check attention --device cuda --dtype bfloat16 \
        --seq-len 1048576 --heads 12 --head-dim 64 --segments 2048,$((1048576 / NGPU)),1048576 \
        --rates 1,$((1048576 / NGPU / 2048)),512 --causal
      grep -E "relative error|bytes|PASS|FAIL|error" "$LOGS/check_span.log" | tee -a "$SUMMARY"
      ;;
    bench)
      run bench_attention 240 $BIN bench attention --seq-lens 32768,1048576 --head-dims 64,128 \
        --json bench/results/attention_paper_$CARD.json
      cat "$LOGS/bench_attention.log" | tee -a "$SUMMARY"
      # The same with the problems on one CUDA stream instead of four.
      run bench_one_stream 240 $BIN bench attention --streams 1 \
        --seq-lens 32768,1048576 --head-dims 64,128 --no-dense \
        --json bench/results/attention_one_stream_$CARD.json
      grep -E "^dilated" "$LOGS/bench_one_stream.log" | sed 's/^/one stream: /' | tee -a "$SUMMARY"
      # The same at 32K through the plain ATen merge and through the flash kernel, for reference.
      run bench_plain_merge 120 $BIN bench attention --no-fused-merge --seq-lens 32768 \
        --no-dense --json bench/results/attention_plain_merge_$CARD.json
      grep -E "^dilated" "$LOGS/bench_plain_merge.log" | sed 's/^/plain merge: /' | tee -a "$SUMMARY"
      run bench_flash 120 $BIN bench attention --backend flash \
        --seq-lens 32768 --no-dense --json bench/results/attention_flash_$CARD.json
      grep -E "^dilated" "$LOGS/bench_flash.log" | sed 's/^/flash: /' | tee -a "$SUMMARY"
      ;;
    breakdown)
      # Each branch of the paper's attention alone, and a single dense branch (w = N = 2048)
      # beside cuDNN's dense attention of the same shape (B = 512): the per-problem overhead.
      run breakdown 180 $BIN bench attention --seq-lens 32768 --head-dims 64 --breakdown \
        --no-dense --json bench/results/attention_breakdown_$CARD.json
      grep -E "^dilated|branch" "$LOGS/breakdown.log" | tee -a "$SUMMARY"
      run one_branch 120 $BIN bench attention --seq-lens 2048 --segments 2048 --rates 1 \
        --dense-max-len 2048 --json bench/results/attention_one_branch_$CARD.json
      grep -E "^dilated|^dense" "$LOGS/one_branch.log" | tee -a "$SUMMARY"
      ;;
    weak)
      # Weak scaling: L = 2^20 tokens per GPU, N = L * P, segments {2048, L, N}.
      run weak_p1 120 $BIN bench attention --seq-lens 1048576 --tokens 1048576 \
        --weak-scaling-first 2048 --no-dense --json bench/results/weak_scaling_p1_$CARD.json
      grep -E "^dilated" "$LOGS/weak_p1.log" | sed 's/^/P=1: /' | tee -a "$SUMMARY"
      if ((NGPU >= 2)); then
        run weak_p2 180 mpirun -np 2 $BIN bench attention --sp 2 --seq-lens 2097152 \
          --tokens 2097152 --weak-scaling-first 2048 --no-dense \
          --json bench/results/weak_scaling_p2_$CARD.json
        grep -E "^dilated" "$LOGS/weak_p2.log" | sed 's/^/P=2: /' | tee -a "$SUMMARY"
      fi
      if ((NGPU >= 4)); then
        run weak_p4 240 mpirun -np 4 $BIN bench attention --sp 4 --seq-lens 4194304 \
          --tokens 4194304 --weak-scaling-first 2048 --no-dense \
          --json bench/results/weak_scaling_p4_$CARD.json
        grep -E "^dilated" "$LOGS/weak_p4.log" | sed 's/^/P=4: /' | tee -a "$SUMMARY"
      fi
      ;;
    scaling4)
      # Figure 5 on 4 GPUs, the paper's schedule: 2^30 tokens, N = 2^13 ... 2^30 (one sequence
      # of 1,073,741,824 tokens split over the 4 GPUs at the end).
      run scaling_4gpu 540 mpirun -np 4 $BIN bench scaling --memory-trace \
        --total-tokens 1073741824 --schedule paper --no-dense --repeats 5 \
        --json bench/results/scaling_4gpu_paper_$CARD.json
      grep -v "memory after" "$LOGS/scaling_4gpu.log" | tee -a "$SUMMARY"
      grep "memory after" "$LOGS/scaling_4gpu.log" | grep "rank 0" | tail -8 | tee -a "$SUMMARY"
      ;;
    scaling)
      run scaling_1gpu 300 $BIN bench scaling --total-tokens 33554432 --schedule reference \
        --dense-time-cap 3 --repeats 3 \
        --json bench/results/scaling_1gpu_$CARD.json
      cat "$LOGS/scaling_1gpu.log" | tee -a "$SUMMARY"
      if ((NGPU >= 2)); then
        run scaling_2gpu 300 mpirun -np 2 $BIN bench scaling --total-tokens 134217728 \
          --seq-lens 8192,65536,1048576,16777216,67108864,134217728 --repeats 3 \
          --schedule paper --no-dense --json bench/results/scaling_2gpu_paper_$CARD.json
        cat "$LOGS/scaling_2gpu.log" | tee -a "$SUMMARY"
      fi
      ;;
    train)
      DATA_SRC=/usr/include
      [[ -d $DATA_SRC ]] || DATA_SRC=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
      run train_base 300 $BIN train configs/base.yaml train.steps=30 optim.warmup_steps=10 --profile 3 \
        eval.interval=1000 eval.batches=1 log.interval=5 checkpoint.interval=1000 \
        checkpoint.resume=none checkpoint.dir=/tmp/longnet_ckpt data.source=$DATA_SRC \
        log.metrics=bench/results/train_base_32k_$CARD.jsonl
      grep -E "^step|^profile|model:|training|error" "$LOGS/train_base.log" | tee -a "$SUMMARY"
      ;;
    trace)
      # A Kineto trace of two steps of base.yaml at 32K on one GPU, summed up per kernel.
      DATA_SRC=/usr/include
      [[ -d $DATA_SRC ]] || DATA_SRC=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
      run trace_base 300 $BIN train configs/base.yaml train.steps=8 optim.warmup_steps=2 \
        data.batch_size=1 train.grad_accumulation=1 \
        eval.interval=1000 eval.batches=1 log.interval=1 checkpoint.interval=1000 \
        checkpoint.resume=none checkpoint.dir=/tmp/longnet_ckpt_trace data.source=$DATA_SRC \
        log.metrics=/tmp/trace_base.jsonl ${LONGNET_TRACE_ARGS:-} --trace "$LOGS/trace_base.json"
      grep -E "^step|error" "$LOGS/trace_base.log" | tee -a "$SUMMARY"
      # The same with a device sync between phases (forward, backward, all-reduce, optimizer).
      run profile_base 300 $BIN train configs/base.yaml train.steps=6 optim.warmup_steps=2 \
        data.batch_size=1 train.grad_accumulation=1 \
        eval.interval=1000 eval.batches=1 log.interval=1 checkpoint.interval=1000 \
        checkpoint.resume=none checkpoint.dir=/tmp/longnet_ckpt_profile data.source=$DATA_SRC \
        log.metrics=/tmp/profile_base.jsonl ${LONGNET_TRACE_ARGS:-} --profile 6
      grep -E "profile step|error" "$LOGS/profile_base.log" | tee -a "$SUMMARY"
      python3 bench/trace_summary.py "$LOGS/trace_base.json" --top 40 > "$LOGS/trace_summary.txt" 2>&1
      cat "$LOGS/trace_summary.txt" | tee -a "$SUMMARY"
      gzip -f "$LOGS/trace_base.json"
      ;;
    train4)
      # long_1m.yaml: the base model at a 1,048,576-token context, sequence-parallel over 4 GPUs.
      DATA_SRC=/usr/include
      [[ -d $DATA_SRC ]] || DATA_SRC=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
      run train_long_1m 420 mpirun -np 4 $BIN train configs/long_1m.yaml train.steps=20 \
        optim.warmup_steps=5 eval.interval=1000 eval.batches=1 log.interval=1 \
        checkpoint.interval=1000 checkpoint.resume=none checkpoint.dir=/tmp/longnet_ckpt_1m \
        data.source=$DATA_SRC log.metrics=bench/results/train_long_1m_sp4_$CARD.jsonl
      grep -E "^step|model:|training|error|resume" "$LOGS/train_long_1m.log" | tee -a "$SUMMARY"
      # The same with only 4 of the 12 layers recomputed (docs/scaling.md: more memory, less work).
      run train_long_1m_k4 420 mpirun -np 4 $BIN train configs/long_1m.yaml train.steps=20 \
        model.checkpoint_layers=4 optim.warmup_steps=5 eval.interval=1000 eval.batches=1 \
        log.interval=1 checkpoint.interval=1000 checkpoint.resume=none \
        checkpoint.dir=/tmp/longnet_ckpt_1m_k4 data.source=$DATA_SRC \
        log.metrics=bench/results/train_long_1m_k4_sp4_$CARD.jsonl
      grep -E "^step (1|2)0/|model:|training|error" "$LOGS/train_long_1m_k4.log" | tee -a "$SUMMARY"
      ;;
    stall)
      # A rank that stops responding mid-training on 2 GPUs: the collective watchdog must end
      # the job (NCCL communicators aborted) after train.collective_timeout_s instead of hanging.
      DATA_SRC=/usr/include
      [[ -d $DATA_SRC ]] || DATA_SRC=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
      T0=$SECONDS
      run stall 180 mpirun -np 2 $BIN train configs/base.yaml data.seq_len=65536 \
        data.batch_size=1 train.grad_accumulation=1 \
        grid.sequence_parallel=2 train.steps=50 optim.warmup_steps=5 model.num_layers=2 eval.interval=1000 \
        log.interval=1 checkpoint.interval=1000 checkpoint.resume=none \
        checkpoint.dir=/tmp/longnet_ckpt_stall data.source=$DATA_SRC \
        log.metrics=/tmp/stall.jsonl train.collective_timeout_s=20 --debug-stall 1:5
      RC=$?
      # (the watchdog ending the job with an error is the pass; a clean exit or a hang is not)
      if ((RC == 0)); then FAILED=$((FAILED + 1)); elif ((RC != 124)); then FAILED=$((FAILED - 1)); fi
      note "stall: the job ended $((SECONDS - T0)) s after start"
      grep -E "stalling|error|watchdog|has not finished|^step" "$LOGS/stall.log" | tee -a "$SUMMARY"
      ;;
    data)
      # ---- sharded data and the paper's vocabulary (issue 20) ----
      # configs/paper_lm.yaml (12 x 768, 32K context, 0.5M tokens per step, vocabulary 100,277)
      # on one GPU, with a synthetic ranks file of cl100k_base's size (bench/synthetic_ranks.py):
      # the chunked output layer and loss against the plain one, in this same run. A dataset built
      # here when this build has tiktoken (PCRE2), else a synthetic one (random ids; the manifest
      # names the ranks file by its SHA-256, which training checks without the library).
      RANKS=/tmp/longnet_paper/ranks.tiktoken DS=/tmp/longnet_paper/data
      rm -rf /tmp/longnet_paper && mkdir -p /tmp/longnet_paper
      python3 bench/synthetic_ranks.py $RANKS | tee -a "$SUMMARY"
      if $BIN tokenizer info --tokenizer tiktoken:$RANKS > "$LOGS/data_tokenizer.log" 2>&1; then
        DATA_SRC=/usr/include
        [[ -d $DATA_SRC ]] || DATA_SRC=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
        run data_build 300 $BIN data build --tokenizer tiktoken:$RANKS --source $DATA_SRC \
          --out $DS --shard-mb 256 --val-fraction 0.01 --no-progress
        grep -E "data build|error" "$LOGS/data_build.log" | tee -a "$SUMMARY"
      else
        note "data: this build has no tiktoken ($(tail -1 "$LOGS/data_tokenizer.log")); synthetic ids"
        run data_synth 300 python3 bench/synthetic_dataset.py $RANKS $DS --tokens 100000000
        tail -1 "$LOGS/data_synth.log" | tee -a "$SUMMARY"
      fi
      # name LOSS BATCH ACCUM LIMIT: 12 steps of paper_lm.yaml (16 sequences of 32K each).
      paper() {
        run paper_$1 $5 $BIN train configs/paper_lm.yaml data.path=$DS \
          data.tokenizer=tiktoken:$RANKS train.loss=$2 data.batch_size=$3 \
          train.grad_accumulation=$4 train.steps=12 optim.warmup_steps=2 eval.interval=1000 \
          eval.batches=1 log.interval=1 checkpoint.interval=1000 checkpoint.resume=none \
          checkpoint.dir=/tmp/longnet_paper/ck_$1 log.metrics=bench/results/paper_lm_$1_$CARD.jsonl
        grep -E "^model:|^data:|training done|error|out of memory" "$LOGS/paper_$1.log" |
          cut -c1-240 | sed "s/^/$1: /" | tee -a "$SUMMARY"
      }
      paper chunked_b4 chunked 4 4 240
      paper chunked_b1 chunked 1 16 300
      paper plain_b1 plain 1 16 300
      paper plain_b4 plain 4 4 150  # expected to run out of memory: 26 GB of bf16 logits alone
      # (that out-of-memory refusal is its pass; only a run that did not end in it counts)
      if grep -q "out of memory" "$LOGS/paper_plain_b4.log"; then FAILED=$((FAILED - 1)); fi
      # Steps 4..12 of each run: tokens/s, MFU, peak memory.
      python3 - bench/results/paper_lm_{chunked_b4,chunked_b1,plain_b1,plain_b4}_$CARD.jsonl \
          <<'PY' | tee -a "$SUMMARY" | tee bench/results/paper_lm_loss_paths_$CARD.txt
import json, os, sys
for path in sys.argv[1:]:
    name = os.path.basename(path)
    rows = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
    rows = [r for r in rows if r.get("step", 0) >= 4 and "tokens_per_s" in r]
    if not rows:
        print(f"{name}: no steps (see its log)")
        continue
    mean = lambda k: sum(r[k] for r in rows) / len(rows)
    print(f"{name}: {len(rows)} steps, {mean('tokens_per_s'):.0f} tokens/s, MFU "
          f"{100 * mean('mfu'):.1f}%, peak {max(r['peak_gib'] for r in rows):.1f} GiB, "
          f"last loss {rows[-1]['loss']:.4f}")
PY
      ;;
    generate)
      # Generation (docs/design.md section 7), with the build of the build stage: the decode
      # kernels and bf16 generation tests, the teacher-forced check of base.yaml in bf16 past a
      # block boundary and in float32 below one block (N < w_max), then tokens/s after 32K and
      # 1M-token prompts at batch 1 and 64 against the memory-bandwidth bound.
      run test_generation 600 build/tests/test_generation
      grep -E "^\[  (PASSED|FAILED|SKIPPED) |worst" "$LOGS/test_generation.log" | tee -a "$SUMMARY"
      run check_generate_bf16 600 $BIN check generate --config configs/base.yaml --device cuda \
        --dtype bfloat16 --seq-len 40000 --prompt-len 33001
      grep -E "worst|PASS|FAIL|error" "$LOGS/check_generate_bf16.log" | tee -a "$SUMMARY"
      run check_generate_f32 600 $BIN check generate --config configs/base.yaml --device cuda \
        --dtype float32 --seq-len 12000 --prompt-len 9001
      grep -E "worst|PASS|FAIL|error" "$LOGS/check_generate_f32.log" | tee -a "$SUMMARY"
      run bench_generate 600 $BIN bench generate --config configs/base.yaml --random-init \
        --prompt-lens 32768,1048576 --batches 1,64 --json bench/results/generate_base_$CARD.json
      cat "$LOGS/bench_generate.log" | tee -a "$SUMMARY"
      # The same at 32K without the CUDA graph: what the graph buys.
      run bench_generate_nograph 300 $BIN bench generate --config configs/base.yaml --random-init \
        --prompt-lens 32768 --batches 1,64 --no-cuda-graph \
        --json bench/results/generate_base_nograph_$CARD.json
      grep -E "^ +[0-9]" "$LOGS/bench_generate_nograph.log" | sed 's/^/no graph: /' | tee -a "$SUMMARY"
      ;;
    longctx4)
      # The model train4 trained, used at a 1,048,576-token context on 4 GPUs (issue 23): eval
      # over context lengths, sequence-parallel; generation after a 1M-byte prompt whose prefill
      # is split over the 4 GPUs, and the same prompt prefilled on one GPU for comparison.
      CK=$(ls /tmp/longnet_ckpt_1m/step_*.ckpt 2>/dev/null | tail -1)
      if [[ -z $CK ]]; then
        note "longctx4: no checkpoint in /tmp/longnet_ckpt_1m (run train4 first)"
        continue
      fi
      run eval_1m 420 mpirun -np 4 $BIN eval --checkpoint "$CK" --dtype bfloat16 \
        --context-lens 32768,131072,262144,1048576 --batches 1 --batch-size 1 \
        --json bench/results/eval_long_1m_sp4_$CARD.json
      grep -E "context|^ +[0-9]|error" "$LOGS/eval_1m.log" | tee -a "$SUMMARY"
      find /usr/include -name '*.h' -type f 2>/dev/null | sort | xargs cat 2>/dev/null |
        head -c 1048576 > /tmp/longnet_prompt_1m.txt
      run generate_1m_sp4 300 mpirun -np 4 $BIN generate --checkpoint "$CK" \
        --prompt-file /tmp/longnet_prompt_1m.txt --max-new-tokens 256 --greedy --stats
      grep -E "^generate:|error" "$LOGS/generate_1m_sp4.log" | tee -a "$SUMMARY"
      run generate_1m_one 300 $BIN generate --checkpoint "$CK" \
        --prompt-file /tmp/longnet_prompt_1m.txt --max-new-tokens 256 --greedy --stats
      grep -E "^generate:|error" "$LOGS/generate_1m_one.log" | tee -a "$SUMMARY"
      ;;
    *) note "unknown stage $stage" ;;
  esac
done
cp -r "$LOGS" logs_copy 2>/dev/null; tar czf "$OUT_DIR/results.tgz" bench/results logs_copy; rm -rf logs_copy
note "done: $(date -u +%FT%TZ), $FAILED command(s) failed"
((FAILED == 0))
