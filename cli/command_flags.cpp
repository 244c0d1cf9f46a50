// The flags of every command, declared in one place (see commands.h): each with its default,
// help and allowed range. Light on purpose (no LibTorch calls): the flags fuzzer links it.
#include <climits>
#include <functional>
#include <map>

#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/train/tokenizer_train.h"

namespace longnet {

// The flags of `longnet check comm`.
void flags_check_comm(CliFlags& f) {
  f.add("device", "cpu", "cpu (MPI) or cuda (NCCL)");
  f.add("elements", "1024", "elements per rank", spec_range(1, 1 << 28));
}

// The flags of `longnet check attention`.
void flags_check_attention(CliFlags& f) {
  f.add("seq-len", "4096", "tokens in the whole sequence (N)", kTokens);
  f.add("batch", "1", "sequences", kCount);
  f.add("heads", "12", "attention heads", kHeads);
  f.add("head-dim", "64", "dimension per head", kHeadDim);
  f.add("segments", "2048,4096", "segment lengths, comma-separated", kTokens);
  f.add("rates", "1,2", "dilation rates, one per segment length", kTokens);
  f.add_switch("causal", "causal attention");
  f.add("dtype", "float32", "float32, bfloat16, float16 or float64");
  f.add("sp", "0", "sequence-parallel ranks (0 = all ranks)", spec_range(0, 1 << 20));
  f.add("seed", "0", "seed of the random input (the same on every rank)", kSeed);
  f.add("device", "cpu", "cpu (MPI) or cuda (NCCL)");
  engine_flags_add(f);
}

// The flags of `longnet bench attention`.
void flags_bench_attention(CliFlags& f) {
  f.add("seq-lens", "32768,1048576", "sequence lengths N (global), comma-separated", kTokens);
  f.add("tokens", "1048576", "tokens per step B*N; B = tokens / N", kTokens);
  f.add("heads", "12", "attention heads", kHeads);
  f.add("head-dims", "64", "head dims, comma-separated", kHeadDim);
  f.add("segments", "2048,4096,8192,16384,32768", "segment lengths", kTokens);
  f.add("rates", "1,2,4,6,12", "dilation rates", kTokens);
  f.add("weak-scaling-first", "0",
        "if > 0: segments {F, L, N} with rates {1, L/F, N/F} (the paper's Figure-5 schedule)",
        kTokens0);
  f.add_switch("non-causal", "time non-causal attention (default causal)");
  f.add("dtype", "bfloat16", "bfloat16, float16 or float32 (float64 on the CPU)");
  f.add("sp", "1", "sequence-parallel ranks (run under mpirun -np P)", kRanks);
  f.add("warmup", "3", "untimed runs", kRuns0);
  f.add("repeats", "10", "timed runs (median reported)", kRuns1);
  f.add_switch("no-dense", "skip LibTorch's dense attention");
  f.add("dense-max-len", "32768", "time dense attention up to this N", kTokens0);
  f.add_switch("forward-only", "skip the backward");
  f.add_switch("breakdown", "also time each branch alone (single GPU)");
  f.add("json", "", "write results to this JSON file");
  f.add("device", "cuda", "cuda or cpu");
  engine_flags_add(f);
}

// The flags of `longnet bench scaling`.
void flags_bench_scaling(CliFlags& f) {
  f.add("total-tokens", "33554432", "tokens per step, fixed while N grows", kTokens);
  f.add("seq-lens", "", "sequence lengths (default: powers of two from 8192 to the total)",
        kTokens);
  f.add("heads", "4", "attention heads", kHeads);
  f.add("head-dim", "8", "dimension per head", kHeadDim);
  f.add("dtype", "float16", "float16, bfloat16 or float32 (float64 on the CPU)");
  f.add("schedule", "reference",
        "reference: w {8192,16384,32768} clipped, r 2^(w/8192-1); paper: w {2048, N/P, N}");
  f.add_switch("no-dense", "skip dense SDPA");
  f.add("dense-max-len", "131072", "time dense SDPA up to this N", kTokens0);
  f.add("dense-time-cap", "10", "seconds: stop timing dense past a forward this slow",
        spec_above(0, 1e6));
  f.add("warmup", "2", "untimed runs", kRuns0);
  f.add("repeats", "5", "timed runs (median reported)", kRuns1);
  f.add("json", "", "write results to this JSON file");
  f.add("device", "cuda", "cuda or cpu");
  engine_flags_add(f);
}

// The flags of `longnet train`.
void flags_train(CliFlags& f) {
  f.add("stop-after", "0", "stop (with a checkpoint) after this many steps of this run",
        spec_range(0, double(kMaxTokens)));
  f.add("profile", "0", "time forward, backward, all-reduce and optimizer of the first N steps",
        spec_range(0, double(kMaxTokens)));
  f.add("trace", "",
        "write a Kineto trace (Chrome JSON) of steps 4 and 5 of this run to this path (with "
        ".rankR added when there are several ranks); sum it up with bench/trace_summary.py");
  f.add("check-config", "",
        "validate the config for a job of this many ranks (1 to 1048576; 1 for one process), "
        "print it resolved, and exit",
        spec_range(1, 1 << 20));
  f.add_switch("print-ranks",
               "print the rank count the resolved config's grid asks for (launch/train.sh's "
               "mpirun -np), after checking the config for it, and exit");
  // Testing aids (train/fault_injection.h); not listed in --help.
  const OptionSpec steps = spec_range(0, double(kMaxTokens));
  f.add_hidden("debug-nan-at", "", "poison the loss with NaN at these steps (0-based)", steps);
  f.add_hidden("debug-sleep-after", "0", "after this step, pause 0.5 s per step", steps);
  f.add_hidden("debug-stall", "", "RANK:STEP, that rank stops responding at that step");
  f.add_hidden("debug-stop-in-eval", "-1", "a stop signal (SIGUSR1) during this step's evaluation",
               spec_range(-1, double(kMaxTokens)));
  f.add_hidden("debug-stop-in-save", "-1",
               "a stop signal (SIGUSR1) as this step's checkpoint is written",
               spec_range(-1, double(kMaxTokens)));
  f.add_hidden("debug-stop-in-step", "-1",
               "a stop signal (SIGUSR1) before this step's second micro-step",
               spec_range(-1, double(kMaxTokens)));
  f.add_hidden("debug-metrics-fail-at", "-1",
               "this step's metrics row fails to write (as on a full disk)",
               spec_range(-1, double(kMaxTokens)));
  f.add_hidden("debug-crash-in-checkpoint", "-1", "die half-way through writing this checkpoint",
               spec_range(-1, double(kMaxTokens)));
  f.add_switch_hidden("debug-parser-hang", "the config parser's trial child never returns");
  f.add_hidden("debug-truncate-data-at", "-1",
               "before this step, truncate every training shard to 64 bytes",
               spec_range(-1, double(kMaxTokens)));
}

// --skip-bad-lines of the commands that read a corpus (data build, tokenizer train).
static void flag_skip_bad_lines(CliFlags& f) {
  f.add_switch("skip-bad-lines",
               "skip and count malformed JSON lines (invalid JSON, the field missing or not a "
               "string) instead of stopping at the first");
}

// The flags of `longnet data build`.
void flags_data_build(CliFlags& f) {
  f.add("tokenizer", "",
        "KIND[:PATH]: bytes, bytes:eot, tiktoken:FILE.tiktoken, sentencepiece:FILE.model");
  f.add("source", "",
        "a directory, text, .jsonl, .gz or .zst file (repeatable; more paths may follow it)");
  f.add("out", "",
        "the dataset directory (new, empty, or an interrupted build of the same inputs)");
  f.add("shard-mb", "1024", "token bytes per shard, at most, in MiB (fractions allowed)",
        spec_above(0, 1 << 20));
  f.add("jsonl-field", "text", "the field of a JSON line that holds the document");
  flag_skip_bad_lines(f);
  f.add("val-fraction", "0.005", "fraction of the text kept for validation", spec_half_open(0, 1));
  f.add("workers", "0", "tokenizing threads (0: one per core)", spec_range(0, 4096));
  f.add_switch("no-progress", "no progress line on stderr");
  // Testing aids (train/fault_injection.h); not listed in --help.
  f.add_hidden("debug-fail-after-shards", "-1", "fail (as an error would) after N shards",
               spec_range(-1, 1 << 30));
  f.add_hidden("debug-kill-after-shards", "-1", "exit at once (as kill -9) after N shards",
               spec_range(-1, 1 << 30));
  f.add_hidden("debug-term-after-shards", "-1", "raise SIGTERM (as kill PID) after N shards",
               spec_range(-1, 1 << 30));
}

// The flags of `longnet tokenizer train`.
void flags_tokenizer_train(CliFlags& f) {
  f.add("source", "",
        "a directory, text, .jsonl, .gz or .zst file (repeatable; more paths may "
        "follow it)");
  f.add("vocab-size", "", "vocabulary size of the model (e.g. 32000)");
  f.add("out", "", "the SentencePiece .model file to write (its directory is created if missing)");
  f.add("jsonl-field", "text", "the field of a JSON line that holds the document");
  flag_skip_bad_lines(f);
  f.add(
      "max-input-bytes", std::to_string(TokenizerTrainOptions{}.max_input_bytes),
      "about this much text is read (reading stops at the line that passes twice this), from files "
      "sampled by name across the corpus",
      spec_range(1, double(int64_t{1} << 62)));
  f.add("max-sentences", std::to_string(TokenizerTrainOptions{}.max_sentences),
        "SentencePiece trains on a uniform sample of at most this many lines (more than 100)",
        spec_range(101, INT32_MAX));
  f.add("seed", "1", "sampling seed (same seed and inputs, same model)",
        spec_range(0, 4294967294.0));
  f.add("threads", "0",
        "training threads, 1 to 128 (0: 16 on every machine; the count is recorded in the model, "
        "so its hash depends on it)",
        spec_range(0, 128));
  f.add_switch("verbose", "show SentencePiece's own progress log");
}

// The flags of `longnet tokenizer encode`.
void flags_tokenizer_encode(CliFlags& f) {
  f.add("tokenizer", "", kTokenizerHelp);
  f.add_switch("stats", "print bytes, ids and throughput on stderr");
}

// The flags of `longnet tokenizer decode`.
void flags_tokenizer_decode(CliFlags& f) {
  f.add("tokenizer", "", kTokenizerHelp);
}

// The flags of `longnet tokenizer info`.
void flags_tokenizer_info(CliFlags& f) {
  f.add("tokenizer", "", kTokenizerHelp);
}

// The flags of `longnet export`.
void flags_export(CliFlags& f) {
  f.add("out", "", "the directory to write model.safetensors and config.json into");
  f.add("dtype", "",
        "cast the parameters to float32, bfloat16 or float16 (default: float32, as training "
        "stores them)");
}

// The flags of the commands that use a trained model (model_flags.h).
void model_flags_add(CliFlags& f, bool random_init_shown) {
  f.add("checkpoint", "",
        "a `longnet train` checkpoint (runs/NAME/checkpoints/step_*.ckpt), or a parameters file "
        "with --config");
  f.add("config", "", "YAML config whose model: section built the parameters file");
  // (listed where it is meant for timing: bench generate)
  const char* random_init = "no checkpoint: fresh parameters for --config's model";
  if (random_init_shown)
    f.add_switch("random-init", random_init);
  else
    f.add_switch_hidden("random-init", random_init);
}

// The flags of `longnet check generate`.
void flags_check_generate(CliFlags& f) {
  f.add("config", "", "YAML config; its model: section is the model (random parameters)");
  f.add("seq-len", "0", "tokens per sequence N (0: the config's data.seq_len)", kTokens0);
  f.add("prompt-len", "0", "prompt of the first sequence (0: N/2 + 1, mid-segment)", kTokens0);
  f.add(
      "batch", "2",
      "sequences; sequence b's prompt is --prompt-len less b/(3 x batch) of it (at least 1 token)",
      kCount);
  f.add("prefill-chunk", "0", "tokens per prefill forward (0: twice the largest segment)",
        kTokens0);
  f.add("seed", "0", "seed of the parameters and tokens", kSeed);
  f.add("device", "cpu", "cpu or cuda");
  f.add("dtype", "float32", "float32, bfloat16, float16 or float64");
  step_flags_add(f);
}

// The flags of `longnet generate`.
void flags_generate(CliFlags& f) {
  model_flags_add(f);
  f.add("prompt", "", "the prompt text ('' starts a document, from the end-of-text token)");
  f.allow_empty("prompt");
  f.add("prompt-file", "", "a file whose whole content is the prompt (a regular file, <= 1 GiB)");
  f.add("prompts-file", "",
        "a file with one prompt per line: generated as one batch (a regular file, <= 1 GiB)");
  f.add("max-new-tokens", "256", "tokens to generate per prompt (fewer at end-of-text)", kTokens0);
  f.add_switch("greedy", "always the most likely token");
  f.add("temperature", "1.0", "sampling temperature (0: greedy)", spec_range(0, 1e6));
  f.add("top-k", "0", "sample among the k most likely tokens (0: all)", spec_range(0, INT32_MAX));
  f.add("top-p", "1.0", "sample among the most likely tokens holding probability p",
        spec_above(0, 1));
  f.add("seed", "0", "seed of the sampling", kSeed);
  f.add("tokenizer", "",
        "tokenizer spec (bytes, bytes:eot, tiktoken:FILE, sentencepiece:FILE); default: the one "
        "the model's training data was made with (its config's data.tokenizer, or its dataset's "
        "manifest); a different one is refused");
  f.add("device", "auto", "cpu, cuda, or auto (cuda when present)");
  f.add("dtype", "auto",
        "float32, bfloat16, float16 or float64 (auto: bfloat16 on cuda, float32 on cpu)");
  f.add("prefill-chunk", "65536", "tokens per prefill forward (rounded to the largest segment)",
        kTokens);
  step_flags_add(f);
  f.add_switch("stats", "print prefill and generation speed to stderr");
}

// The flags of `longnet eval`.
void flags_eval(CliFlags& f) {
  model_flags_add(f);
  f.add("data", "",
        "token file whose validation split is scored (default: the config's data.path)");
  f.add("context-lens", "2048,4096,8192,16384,32768", "context lengths, comma-separated", kTokens);
  f.add("score-tokens", "0",
        "final tokens of each window that are scored (0: the smallest context length)", kTokens0);
  f.add("batches", "4", "forwards per context length", kCount);
  f.add("batch-size", "1", "windows per forward", kCount);
  f.add("json", "", "write the results to this JSON file");
  f.add("plot", "",
        "also draw loss against context length into this .png, .svg or .pdf file (needs --json)");
  f.add("device", "auto", "cpu, cuda, or auto (cuda when present)");
  f.add("dtype", "float32", "float32, or bfloat16 (autocast on cuda, as training evaluates)");
  f.add_hidden("seed", "0", "seed of --random-init", kSeed);
  // Testing aid (train/fault_injection.h); not listed in --help.
  f.add_hidden("debug-fail-at-length", "-1",
               "fail (as an error would) before the N-th context length (0-based)",
               spec_range(-1, 1 << 30));
}

// The flags of `longnet bench generate`.
void flags_bench_generate(CliFlags& f) {
  model_flags_add(f, true);
  f.add("prompt-lens", "32768,1048576", "prompt lengths, comma-separated", kTokens);
  f.add("batches", "1,64", "batch sizes, comma-separated", kCount);
  f.add("cache-fill", "prompt",
        "prompt: time the steps right after each prompt; full: lengthen each prompt so that the "
        "timed steps end at the last position of a cycle of the segments, where every branch's "
        "segment is full and a step reads the most cached rows");
  f.add("steps", "128", "timed steps per measurement", kRuns1);
  f.add("warmup", "8", "untimed steps first (the CUDA graph is captured on the second)",
        spec_range(2, 100000));
  f.add("device", "cuda", "cuda or cpu");
  f.add("dtype", "bfloat16", "bfloat16, float16 or float32 (the parameters' dtype)");
  f.add("prefill-chunk", "65536", "tokens per prefill forward", kTokens);
  f.add("bandwidth", "4.8e12", "memory bandwidth in bytes/s for the bound (H200: 4.8e12)",
        spec_range(1e6, 1e16));
  step_flags_add(f);
  f.add("seed", "0",
        "seed of the prompt tokens, and of the parameters with --random-init (no checkpoint: "
        "fresh parameters for --config's model)",
        kSeed);
  f.add("json", "", "write the results to this JSON file");
  f.add("trace", "",
        "write a Kineto trace (Chrome JSON) of 8 more steps of each measurement into this "
        "directory, as generate_pP_bB.json (P: prompt length, B: batch); sum one up with "
        "bench/trace_summary.py");
}

namespace {

const std::map<std::string, std::function<void(CliFlags&)>>& table() {
  static const std::map<std::string, std::function<void(CliFlags&)>> t = {
      {"check comm", flags_check_comm},
      {"check attention", flags_check_attention},
      {"bench attention", flags_bench_attention},
      {"bench scaling", flags_bench_scaling},
      {"data build", flags_data_build},
      {"train", flags_train},
      {"tokenizer train", flags_tokenizer_train},
      {"tokenizer encode", flags_tokenizer_encode},
      {"tokenizer decode", flags_tokenizer_decode},
      {"tokenizer info", flags_tokenizer_info},
      {"export", flags_export},
      {"check generate", flags_check_generate},
      {"generate", flags_generate},
      {"eval", flags_eval},
      {"bench generate", flags_bench_generate},
  };
  return t;
}

}  // namespace

const std::vector<std::string>& command_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, fn] : table()) n.push_back(name);
    return n;
  }();
  return names;
}

bool command_flags(const std::string& name, CliFlags& f) {
  auto it = table().find(name);
  if (it == table().end()) return false;
  it->second(f);
  return true;
}

}  // namespace longnet
