// The flags of every command, declared in one place (see commands.h): each with its default,
// help and allowed range. Light on purpose (no LibTorch calls): the flags fuzzer links it.
#include <functional>
#include <map>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "train/tokenizer_train.h"

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
  f.add("dtype", "bfloat16", "bfloat16, float16 or float32");
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
  f.add("dtype", "float16", "float16, bfloat16 or float32");
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
  f.add("check-config", "1",
        "validate the config for a job of this many ranks, print it resolved, and exit",
        spec_range(1, 1 << 20));
  // Testing aids (train/fault_injection.h); not listed in --help.
  const OptionSpec steps = spec_range(0, double(kMaxTokens));
  f.add_hidden("debug-nan-at", "", "poison the loss with NaN at these steps (0-based)", steps);
  f.add_hidden("debug-sleep-after", "0", "after this step, pause 0.5 s per step", steps);
  f.add_hidden("debug-stall", "", "RANK:STEP, that rank stops responding at that step");
  f.add_hidden("debug-crash-in-checkpoint", "-1", "die half-way through writing this checkpoint",
               spec_range(-1, double(kMaxTokens)));
  f.add_switch_hidden("debug-parser-hang", "the config parser's trial child never returns");
  f.add_hidden("debug-truncate-data-at", "-1",
               "before this step, truncate every training shard to 64 bytes",
               spec_range(-1, double(kMaxTokens)));
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
  f.add("val-fraction", "0.005", "fraction of the text kept for validation", spec_half_open(0, 1));
  f.add("workers", "0", "tokenizing threads (0: one per core)", spec_range(0, 4096));
  f.add_switch("no-progress", "no progress line on stderr");
  // Testing aids (train/fault_injection.h); not listed in --help.
  f.add_hidden("debug-fail-after-shards", "-1", "fail (as an error would) after N shards",
               spec_range(-1, 1 << 30));
  f.add_hidden("debug-kill-after-shards", "-1", "exit at once (as kill -9) after N shards",
               spec_range(-1, 1 << 30));
}

// The flags of `longnet tokenizer train`.
void flags_tokenizer_train(CliFlags& f) {
  f.add("source", "",
        "a directory, text, .jsonl, .gz or .zst file (repeatable; more paths may "
        "follow it)");
  f.add("vocab-size", "", "vocabulary size of the model (e.g. 32000)");
  f.add("out", "", "the SentencePiece .model file to write");
  f.add("jsonl-field", "text", "the field of a JSON line that holds the document");
  f.add("max-input-bytes", std::to_string(TokenizerTrainOptions{}.max_input_bytes),
        "about this much text is read, from files sampled by name across the corpus");
  f.add("max-sentences", std::to_string(TokenizerTrainOptions{}.max_sentences),
        "SentencePiece trains on a uniform sample of at most this many lines");
  f.add("seed", "1", "sampling seed (same seed and inputs, same model)");
  f.add("threads", "0", "training threads (0: one per core)");
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
        "cast floating-point parameters to float32, bfloat16 or float16 (default: as stored)");
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
