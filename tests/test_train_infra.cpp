// Training infrastructure: strict YAML configs (every error class names its key and line),
// byte-token files and the grid sampler, the learning-rate schedule, crash-safe checkpoint
// files and JSON-lines metrics. Everything runs on small files under /tmp in seconds.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "longnet/core/file_util.h"
#include "longnet/core/little_endian.h"
#include "longnet/core/text.h"
#include "longnet/tests/temp_files.h"
#include "longnet/tests/test_util.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/config.h"
#include "longnet/train/config_schema.h"
#include "longnet/train/metrics.h"
#include "longnet/train/schedule.h"
#include "longnet/train/token_data.h"
#include "longnet/train/token_dataset.h"
#include "longnet/train/token_sampler.h"
#include "longnet/train/train_state.h"

namespace longnet {
namespace {

// POSIX calls rather than std::filesystem: libtorch.so exports std::filesystem symbols of
// another build that the dynamic linker may bind to (they crash).

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

int64_t file_size(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<int64_t>(st.st_size);
}

void resize_file(const std::string& path, int64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), size), 0) << path;
}

using testing::read_file;
using testing::TempDir;
using testing::write_file;

// Runs fn, which must throw E; every `needles` string must occur in the message.
template <typename E = std::invalid_argument>
std::string expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  return testing::expect_throw<E>(fn, needles);
}

// ---- configs ---------------------------------------------------------------------------------

class Config : public ::testing::Test {
 protected:
  // Writes `yaml` to cfg.yaml and loads it.
  TrainConfig load(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
    write_file(path(), yaml);
    return config_load(path(), overrides);
  }
  // Expects loading `yaml` to fail with a message holding "cfg.yaml:<line>", `key` and `more`.
  std::string load_fails(const std::string& yaml, int line, const std::string& key,
                         const std::vector<std::string>& more = {}) {
    std::vector<std::string> needles = {"cfg.yaml:" + std::to_string(line) + ":", key};
    needles.insert(needles.end(), more.begin(), more.end());
    return expect_error([&] { load(yaml); }, needles);
  }
  // Expects config_check on the loaded `yaml` to fail likewise.
  std::string check_fails(const std::string& yaml, int world, int line, const std::string& key,
                          const std::vector<std::string>& more = {}) {
    TrainConfig c = load(yaml);
    std::vector<std::string> needles = {"cfg.yaml:" + std::to_string(line) + ":", key};
    needles.insert(needles.end(), more.begin(), more.end());
    return expect_error([&] { config_check(c, world); }, needles);
  }
  std::string path() const { return dir_ / "cfg.yaml"; }
  TempDir dir_;
};

const char* kSmallConfig = R"(# a tiny CPU run
model:
  variant: decoder_only
  d_model: 64
  num_heads: 4
  num_layers: 2
  dim_feedforward: 128
  segment_lengths: [32, 64, 128]
  dilation_rates: [1, 2, 6]
  dropout: 0.1
  activation: relu
  activation_checkpointing: true
device: cpu
grid: {data_parallel: 0, sequence_parallel: 2}
data:
  path: "/tmp/some dir/tokens.bin"
  seq_len: 256
  batch_size: 3
optim:
  lr: 3.0e-4
  betas: [0.9, 0.95]
  warmup_steps: 5
  end_lr: 1.0e-5
  decay_power: 2
train:
  steps: 50
  seed: 7
eval: {interval: 10, batches: 2}
checkpoint: {dir: /tmp/ckpt, interval: 25, keep: 2, resume: none}
log: {interval: 1, metrics: "m.jsonl"}
)";

TEST_F(Config, EmptyPathGivesDefaultsThatPassChecks) {
  TrainConfig c = config_load("", {});
  EXPECT_EQ(c, TrainConfig{});
  EXPECT_EQ(c.model.layer.attention.segment_lengths,
            (std::vector<int64_t>{2048, 4096, 8192, 16384, 32768}));
  config_check(c, 1);
  config_check(c, 4);  // data parallel 4 x sequence parallel 1
  EXPECT_EQ(config_data_parallel(c, 4), 4);
}

TEST_F(Config, ValidConfigLoadsAndRoundTripsThroughYaml) {
  TrainConfig c = load(kSmallConfig);
  EXPECT_EQ(c.model.layer.d_model, 64);
  EXPECT_EQ(c.model.layer.attention.dilation_rates, (std::vector<int64_t>{1, 2, 6}));
  EXPECT_DOUBLE_EQ(c.model.layer.dropout, 0.1);
  EXPECT_EQ(c.model.layer.activation, "relu");
  EXPECT_EQ(c.grid.sequence_parallel, 2);
  EXPECT_EQ(c.data.path, "/tmp/some dir/tokens.bin");
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.optim.decay_power, 2.0);  // a whole number is a valid float
  EXPECT_TRUE(c.model.activation_checkpointing);
  EXPECT_EQ(c.checkpoint.resume, "none");
  EXPECT_EQ(c.origin.at("model.d_model"), path() + ":4");
  EXPECT_EQ(c.origin.count("model.num_encoder_layers"), 0u);  // left at its default
  config_check(c, 2);
  config_check(c, 4);
  EXPECT_EQ(config_data_parallel(c, 4), 2);

  const std::string yaml = config_to_yaml(c);
  write_file(dir_ / "resolved.yaml", yaml);
  TrainConfig back = config_load(dir_ / "resolved.yaml", {});
  EXPECT_EQ(back, c) << yaml;
  EXPECT_EQ(config_to_yaml(back), yaml);
  EXPECT_NE(back, TrainConfig{});
}

TEST_F(Config, UnknownKeySuggestsTheClosestKnownKey) {
  load_fails("model:\n  d_model: 64\n  num_head: 4\n", 3, "model.num_head",
             {"unknown key", "did you mean 'model.num_heads'?"});
  load_fails("model:\n  lr: 0.1\n", 2, "model.lr", {"did you mean 'optim.lr'?"});
  load_fails("optim:\n  warmup: 10\n", 2, "optim.warmup", {"did you mean 'optim.warmup_steps'?"});
  std::string msg = load_fails("modle:\n  d_model: 64\n", 1, "modle", {"did you mean 'model'?"});
  load_fails("model:\n  colour: blue\n", 2, "model.colour", {"model takes: variant"});
}

TEST_F(Config, DuplicateKeyIsAnError) {
  load_fails("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", 3, "optim.lr",
             {"duplicate key", "first given at " + path() + ":2"});
  load_fails("grid: {sequence_parallel: 1, sequence_parallel: 2}\n", 1, "grid.sequence_parallel",
             {"duplicate key"});
  load_fails("model:\n  d_model: 64\nmodel:\n  num_heads: 4\n", 3, "model", {"duplicate key"});
}

TEST_F(Config, WrongTypesAreErrors) {
  load_fails("data:\n  seq_len: abc\n", 2, "data.seq_len", {"expected a whole number", "'abc'"});
  load_fails("data:\n  seq_len: 2048.0\n", 2, "data.seq_len", {"float", "write 2048"});
  load_fails("data:\n  seq_len: 1e3\n", 2, "data.seq_len", {"float", "write 1000"});
  load_fails("optim:\n  lr: [0.1]\n", 2, "optim.lr", {"expected a number", "a list"});
  load_fails("optim:\n  lr: \"3e-4\"\n", 2, "optim.lr", {"quoted string", "remove the quotes"});
  load_fails("optim:\n  lr: fast\n", 2, "optim.lr", {"expected a number"});
  load_fails("optim:\n  lr: .nan\n", 2, "optim.lr", {"not a finite number"});
  load_fails("optim:\n  lr:\n", 2, "optim.lr", {"has no value"});
  load_fails("model:\n  segment_lengths: 2048\n", 2, "model.segment_lengths", {"write [2048]"});
  load_fails("model:\n  segment_lengths: [64, x]\n", 2, "model.segment_lengths[1]",
             {"whole number"});
  load_fails("model:\n  activation: {a: 1}\n", 2, "model.activation", {"a mapping"});
  load_fails("model: 5\n", 1, "model", {"is a section"});
  load_fails("optim:\n  betas: [0.9]\n", 2, "optim.betas", {"expected 2 values"});
  load_fails("train:\n  seed: !!str 5\n", 2, "train.seed", {"remove the tag"});
  load_fails("- model\n", 1, "", {"must be a mapping of sections"});
}

TEST_F(Config, YamlQuirksAreRejected) {
  load_fails("train:\n  seed: 010\n", 2, "train.seed", {"ambiguous", "octal"});
  load_fails("data:\n  seq_len: 0x800\n", 2, "data.seq_len", {"decimal"});
  load_fails("optim:\n  lr: 00.5\n", 2, "optim.lr", {"ambiguous"});
  load_fails("model:\n  activation_checkpointing: yes\n", 2, "model.activation_checkpointing",
             {"ambiguous", "write true or false"});
  load_fails("model:\n  activation_checkpointing: On\n", 2, "model.activation_checkpointing",
             {"write true or false"});
  load_fails("model:\n  activation_checkpointing: 1\n", 2, "model.activation_checkpointing",
             {"expected true or false"});
  load_fails("engine:\n  fused_merge: no\n", 2, "engine.fused_merge", {"ambiguous"});
  load_fails("engine:\n  streams: 0\n", 2, "engine.streams", {">= 1 and <= 16"});
  load_fails("engine:\n  backend: cudnnn\n", 2, "engine.backend", {"did you mean cudnn?"});
  load_fails("train:\n  activation_checkpointing: true\n", 2, "train.activation_checkpointing",
             {"did you mean 'model.activation_checkpointing'?"});
  load_fails("model:\n  activation: swish\n", 2, "model.activation",
             {"'swish' is not one of gelu, relu"});
  load_fails("model:\n  activation: gelu_\n", 2, "model.activation", {"did you mean gelu?"});
  load_fails("device: yes\n", 1, "device", {"not one of cpu, cuda"});
  load_fails("train:\n  precision: 16\n", 2, "train.precision", {"not one of fp32, bf16"});
  load_fails("model:\n  variant: 1\n", 2, "model.variant", {"decoder_only, encoder_decoder"});
  load_fails("a: 1\n---\nb: 2\n", 3, "", {"second YAML document"});
  // Tags on mappings and lists are refused as on scalars (they would be dropped unread).
  load_fails("grid: !foo {sequence_parallel: 1}\n", 1, "grid", {"is tagged !foo; remove the tag"});
  // YAML's own string tag on a string is what the key reads anyway: accepted.
  EXPECT_EQ(config_parse("log:\n  dir: !!str runA\n", "c", {}).log.dir, "runA");
  // Bytes that are no UTF-8 in a string (a Latin-1 path): checkpoints keep the config as text
  // Python reads as UTF-8, so they are refused; a UTF-8 path (or YAML's \xff escape) is fine.
  load_fails("log:\n  dir: r\xffz\n", 2, "log.dir",
             {"holds bytes that are no UTF-8 (at byte 1", "rename the path"});
  load_fails("model:\n  dilation_rates: !!set [1]\n", 2, "model.dilation_rates",
             {"is tagged tag:yaml.org,2002:set"});
  // A path key with '~' or $NAME, which no shell expands in a config.
  load_fails("log:\n  dir: ~/runs/x\n", 2, "log.dir", {"starts with '~'", "write the path out"});
  load_fails("data:\n  tokenizer: sentencepiece:${HOME}/m\n", 2, "data.tokenizer",
             {"holds '${HOME}'"});
  // (a config stored in a checkpoint of an earlier version, which took such paths literally,
  // still loads)
  EXPECT_EQ(config_parse("log:\n  dir: ~/r\n", "stored", {}).log.dir, "~/r");
}

// checkpoint.dir left unset is the run folder's checkpoints/ (a new log.dir alone is a new run).
TEST_F(Config, CheckpointDirDefaultsToTheRunFolder) {
  EXPECT_EQ(load("log:\n  dir: runs/x/\n").checkpoint.dir, "runs/x/checkpoints");
  EXPECT_EQ(load("train:\n  steps: 5\n").checkpoint.dir, "runs/default/checkpoints");
  EXPECT_EQ(load("log:\n  dir: runs/x\ncheckpoint:\n  dir: ck\n").checkpoint.dir, "ck");
  EXPECT_EQ(config_parse("log:\n  dir: a\n", "c", {"log.dir=b"}).checkpoint.dir, "b/checkpoints");
  EXPECT_EQ(config_parse("log:\n  dir: a\n", "c", {"checkpoint.dir=z"}).checkpoint.dir, "z");
  // (a resolved config.yaml names it, and loads back to itself)
  const TrainConfig c = load("log:\n  dir: runs/y\n");
  EXPECT_EQ(config_parse(config_to_yaml(c), "again", {}).checkpoint.dir, "runs/y/checkpoints");
}

// Documents on which yaml-cpp 0.8 itself never returns (found by tests/fuzz): config_parse must
// refuse them before yaml-cpp sees them (if one got through, this test would hang).
TEST_F(Config, ParserTrapsAreRefusedBeforeYamlCpp) {
  // Documents whose root is not a block mapping: '[...]', '{...}', quoted, '- ', ','.
  for (const char* text :
       {"[a] ,b\n", "\"x\" ,a\n", "[] [] ,\n", "[] \"x\" ,\n", "[] !t ,b\n", "[] &a,b\n",
        "[] !t(,b\n", "[] !t{x} ,b\n", "[a'b] ,c\n", "{a: 'x]'} ,c\n", "[a, # c\n 'x'] ,b\n",
        "[#]\n],\n", "a: 1\n---\n[a] ,b\n", "model: {}\n%v: [a\n,b]\n", "+\n[ #\n,\n",
        " r:\n\"\"\"\",\n"}) {
    SCOPED_TRACE(text);
    expect_error([&] { config_parse(text, "t.yaml"); },
                 {"t.yaml:", "must be a mapping of sections"});
  }
  // A ',' first on a line outside brackets, also after a '%' line.
  for (const char* text :
       {",a\n", "- a\n,b\n", "%\n,\n", "a\n# c\n,b\n", "model: 1\n  ,x\n", " k:[:\n,\n", " k:\n,\n",
        ".\n#\n!,\n", ".\n&a ,b\n", "&x ,a\n", " /: /[\"\n,\n"}) {
    SCOPED_TRACE(text);
    expect_error([&] { config_parse(text, "t.yaml"); }, {"t.yaml:", "YAML syntax error"});
  }
}

// Close to the traps but valid: apostrophes and commas inside plain and quoted scalars.
TEST_F(Config, ValidConfigsNearTheParserTrapsLoad) {
  auto c = config_parse(
      "data:\n  path: it's/data,1.tokens\n  source: 'a, b'\n"
      "log: {metrics: \"m,1.jsonl\"}  # a comment, with a comma\n",
      "t.yaml");
  EXPECT_EQ(c.data.path, "it's/data,1.tokens");
  EXPECT_EQ(c.data.source, "a, b");
  EXPECT_EQ(c.log.metrics, "m,1.jsonl");
}

TEST_F(Config, ZeroAndNegativeSizesAreErrors) {
  load_fails("model:\n  d_model: 0\n", 2, "model.d_model", {"must be >= 1"});
  load_fails("data:\n  batch_size: -2\n", 2, "data.batch_size", {"-2", "must be >= 1"});
  load_fails("optim:\n  lr: 0\n", 2, "optim.lr", {"out of range", "<= 1000"});
  // Not 0 once in float32, as the optimizer computes (nor the LayerNorm's epsilon).
  load_fails("optim:\n  lr: 4.9e-324\n", 2, "optim.lr", {"out of range", ">= 1.17"});
  load_fails("model:\n  layer_norm_eps: 1e-45\n", 2, "model.layer_norm_eps",
             {"out of range", ">= 1.17"});
  load_fails("model:\n  segment_lengths: [64, 0]\n", 2, "model.segment_lengths[1]",
             {"must be >= 1"});
  load_fails("model:\n  dropout: 1.0\n", 2, "model.dropout", {"in [0, 1)"});
  load_fails("optim:\n  betas: [0.9, 1.0]\n", 2, "optim.betas[1]", {"in [0, 1)"});
  load_fails("checkpoint:\n  keep: 0\n", 2, "checkpoint.keep", {">= 1"});
  load_fails("eval:\n  interval: -1\n", 2, "eval.interval", {">= 0"});  // 0: no evaluation
  load_fails("train:\n  steps: -1\n", 2, "train.steps", {">= 1"});
  load_fails("grid:\n  sequence_parallel: 0\n", 2, "grid.sequence_parallel", {">= 1"});
  load_fails("data:\n  path: \"\"\n", 2, "data.path", {"must not be empty"});
}

TEST_F(Config, SyntaxErrorReportsTheLine) {
  std::string msg = expect_error([&] { load("model:\n  d_model: 64\n  segment_lengths: [1, 2\n"); },
                                 {"cfg.yaml:", "YAML syntax error"});
  expect_error([&] { load("model:\n  d_model: 64\n   num_heads: 4\n"); },
               {"cfg.yaml:3:", "YAML syntax error"});
  expect_error([&] { config_load(dir_ / "missing.yaml", {}); }, {"missing.yaml", "does not exist"});
  // Lines ended by a carriage return alone: yaml-cpp would read a comment line as swallowing the
  // rest (every key then its default); refused with the line. CRLF is fine.
  expect_error([&] { load("# c\rtrain: {steps: 8}\r"); }, {"cfg.yaml:1:", "carriage return"});
  expect_error([&] { load("model:\n  d_model: 64\n# old\rtrain: {steps: 8}\n"); },
               {"cfg.yaml:3:", "carriage return not followed by a line feed"});
  EXPECT_EQ(load("# c\r\ntrain: {steps: 8}\r\n").train.steps, 8);
  expect_error([&] { load("train: {steps: 9}\r"); }, {"cfg.yaml:1:", "carriage return"});
}

TEST_F(Config, CrossFieldRulesNameKeysLinesAndFixes) {
  check_fails("model:\n  segment_lengths: [64, 128]\n  dilation_rates: [1]\n", 1, 3,
              "model.dilation_rates",
              {"[64, 128]", "one rate per segment length", "model.segment_lengths at"});
  check_fails("model:\n  d_model: 100\n  num_heads: 12\n", 1, 3, "model.num_heads",
              {"12 does not divide d_model = 100", "model.d_model at " + path() + ":2"});
  std::string msg = check_fails("model:\n  d_model: 96\n  num_heads: 8\n", 1, 3, "model.num_heads",
                                {"head dim", "= 12", "multiple of 8", "d_model a multiple of 64"});
  check_fails("data:\n  seq_len: 1000\ngrid:\n  sequence_parallel: 3\n", 3, 2, "data.seq_len",
              {"does not split evenly over 3 ranks", "999 or 1002",
               "grid.sequence_parallel at " + path() + ":4"});
  check_fails(
      "model:\n  segment_lengths: [1024, 3000]\n  dilation_rates: [1, 2]\ndata:\n"
      "  seq_len: 4096\ngrid: {sequence_parallel: 2}\n",
      2, 2, "model.segment_lengths[1]",
      {"segment length 3000", "L = N / P = 4096 / 2 = 2048", "a multiple of 2048"});
  check_fails("grid:\n  data_parallel: 2\n  sequence_parallel: 2\n", 2, 2, "grid.data_parallel",
              {"2 x 2 = 4", "job has 2 ranks", "mpirun -np 4"});
  check_fails(
      "grid:\n  sequence_parallel: 3\ndata:\n  seq_len: 3072\n"
      "model: {segment_lengths: [1024], dilation_rates: [1]}\n",
      4, 2, "grid.sequence_parallel", {"does not divide the world size 4", "1, 2, 4"});
  check_fails("device: cpu\ntrain:\n  precision: bf16\n", 1, 3, "train.precision",
              {"device = cpu (" + path() + ":1)", "fp32"});
  check_fails("optim:\n  warmup_steps: 100\ntrain:\n  steps: 100\n", 1, 2, "optim.warmup_steps",
              {"train.steps = 100"});
  check_fails("model:\n  num_encoder_layers: 6\n", 1, 2, "model.num_encoder_layers",
              {"decoder_only", "set it to 0"});
  check_fails("model:\n  checkpoint_layers: 3\n", 1, 2, "model.checkpoint_layers",
              {"activation_checkpointing is off", "activation_checkpointing: true"});
  check_fails("model:\n  num_layers: 4\n  activation_checkpointing: true\n  checkpoint_layers: 5\n",
              1, 4, "model.checkpoint_layers", {"has 4 decoder layers", "model.num_layers at"});
  // xPos's scales must stay inside float32: a largest segment above 67,757 tokens (or segment
  // lengths that do not nest at such a length) is refused at load, not at the first forward.
  check_fails(
      "model:\n  segment_lengths: [2048, 131072]\n  dilation_rates: [1, 2]\ndata:\n"
      "  seq_len: 131072\n",
      1, 2, "model.segment_lengths",
      {"beyond float32's range", "the largest at most 67757 tokens", "data.seq_len at"});
  // An encoder-decoder's encoder attends without the causal mask: 33,879 at most.
  check_fails(
      "model:\n  variant: encoder_decoder\n  num_encoder_layers: 1\n  segment_lengths: [40000]\n"
      "  dilation_rates: [1]\ndata:\n  seq_len: 40000\n",
      1, 4, "model.segment_lengths", {"not causal", "the largest at most 33879 tokens"});
  // A rule broken by a default value says so.
  TrainConfig c = load("model:\n  variant: encoder_decoder\n");
  expect_error([&] { config_check(c, 1); }, {"config (default value): model.num_encoder_layers",
                                             "model.variant at " + path() + ":2"});
  // Segments longer than the sequence are clipped to it, which nests.
  TrainConfig ok = load(
      "data:\n  seq_len: 6000\ngrid: {sequence_parallel: 2}\n"
      "model: {segment_lengths: [1000, 3000, 100000], dilation_rates: [1,2,4]}\n");
  config_check(ok, 2);
}

TEST_F(Config, OverridesApplyAndAreCheckedLikeTheFile) {
  TrainConfig c =
      load(kSmallConfig, {"optim.lr=1e-3", "model.segment_lengths=[64,128]",
                          "model.dilation_rates=[1, 2]", "grid={sequence_parallel: 1}",
                          "data.path=/x/y.tokens", "model.activation_checkpointing=false"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.model.layer.attention.segment_lengths, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(c.grid.sequence_parallel, 1);
  EXPECT_EQ(c.data.path, "/x/y.tokens");
  EXPECT_FALSE(c.model.activation_checkpointing);
  EXPECT_EQ(c.origin.at("optim.lr"), "command-line override 'optim.lr=1e-3'");
  config_check(c, 1);
  // Overrides without a file.
  EXPECT_EQ(config_load("", {"train.steps=5", "optim.warmup_steps=0"}).train.steps, 5);
  EXPECT_DOUBLE_EQ(config_load("", {" optim.eps = 1e-6"}).optim.eps, 1e-6);  // spaces trimmed
  EXPECT_EQ(config_load("", {"data.source=\"\""}).data.source, "");          // "": never build
  // Control characters: refused as in a file.
  expect_error(
      [&] {
        config_load("", {"log.dir=/tmp/\x01"
                         "b"});
      },
      {"log.dir", "control character 1 in the override"});
  expect_error([&] { config_load("", {"log.dir=a\nb"}); }, {"spans several lines"});

  auto bad = [&](const std::string& o, const std::vector<std::string>& more) {
    std::vector<std::string> needles = {"command-line override '" + o + "'"};
    needles.insert(needles.end(), more.begin(), more.end());
    expect_error([&] { config_load("", {o}); }, needles);
  };
  bad("optim.lr=abc", {"optim.lr", "expected a number"});
  bad("optim.lrr=1", {"did you mean 'optim.lr'?"});
  bad("optim.lr", {"expected dotted.key=value"});
  bad("optim.lr=", {"has no value"});
  bad("train.seed=010", {"ambiguous"});
  bad("model.segment_lengths=[64, 128", {"not valid YAML"});
  bad("model=3", {"is a section"});
  bad("grid={data_parallel: -1}", {"grid.data_parallel", ">= 0"});
  // A '#' after a blank starts a YAML comment that would drop the rest: refused, also after a
  // quote inside a plain value; kept where it is no comment (quoted, or not after a blank).
  bad("log.dir=runs/exp #2", {"'#2' would be read as a YAML comment", "log.dir='runs/exp #2'"});
  bad("log.dir=runs/O'Brien #2", {"'#2' would be read", "log.dir=\"runs/O'Brien #2\"",
                                  "(in shell quotes: 'log.dir=\"runs/O'\\''Brien #2\"')"});
  bad("log.dir=runs/exp #2", {"(in shell quotes: \"log.dir='runs/exp #2'\")"});
  bad("log.dir=#2", {"'#2' would be read"});
  bad("model.segment_lengths=[64, 128] # two", {"'# two' would be read"});
  EXPECT_EQ(config_load("", {"log.dir='runs/exp #2'"}).log.dir, "runs/exp #2");
  EXPECT_EQ(config_load("", {"log.dir=\"runs/a #b\""}).log.dir, "runs/a #b");
  EXPECT_EQ(config_load("", {"log.dir=runs/a#b"}).log.dir, "runs/a#b");
  // A cross-field rule broken by an override names the override.
  TrainConfig h = config_load("", {"model.num_heads=10"});
  expect_error([&] { config_check(h, 1); },
               {"command-line override 'model.num_heads=10': model.num_heads"});
}

// Every numeric key at the edges (0, -1, 2^31, 2^53, 2^63 - 1, 2^63, denormals, NaN, inf, ...):
// loading and checking either succeeds or refuses with std::invalid_argument naming the key (or,
// for a cross-field rule, the key that rule is about, with the value given mentioned); never
// another exception, a signal or an int narrowing.
TEST(ConfigProperty, EveryNumericKeyAtTheEdgesIsRefusedCleanlyOrAccepted) {
  const std::vector<std::string> edges = {"0",
                                          "-1",
                                          "1",
                                          "2",
                                          "2147483647",
                                          "2147483648",
                                          "4294967297",
                                          "9007199254740992",
                                          "9223372036854775807",
                                          "9223372036854775808",
                                          "-9223372036854775808",
                                          "1.5",
                                          "1e-320",
                                          "4.9e-324",
                                          "1e308",
                                          "1e309",
                                          ".nan",
                                          ".inf",
                                          "-.inf",
                                          "1e-45",
                                          "0.0",
                                          "-0.0"};
  int accepted = 0, refused = 0;
  for (const auto& f : config_fields()) {
    TrainConfig probe;
    const ConfigRef r = config_ref(probe, f);
    if (std::holds_alternative<bool*>(r) || std::holds_alternative<std::string*>(r)) continue;
    const bool list = std::holds_alternative<std::vector<int64_t>*>(r) ||
                      std::holds_alternative<std::vector<double>*>(r);
    for (const auto& v : edges) {
      std::vector<std::string> values = {v};
      if (list) values = {"[" + v + "]", "[" + v + ", " + v + "]", "[2048, " + v + "]"};
      for (const auto& value : values) {
        const std::string override = f.key + "=" + value;
        SCOPED_TRACE(override);
        try {
          TrainConfig c = config_parse("", "defaults", {override});
          for (int world : {1, 2, 4}) config_check(c, world);
          ++accepted;
        } catch (const std::invalid_argument& e) {
          const std::string msg = e.what();
          const std::string leaf = f.key.substr(f.key.rfind('.') + 1);
          EXPECT_TRUE(msg.find(f.key) != std::string::npos || msg.find(leaf) != std::string::npos ||
                      msg.find(override) != std::string::npos)
              << msg;
          ++refused;
        }
      }
    }
  }
  EXPECT_GT(refused, 500);
  EXPECT_GT(accepted, 10);
  std::cout << "config keys at the edges: " << accepted << " accepted, " << refused
            << " refused cleanly" << std::endl;
}

// ---- token files ---------------------------------------------------------------------------

// A small tree: text files (no newlines inside, so splits can be checked), binaries, an empty
// file, a symlink and a sparse 17 MiB file.
std::map<std::string, std::string> make_tree(const TempDir& dir, int n_text, int text_bytes) {
  std::map<std::string, std::string> text;
  std::mt19937 rng(42);
  for (int i = 0; i < n_text; ++i) {
    std::string name = (i % 3 == 0   ? "src/"
                        : i % 3 == 1 ? "include/sub/"
                                     : "") +
                       std::string("f") + std::to_string(i) + ".txt";
    std::string s;
    for (int k = 0; k < text_bytes + i; ++k) s += static_cast<char>('a' + rng() % 26);
    write_file(dir / ("src_tree/" + name), s);
    text[name] = s;
  }
  write_file(dir / "src_tree/bin/blob.o", std::string("ELF\0\x01\x02", 6) + "tail");
  write_file(dir / "src_tree/empty.txt", "");
  EXPECT_EQ(::symlink((dir / "src_tree/f2.txt").c_str(), (dir / "src_tree/link.txt").c_str()), 0);
  std::ofstream(dir / "src_tree/huge.txt").put('x');
  resize_file(dir / "src_tree/huge.txt", 17 << 20);
  return text;
}

// A whole split of a dataset as bytes (byte-token files: one byte per token).
std::string split_text(const TokenDataset& d, DataSplit s) {
  std::vector<int64_t> ids(static_cast<size_t>(d.tokens(s)));
  d.read(s, 0, d.tokens(s), ids.data());
  return std::string(ids.begin(), ids.end());
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string line;
  while (std::getline(ss, line, '\n')) out.push_back(line);
  return out;
}

TEST(TokenData, BuildTakesTextFilesOnlyAndSplitsByFile) {
  TempDir dir;
  auto text = make_tree(dir, 7, 50);
  // A text head of 100 KB before a NUL byte: binary, as a NUL anywhere makes it.
  write_file(dir / "src_tree/late_nul.txt", std::string(100000, 'a') + std::string(1, '\0') + "b");
  const std::string out = dir / "out/corpus.tokens";
  DataBuildSummary s = data_build(dir / "src_tree", out, 0.2);
  EXPECT_EQ(s.text_files, 7);
  EXPECT_EQ(s.binary_files, 2);
  EXPECT_EQ(s.large_files, 1);
  EXPECT_EQ(s.other_skipped, 1);  // the empty file; the symlink is not counted
  EXPECT_GE(s.val_files, 1);
  EXPECT_GE(s.train_files, 1);
  EXPECT_EQ(s.train_files + s.val_files, 7);
  EXPECT_FALSE(path_exists(out + ".tmp"));

  auto f = TokenDataset::open(out);
  EXPECT_EQ(f->format(), "legacy");
  EXPECT_EQ(f->tokens(DataSplit::kTrain), s.train_tokens);
  EXPECT_EQ(f->tokens(DataSplit::kVal), s.val_tokens);
  int64_t bytes = 0;
  for (const auto& [name, content] : text) bytes += static_cast<int64_t>(content.size());
  EXPECT_EQ(s.train_tokens + s.val_tokens, bytes + (s.train_files - 1) + (s.val_files - 1));
  // Each split is its files' bytes in sorted path order, joined by '\n'.
  auto train = split_lines(split_text(*f, DataSplit::kTrain));
  auto val = split_lines(split_text(*f, DataSplit::kVal));
  EXPECT_EQ(static_cast<int64_t>(train.size()), s.train_files);
  EXPECT_EQ(static_cast<int64_t>(val.size()), s.val_files);
  std::vector<std::string> sorted_contents;
  for (const auto& [name, content] : text) sorted_contents.push_back(content);  // map: sorted
  size_t ti = 0, vi = 0;
  for (const auto& c : sorted_contents) {
    if (ti < train.size() && train[ti] == c)
      ++ti;
    else if (vi < val.size() && val[vi] == c)
      ++vi;
    else
      ADD_FAILURE() << "file content missing or out of order";
  }
  // Deterministic: building again gives the same bytes.
  data_build(dir / "src_tree", dir / "again.tokens", 0.2);
  EXPECT_EQ(read_file(out), read_file(dir / "again.tokens"));
}

TEST(TokenData, BuildErrors) {
  TempDir dir;
  expect_error<std::runtime_error>([&] { data_build(dir / "nope", dir / "o"); },
                                   {"'" + (dir / "nope") + "' does not exist"});
  write_file(dir / "file.txt", "x");
  expect_error<std::runtime_error>([&] { data_build(dir / "file.txt", dir / "o"); },
                                   {"is not a directory"});
  write_file(dir / "bin/a.bin", std::string("\0\0", 2));
  expect_error<std::runtime_error>([&] { data_build(dir / "bin", dir / "o"); },
                                   {"no text files", "1 binary"});
  expect_error([&] { data_build(dir / "bin", dir / "o", 1.5); }, {"--val-fraction"});
}

// A file with two names (a hard link) is packed once: twice, one text could be in both splits.
TEST(TokenData, BuildReadsAHardLinkedFileOnce) {
  TempDir dir;
  write_file(dir / "src/a.txt", "alpha text");
  write_file(dir / "src/b.txt", "beta text");
  ASSERT_EQ(::link((dir / "src/a.txt").c_str(), (dir / "src/z_link.txt").c_str()), 0);
  const DataBuildSummary s = data_build(dir / "src", dir / "t.tokens", 0);
  EXPECT_EQ(s.text_files, 2);
  EXPECT_EQ(s.train_tokens, int64_t(std::string("alpha text\nbeta text").size()));
}

TEST(TokenData, BuildWithValidationFractionMakesAReadableFile) {
  TempDir dir;
  make_tree(dir, 4, 30);
  data_build(dir / "src_tree", dir / "t.tokens", 0.3);
  auto f = TokenDataset::open(dir / "t.tokens");
  EXPECT_GT(f->tokens(DataSplit::kTrain), 0);
  EXPECT_GT(f->tokens(DataSplit::kVal), 0);
}

TEST(TokenData, TokenFileErrorsNameTheProblem) {
  TempDir dir;
  make_tree(dir, 3, 40);
  const std::string good = dir / "good.tokens";
  data_build(dir / "src_tree", good, 0.3);
  const std::string bytes = read_file(good);

  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "missing.tokens"); },
                                   {"missing.tokens' does not exist", "longnet data build"});
  write_file(dir / "empty.tokens", "");
  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "empty.tokens"); }, {"is empty"});
  write_file(dir / "text.tokens", "#include <stdio.h>\nint main() {}\n" + std::string(100, ' '));
  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "text.tokens"); },
                                   {"not a longnet token file", "bad magic"});
  write_file(dir / "cut.tokens", bytes.substr(0, bytes.size() - 7));
  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "cut.tokens"); },
                                   {"is truncated"});
  write_file(dir / "head.tokens", bytes.substr(0, 20));
  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "head.tokens"); },
                                   {"is truncated", "64-byte header"});
  write_file(dir / "long.tokens", bytes + "xyz");
  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "long.tokens"); },
                                   {"3 bytes more than its header promises"});
  std::string v2 = bytes;
  v2[8] = 2;
  write_file(dir / "v2.tokens", v2);
  expect_error<std::runtime_error>([&] { TokenDataset::open(dir / "v2.tokens"); },
                                   {"format version 2", "reads version 1"});

  auto f = TokenDataset::open(good);
  SamplerOptions o;
  o.seq_len = f->tokens(DataSplit::kVal);  // one token short for validation
  expect_error<std::runtime_error>([&] { TokenSampler s(*f, o); },
                                   {"validation split has", "shorter than one sequence",
                                    "use a smaller data.seq_len or a larger corpus"});
  o.seq_len = f->tokens(DataSplit::kTrain) + 10;
  expect_error<std::runtime_error>([&] { TokenSampler s(*f, o); }, {"training split has"});
}

// A corpus big enough for sampling: 12 files of 3000 random letters.
class Sampler : public ::testing::Test {
 protected:
  void SetUp() override {
    make_tree(dir_, 12, 3000);
    data_build(dir_ / "src_tree", dir_ / "c.tokens", 0.25);
    file_ = TokenDataset::open(dir_ / "c.tokens");
  }
  // The training tokens [start, start + n) as int64.
  at::Tensor window(int64_t start, int64_t n) const {
    auto t = at::empty({n}, at::kLong);
    file_->read(DataSplit::kTrain, start, n, t.data_ptr<int64_t>());
    return t;
  }
  TempDir dir_;
  std::unique_ptr<TokenDataset> file_;
};

TEST_F(Sampler, DataParallelRanksGetDisjointSequences) {
  SamplerOptions o;
  o.seq_len = 96;
  o.batch_size = 3;
  o.dp_size = 2;
  o.seed = 11;
  std::vector<TokenBatch> batches;
  for (int d = 0; d < 2; ++d) {
    o.dp_index = d;
    TokenSampler s(*file_, o, /*samples_consumed=*/12);
    batches.push_back(s.next_batch());
    EXPECT_EQ(s.position(), 12 + 2 * 3);
    EXPECT_EQ(batches.back().inputs.sizes(), (at::IntArrayRef{3, 96}));
    EXPECT_EQ(batches.back().inputs.scalar_type(), at::kLong);
    for (int b = 0; b < 3; ++b) {
      int64_t start = s.train_start(12 + d * 3 + b);
      EXPECT_TRUE(at::equal(batches.back().inputs[b], window(start, 96)));
      EXPECT_TRUE(at::equal(batches.back().targets[b], window(start + 1, 96)));
    }
  }
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) EXPECT_FALSE(at::equal(batches[0].inputs[a], batches[1].inputs[b]));
}

TEST_F(Sampler, SequenceParallelSlicesConcatenateToTheSequence) {
  SamplerOptions o;
  o.seq_len = 128;
  o.batch_size = 2;
  o.dp_size = 2;
  o.dp_index = 1;
  o.seed = 5;
  o.val_batches = 3;
  TokenSampler whole(*file_, o, 40);
  TokenBatch full = whole.next_batch();
  TokenBatch full_val = whole.val_batch(2);
  o.sp_size = 4;
  std::vector<at::Tensor> xs, ys, vxs, vys;
  for (int t = 0; t < 4; ++t) {
    o.sp_index = t;
    TokenSampler s(*file_, o, 40);
    TokenBatch b = s.next_batch();
    EXPECT_EQ(b.inputs.sizes(), (at::IntArrayRef{2, 32}));
    // Within a slice targets are the inputs one token later.
    EXPECT_TRUE(at::equal(b.targets.narrow(1, 0, 31), b.inputs.narrow(1, 1, 31)));
    xs.push_back(b.inputs);
    ys.push_back(b.targets);
    TokenBatch v = s.val_batch(2);
    vxs.push_back(v.inputs);
    vys.push_back(v.targets);
  }
  EXPECT_TRUE(at::equal(at::cat(xs, 1), full.inputs));
  EXPECT_TRUE(at::equal(at::cat(ys, 1), full.targets));
  EXPECT_TRUE(at::equal(at::cat(vxs, 1), full_val.inputs));
  EXPECT_TRUE(at::equal(at::cat(vys, 1), full_val.targets));
  // Across the slice boundary: the last target of rank t is the first input of rank t + 1.
  for (int t = 0; t < 3; ++t) EXPECT_TRUE(at::equal(ys[t].select(1, 31), xs[t + 1].select(1, 0)));
}

TEST_F(Sampler, SetPositionReproducesBatches) {
  SamplerOptions o;
  o.seq_len = 64;
  o.batch_size = 2;
  o.dp_size = 3;
  o.dp_index = 2;
  o.seed = 99;
  TokenSampler a(*file_, o);
  a.next_batch();
  a.next_batch();
  const int64_t pos = a.position();
  EXPECT_EQ(pos, 12);
  TokenBatch third = a.next_batch();

  TokenSampler b(*file_, o);
  b.set_position(pos);
  EXPECT_TRUE(at::equal(b.next_batch().inputs, third.inputs));
  TokenSampler c(*file_, o, pos);
  TokenBatch again = c.next_batch();
  EXPECT_TRUE(at::equal(again.inputs, third.inputs));
  EXPECT_TRUE(at::equal(again.targets, third.targets));
  // Another seed gives other sequences.
  o.seed = 100;
  TokenSampler d(*file_, o, pos);
  EXPECT_FALSE(at::equal(d.next_batch().inputs, third.inputs));
}

TEST_F(Sampler, ValidationBatchesAreFixedAndSpreadOverTheSplit) {
  SamplerOptions o;
  o.seq_len = 50;
  o.batch_size = 2;
  o.val_batches = 4;
  TokenSampler s(*file_, o);
  TokenBatch v0 = s.val_batch(0), v3 = s.val_batch(3);
  EXPECT_TRUE(at::equal(s.val_batch(0).inputs, v0.inputs));
  EXPECT_FALSE(at::equal(v0.inputs, v3.inputs));
  // The first window starts at the split's start and the last ends at its end.
  const std::string val = split_text(*file_, DataSplit::kVal);
  EXPECT_EQ(v0.inputs[0][0].item<int64_t>(), static_cast<unsigned char>(val.front()));
  EXPECT_EQ(v3.targets[1][49].item<int64_t>(), static_cast<unsigned char>(val.back()));
  expect_error([&] { s.val_batch(4); }, {"outside [0, 4)"});
}

TEST_F(Sampler, ValidationBatchesBeyondTheWindowsThatFitApartAreCapped) {
  SamplerOptions o;
  o.seq_len = 50;
  o.batch_size = 2;
  o.dp_size = 2;
  o.dp_index = 1;
  const int64_t apart = (file_->tokens(DataSplit::kVal) - 1) / o.seq_len;
  const int64_t fit = apart / (o.dp_size * o.batch_size);
  ASSERT_GT(fit, 2);
  o.val_batches = fit;  // exactly what fits: kept
  EXPECT_EQ(TokenSampler(*file_, o).val_batches(), fit);
  for (int64_t asked : {fit + 1, int64_t{1} << 40}) {
    o.val_batches = asked;
    TokenSampler s(*file_, o);
    EXPECT_EQ(s.val_batches(), fit) << asked;
    // The windows of every batch and both data-parallel ranks stay apart: no token scored twice.
    std::vector<int64_t> starts;
    for (int64_t d = 0; d < o.dp_size; ++d) {
      SamplerOptions r = o;
      r.dp_index = d;
      TokenSampler t(*file_, r);
      for (int64_t i = 0; i < t.val_batches(); ++i)
        for (int64_t b = 0; b < o.batch_size; ++b) starts.push_back(t.val_start(i, b));
    }
    std::sort(starts.begin(), starts.end());
    for (size_t k = 1; k < starts.size(); ++k) EXPECT_GE(starts[k] - starts[k - 1], o.seq_len);
    EXPECT_LE(starts.back() + o.seq_len + 1, file_->tokens(DataSplit::kVal));
    expect_error([&] { s.val_batch(fit); }, {"outside [0, " + std::to_string(fit) + ")"});
  }
  // A split with room for fewer windows than one batch still gives one batch.
  o.seq_len = file_->tokens(DataSplit::kVal) - 1;
  o.val_batches = 5;
  EXPECT_EQ(TokenSampler(*file_, o).val_batches(), 1);
}

// ---- schedule -----------------------------------------------------------------------------

TEST(Schedule, WarmupThenPolynomialDecay) {
  OptimConfig o;
  o.lr = 1.0;
  o.end_lr = 0.1;
  o.warmup_steps = 10;
  o.decay_power = 1.0;
  EXPECT_DOUBLE_EQ(lr_at(o, 0, 110), 0.1);  // lr / warmup * 1
  EXPECT_DOUBLE_EQ(lr_at(o, 4, 110), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(o, 9, 110), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 60, 110), 0.55);
  EXPECT_DOUBLE_EQ(lr_at(o, 109, 110), 0.1 + 0.9 / 100);
  EXPECT_DOUBLE_EQ(lr_at(o, 110, 110), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 500, 110), 0.1);
  o.decay_power = 2.0;
  EXPECT_DOUBLE_EQ(lr_at(o, 60, 110), 0.1 + 0.9 * 0.25);
  o.warmup_steps = 0;
  o.end_lr = 0.0;
  EXPECT_DOUBLE_EQ(lr_at(o, 0, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 50, 100), 0.25);
}

// ---- checkpoint files ----------------------------------------------------------------------

c10::impl::GenericDict sample_state(int64_t step, int64_t big = 1000) {
  at::manual_seed(step);
  c10::impl::GenericDict model(c10::StringType::get(), c10::TensorType::get());
  model.insert("embed.weight", at::randn({37, 17}));
  model.insert("norm.bias", at::randn({17}).to(at::kBFloat16));
  model.insert("big", at::randn({big}));
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("model", model);
  d.insert("step", step);
  d.insert("loss_scale", 0.25);
  d.insert("config", std::string("model:\n  d_model: 64\n"));
  d.insert("finished", false);
  d.insert("samples", c10::List<int64_t>({1, 2, 3}));
  d.insert("rng", at::arange(5, at::kLong));
  return d;
}

void expect_same_state(const c10::impl::GenericDict& a, const c10::impl::GenericDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& kv : a) {
    ASSERT_TRUE(b.contains(kv.key())) << kv.key().toStringRef();
    const c10::IValue& x = kv.value();
    const c10::IValue y = b.at(kv.key());
    if (x.isGenericDict()) {
      expect_same_state(x.toGenericDict(), y.toGenericDict());
    } else if (x.isList()) {  // (read back as a plain list: checkpoints are pickled untagged)
      ASSERT_TRUE(y.isList()) << kv.key().toStringRef();
      auto xs = x.toListRef(), ys = y.toListRef();
      ASSERT_EQ(xs.size(), ys.size()) << kv.key().toStringRef();
      for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(xs[i], ys[i]) << kv.key().toStringRef();
    } else if (x.isTensor()) {
      EXPECT_EQ(x.toTensor().scalar_type(), y.toTensor().scalar_type());
      EXPECT_TRUE(at::equal(x.toTensor(), y.toTensor())) << kv.key().toStringRef();
    } else {
      EXPECT_EQ(x, y) << kv.key().toStringRef();
    }
  }
}

void flip_byte(const std::string& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

TEST(CheckpointFiles, WriteReadRoundTrip) {
  TempDir dir;
  const std::string ckdir = dir / "run/checkpoints";  // created on write
  auto state = sample_state(100);
  checkpoint_write(ckdir, 100, state, 3);
  const std::string path = ckdir + "/step_00000100.ckpt";
  EXPECT_EQ(checkpoint_path(ckdir, 100), path);
  EXPECT_TRUE(path_exists(path));
  EXPECT_FALSE(path_exists(path + ".tmp"));
  auto back = checkpoint_read(path);
  EXPECT_FALSE(back.contains("_longnet_crc32"));
  expect_same_state(state, back);
  // The file is torch.save's format: torch::pickle_load reads it without longnet.
  auto raw = torch::pickle_load([&] {
    std::string s = read_file(path);
    return std::vector<char>(s.begin(), s.end());
  }());
  EXPECT_TRUE(raw.toGenericDict().contains("_longnet_crc32"));
  expect_error(
      [&] {
        c10::impl::GenericDict bad(c10::StringType::get(), c10::AnyType::get());
        bad.insert("_longnet_crc32", int64_t(1));
        checkpoint_write(ckdir, 1, bad, 3);
      },
      {"reserved"});
}

TEST(CheckpointFiles, KeepsTheNewestM) {
  TempDir dir;
  for (int64_t step : {10, 20, 30, 40, 50})
    checkpoint_write(dir / "ck", step, sample_state(step, 10), 2);
  auto list = checkpoint_list(dir / "ck");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].first, 50);
  EXPECT_EQ(list[1].first, 40);
  // Writing an older step (a rerun) never deletes the file just written.
  checkpoint_write(dir / "ck", 5, sample_state(5, 10), 1);
  list = checkpoint_list(dir / "ck");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].first, 5);
}

// An unreadable newest file (empty, cut short, not ours) does not count among the kept ones: the
// older good checkpoints it would have pushed out stay, and it is left for the user to inspect.
TEST(CheckpointFiles, RetentionCountsOnlyCheckpointsThatVerify) {
  TempDir dir;
  const std::string ck = dir / "ck";
  for (int64_t step : {10, 20}) checkpoint_write(ck, step, sample_state(step, 10), 2);
  write_file(checkpoint_path(ck, 90), "");                      // empty
  write_file(checkpoint_path(ck, 80), "PK\x03\x04 not a zip");  // not a checkpoint
  checkpoint_write(ck, 30, sample_state(30, 10), 2);
  auto list = checkpoint_list(ck);
  std::vector<int64_t> steps;
  for (const auto& [step, path] : list) steps.push_back(step);
  EXPECT_EQ(steps, (std::vector<int64_t>{90, 80, 30, 20})) << "10 is the only one beyond keep";
  EXPECT_EQ(checkpoint_latest(ck), checkpoint_path(ck, 30));
  // A good file damaged after it was written is checked again, not trusted from memory: it no
  // longer counts (and is left), so 30 is kept beside 40.
  flip_byte(checkpoint_path(ck, 20), file_size(checkpoint_path(ck, 20)) / 2);
  checkpoint_write(ck, 40, sample_state(40, 10), 2);
  steps.clear();
  for (const auto& [step, path] : checkpoint_list(ck)) steps.push_back(step);
  EXPECT_EQ(steps, (std::vector<int64_t>{90, 80, 40, 30, 20}));
}

// With an owner, retention counts and deletes only the checkpoints of the same owner (the run's
// model): another model's checkpoint in the directory is neither counted nor deleted.
TEST(CheckpointFiles, RetentionLeavesOtherOwnersCheckpoints) {
  TempDir dir;
  const std::string ck = dir / "ck";
  auto owner = [](const c10::impl::GenericDict& d) { return d.at("config").toStringRef(); };
  auto state_of = [](int64_t step, const std::string& model) {
    auto d = sample_state(step, 10);
    d.insert_or_assign("config", model);
    return d;
  };
  checkpoint_write(ck, 5, state_of(5, "model: B"), 1, owner);  // another run's
  // Read back once without an owner (as a resume does): retention must still ask it.
  checkpoint_read(checkpoint_path(ck, 5));
  for (int64_t step : {10, 20, 30})
    checkpoint_write(ck, step, state_of(step, "model: A"), 2, owner);
  std::vector<int64_t> steps;
  for (const auto& [step, path] : checkpoint_list(ck)) steps.push_back(step);
  EXPECT_EQ(steps, (std::vector<int64_t>{30, 20, 5}));
  // The reason is given from the owner's later lines when the model (first line) is the same.
  checkpoint_write(ck, 3, state_of(3, "model: A" + std::string(kOwnerRun) + "written by X"), 1,
                   owner);
  ::testing::internal::CaptureStderr();
  checkpoint_write(ck, 40, state_of(40, "model: A" + std::string(kOwnerRun) + "written by Y"), 5,
                   owner);
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("step_00000003.ckpt' is not this run's (written by X)"), std::string::npos)
      << said;
  EXPECT_NE(said.find("step_00000005.ckpt' is not this run's (it holds another model)"),
            std::string::npos)
      << said;
}

// Retention goes by file: the names of one checkpoint (a link in the directory, a hard link)
// count once and go together, so a link never costs a real checkpoint, never shields its
// target's deletion and is never left dangling; a file outside the directory is never deleted.
TEST(CheckpointFiles, RetentionCountsFilesNotNames) {
  TempDir dir;
  const std::string ck = dir / "ck";
  for (int64_t step : {10, 20}) checkpoint_write(ck, step, sample_state(step, 10), 3);
  // Links to step 20 listed before its real name (step_20) and after it (a lower step's name),
  // and a hard link of step 10.
  ASSERT_EQ(::symlink("step_00000020.ckpt", (ck + "/step_20.ckpt").c_str()), 0);
  ASSERT_EQ(::symlink("step_00000020.ckpt", (ck + "/step_00000001.ckpt").c_str()), 0);
  ASSERT_EQ(::link(checkpoint_path(ck, 10).c_str(), (ck + "/step_010.ckpt").c_str()), 0);
  checkpoint_write(ck, 30, sample_state(30, 10), 3);  // three files: nothing goes
  std::vector<std::string> names;
  for (const auto& [step, path] : checkpoint_list(ck)) names.push_back(path.substr(ck.size() + 1));
  EXPECT_EQ(names, (std::vector<std::string>{"step_00000030.ckpt", "step_20.ckpt",
                                             "step_00000020.ckpt", "step_010.ckpt",
                                             "step_00000010.ckpt", "step_00000001.ckpt"}));
  checkpoint_write(ck, 40, sample_state(40, 10), 2);  // 40 and 30 kept: 20 and 10 go, every name
  names.clear();
  for (const auto& [step, path] : checkpoint_list(ck)) names.push_back(path.substr(ck.size() + 1));
  EXPECT_EQ(names, (std::vector<std::string>{"step_00000040.ckpt", "step_00000030.ckpt"}));
  EXPECT_TRUE(checkpoint_name_blockers(ck).empty()) << "no dangling link left";
  // A link to a checkpoint outside the directory: the link goes, the file stays.
  checkpoint_write(dir / "elsewhere", 35, sample_state(35, 10), 1);
  ASSERT_EQ(::symlink(checkpoint_path(dir / "elsewhere", 35).c_str(),
                      (ck + "/step_00000035.ckpt").c_str()),
            0);
  checkpoint_write(ck, 50, sample_state(50, 10), 2);
  names.clear();
  for (const auto& [step, path] : checkpoint_list(ck)) names.push_back(path.substr(ck.size() + 1));
  EXPECT_EQ(names, (std::vector<std::string>{"step_00000050.ckpt", "step_00000040.ckpt"}));
  EXPECT_TRUE(path_exists(checkpoint_path(dir / "elsewhere", 35)));
}

// The names checkpoints give their runs: one per folder (a literal backslash and an escaped
// byte differ), UTF-8 whatever the path's bytes, "" for a run without a folder.
TEST(CheckpointFiles, RunNamesAreDistinctAndUtf8) {
  EXPECT_EQ(train_run_name(""), "");
  EXPECT_EQ(train_run_name("/no/such/run"), "/no/such/run");
  EXPECT_NE(train_run_name("/no/r\xff"), train_run_name("/no/r\\xff"));
  EXPECT_EQ(utf8_invalid_bytes(train_run_name("/no/r\xff")), 0u);
}

// Names that a later checkpoint write would trip over are found up front.
TEST(CheckpointFiles, NameBlockersAreFound) {
  TempDir dir;
  const std::string ck = dir / "ck";
  checkpoint_write(ck, 10, sample_state(10, 10), 2);
  EXPECT_TRUE(checkpoint_name_blockers(ck).empty());
  ASSERT_EQ(::mkdir((ck + "/step_00000020.ckpt").c_str(), 0755), 0);
  ASSERT_EQ(::mkfifo((ck + "/step_00000030.ckpt.tmp").c_str(), 0644), 0);
  ASSERT_EQ(::symlink("nowhere", (ck + "/step_00000040.ckpt").c_str()), 0);
  EXPECT_EQ(checkpoint_name_blockers(ck),
            (std::vector<std::string>{ck + "/step_00000020.ckpt", ck + "/step_00000030.ckpt.tmp",
                                      ck + "/step_00000040.ckpt"}));
  EXPECT_TRUE(checkpoint_name_blockers(dir / "missing").empty());
}

// One job per checkpoint directory: a second lock on it is refused, naming the holder.
TEST(CheckpointFiles, DirectoryLockRefusesASecondJob) {
  TempDir dir;
  {
    CheckpointDirLock first(dir / "ck");
    expect_error<std::runtime_error>(
        [&] { CheckpointDirLock second(dir / "ck"); },
        {"in use by another training job", "pid " + std::to_string(::getpid()),
         "another checkpoint.dir"});
  }
  CheckpointDirLock again(dir / "ck");  // released with the first
  write_file(dir / "file", "x");
  expect_error<std::runtime_error>([&] { CheckpointDirLock bad(dir / "file/ck"); },
                                   {"cannot be created"});
}

TEST(CheckpointFiles, LatestSkipsTruncatedAndCorruptedFiles) {
  TempDir dir;
  const std::string ck = dir / "ck";
  EXPECT_FALSE(checkpoint_latest(ck).has_value());  // no directory yet
  for (int64_t step : {1, 2, 3}) checkpoint_write(ck, step, sample_state(step, 1 << 16), 5);
  EXPECT_EQ(checkpoint_latest(ck), checkpoint_path(ck, 3));

  // Step 3 cut short (a crash while copying it elsewhere, a full disk...).
  const std::string p3 = checkpoint_path(ck, 3);
  resize_file(p3, file_size(p3) - 1000);
  expect_error<std::runtime_error>([&] { checkpoint_read(p3); }, {p3, "truncated"});
  EXPECT_EQ(checkpoint_latest(ck), checkpoint_path(ck, 2));

  // Step 2 with a flipped byte in the middle (inside the large tensor's data).
  const std::string p2 = checkpoint_path(ck, 2);
  flip_byte(p2, static_cast<size_t>(file_size(p2) / 2));
  expect_error<std::runtime_error>([&] { checkpoint_read(p2); },
                                   {p2, "corrupted", "checksum mismatch"});
  EXPECT_EQ(checkpoint_latest(ck), checkpoint_path(ck, 1));

  // A byte of the pickle damaged: refused by the CRC-32 the archive records for it, before
  // LibTorch's unpickler (whose internal assertions name no damage) reads it.
  {
    TempDir other;
    checkpoint_write(other / "ck", 1, sample_state(1, 64), 5);
    const std::string p = checkpoint_path(other / "ck", 1);
    const std::string bytes = read_file(p);
    const size_t name = bytes.find("data.pkl"), header = bytes.rfind("PK\x03\x04", name);
    ASSERT_NE(header, std::string::npos);
    const size_t data = header + 30 +
                        (uint8_t(bytes[header + 26]) | uint8_t(bytes[header + 27]) << 8) +
                        (uint8_t(bytes[header + 28]) | uint8_t(bytes[header + 29]) << 8);
    flip_byte(p, data + 10);
    expect_error<std::runtime_error>(
        [&] { checkpoint_read(p); },
        {p, "corrupted (the CRC-32 of its", "data.pkl", "damaged bytes"});
  }

  // A stray .tmp of a later step (a crash mid-write) is never picked, and the next write
  // removes it.
  write_file(ck + "/step_00000009.ckpt.tmp", "half a file");
  EXPECT_EQ(checkpoint_latest(ck), checkpoint_path(ck, 1));
  checkpoint_write(ck, 4, sample_state(4, 10), 5);
  EXPECT_FALSE(path_exists(ck + "/step_00000009.ckpt.tmp"));
  EXPECT_EQ(checkpoint_latest(ck), checkpoint_path(ck, 4));
}

// A checkpoint whose zip directory points outside itself is refused before LibTorch's reader
// (which does not bound its reads) sees it: the central directory, an entry's fields, its local
// header. The fuzzer found the second kind (tests/fuzz/corpus_checkpoint keeps the input).
TEST(CheckpointFiles, BrokenZipLayoutIsRefusedBeforeReading) {
  TempDir dir;
  const std::string ck = dir / "ck";
  checkpoint_write(ck, 1, sample_state(1, 64), 5);
  const std::string good = read_file(checkpoint_path(ck, 1));
  ASSERT_GE(good.size(), 22u);
  const size_t end = good.size() - 22;  // torch.save writes no zip comment
  ASSERT_EQ(good.substr(end, 4), std::string("PK\x05\x06", 4));
  auto at = [](const std::string& b, size_t i) {
    return reinterpret_cast<unsigned char*>(const_cast<char*>(b.data()) + i);
  };
  auto u32 = [&](const std::string& b, size_t i) { return get_u32(at(b, i)); };
  const size_t cd = u32(good, end + 16);
  ASSERT_EQ(u32(good, cd), 0x02014b50u);
  auto refused = [&](const std::string& name, std::string bytes, const std::string& what) {
    write_file(dir / name, bytes);
    expect_error<std::runtime_error>([&] { checkpoint_read(dir / name); },
                                     {name, "corrupted", "zip layout", what});
  };
  std::string b = good;
  put_u32(at(b, end + 16), uint32_t(good.size()));  // the directory starts at the end of the file
  refused("cd.ckpt", b, "central directory lies outside the file");
  b = good;
  put_u16(at(b, cd + 30), 0xFFFF);  // the first entry's extra field: 64K past the directory
  refused("extra.ckpt", b, "entry 0 of the central directory runs past the directory");
  b = good;
  put_u32(at(b, cd + 42), uint32_t(good.size() - 10));  // its local header 10 bytes before the end
  refused("local.ckpt", b, "points to no local header inside the file");
  b = good;
  put_u32(at(b, cd + 20), 0xFFFFFFFFu);  // zip64 sizes that its extra field does not hold
  refused("zip64.ckpt", b, "zip64");
  b = good;
  ASSERT_EQ(u32(good, end - 20), 0x07064b50u);  // torch.save writes a zip64 end record too
  put_u16(at(b, end + 10), 0xFFFF);             // the entry count from it...
  put_u64(at(b, end - 20 + 8), good.size());    // ...which its locator puts past the end
  refused("z64end.ckpt", b, "zip64 end record lies outside the file");
  // The end record itself: overwritten (same size), or followed by appended bytes.
  b = good;
  b.replace(end, 4, "XXXX");
  write_file(dir / "end.ckpt", b);
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "end.ckpt"); },
                                   {"end.ckpt", "truncated or damaged",
                                    "no complete zip end record", "last bytes were overwritten"});
  // Cut short inside its end record (a few bytes): truncated, not "appended".
  for (size_t cut : {1, 5, 18, 21}) {
    write_file(dir / "cut.ckpt", good.substr(0, good.size() - cut));
    expect_error<std::runtime_error>([&] { checkpoint_read(dir / "cut.ckpt"); },
                                     {"cut.ckpt", "truncated or damaged"});
  }
  write_file(dir / "appended.ckpt", good + "appended");
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "appended.ckpt"); },
                                   {"appended.ckpt", "corrupted", "does not end the file"});
  EXPECT_NO_THROW(checkpoint_read(checkpoint_path(ck, 1)));
}

TEST(CheckpointFiles, ReadErrorsNameTheFileAndProblem) {
  TempDir dir;
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "none.ckpt"); },
                                   {"none.ckpt", "cannot open"});
  write_file(dir / "empty.ckpt", "");
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "empty.ckpt"); },
                                   {"truncated", "empty"});
  write_file(dir / "text.ckpt", "model: {d_model: 64}\n");
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "text.ckpt"); },
                                   {"not a checkpoint"});
  // A torch.save file that is not ours.
  c10::impl::GenericDict foreign(c10::StringType::get(), c10::AnyType::get());
  foreign.insert("w", at::ones({3}));
  auto bytes = torch::pickle_save(foreign);
  write_file(dir / "foreign.ckpt", std::string(bytes.begin(), bytes.end()));
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "foreign.ckpt"); },
                                   {"not a longnet checkpoint"});
  // An archive whose pickle is intact (its CRC-32 holds) but no pickle LibTorch reads (a
  // TorchScript file, another tool's): not a longnet checkpoint, not damage.
  std::string zipped;
  {
    caffe2::serialize::PyTorchStreamWriter zip([&](const void* b, size_t n) {
      zipped.append(static_cast<const char*>(b), n);
      return n;
    });
    const std::string junk = "\x80\x02not a pickle";
    zip.writeRecord("data.pkl", junk.data(), junk.size());
    zip.writeEndOfFile();
  }
  write_file(dir / "script.pt", zipped);
  expect_error<CheckpointKindError>([&] { checkpoint_read(dir / "script.pt"); },
                                    {"not a longnet checkpoint (its pickle, intact by the CRC-32"});
  // The first bytes of a zip archive alone: a file cut short, not a file of another kind.
  write_file(dir / "pk.ckpt", "PK");
  expect_error<std::runtime_error>([&] { checkpoint_read(dir / "pk.ckpt"); },
                                   {"pk.ckpt': truncated (2 bytes"});
}

// ---- metrics -------------------------------------------------------------------------------

TEST(Metrics, JsonLinesAreEscapedAndAppended) {
  JsonLine line;
  line.add("step", 7).add("loss", 2.5).add("lr", 6e-4).add("bad", std::nan(""));
  line.add("inf", HUGE_VAL).add("note", "say \"hi\"\n\\ \x01").add("ok", true);
  EXPECT_EQ(line.str(),
            "{\"step\":7,\"loss\":2.5,\"lr\":6e-04,\"bad\":null,\"inf\":null,"
            "\"note\":\"say \\\"hi\\\"\\n\\\\ \\u0001\",\"ok\":true}");
  EXPECT_EQ(JsonLine().str(), "{}");
  TempDir dir;
  const std::string path = dir / "runs/x/metrics.jsonl";
  {
    MetricsWriter w(path);
    w.write(JsonLine().add("step", int64_t(1)).add("loss", 3.0));
  }
  MetricsWriter w(path);  // reopening appends
  w.write(JsonLine().add("step", int64_t(2)).add("val_bpb", 1.25));
  EXPECT_EQ(read_file(path), "{\"step\":1,\"loss\":3}\n{\"step\":2,\"val_bpb\":1.25}\n");
  // A second writer (another job) is refused while the first holds the file.
  expect_error<std::runtime_error>([&] { MetricsWriter second(path); },
                                   {"is being written by another job"});
}

// A row held back (a checkpoint's pending_row) goes on with more keys; text that is not one JSON
// object on one line is refused.
TEST(Metrics, JsonLineContinuesAHeldBackRow) {
  const std::string row = JsonLine().add("step", 12).add("loss", 2.5).str();
  EXPECT_EQ(JsonLine::continuing(row).add("val_loss", 1.5).str(),
            "{\"step\":12,\"loss\":2.5,\"val_loss\":1.5}");
  EXPECT_EQ(JsonLine::continuing("{}").add("a", 1).str(), "{\"a\":1}");
  EXPECT_EQ(JsonLine::continuing("{ }").add("a", 1).str(), "{\"a\":1}");
  for (const std::string bad : {"", "{", "}", "[]", "{\"a\":1}}", "{\"a\":1}x}", "{\"a\":\n1}",
                                "{\"a\":1,}", "{} {}", "\"{}\""}) {
    EXPECT_FALSE(JsonLine::is_object_text(bad)) << bad;
    expect_error<std::invalid_argument>([&] { JsonLine::continuing(bad); },
                                        {"not one JSON object"});
  }
}

// A new run (fresh) keeps an earlier run's rows under the next free numbered name and starts an
// empty file; an empty file is not kept; names without an extension or in dotted dirs number too.
TEST(Metrics, FreshRunKeepsEarlierRowsAside) {
  TempDir dir;
  const std::string path = dir / "m.d/metrics.jsonl";
  { MetricsWriter w(path, /*fresh=*/true); }  // nothing there: no copy
  EXPECT_EQ(path_kind(dir / "m.d/metrics.1.jsonl"), PathKind::kMissing);
  for (int run = 1; run <= 3; ++run) {
    MetricsWriter w(path, /*fresh=*/true);
    EXPECT_EQ(w.kept_as(),
              run == 1 ? "" : dir / ("m.d/metrics." + std::to_string(run - 1) + ".jsonl"));
    w.write(JsonLine().add("step", int64_t(run)));
  }
  EXPECT_EQ(read_file(path), "{\"step\":3}\n");
  EXPECT_EQ(read_file(dir / "m.d/metrics.1.jsonl"), "{\"step\":1}\n");
  EXPECT_EQ(read_file(dir / "m.d/metrics.2.jsonl"), "{\"step\":2}\n");
  { MetricsWriter w(path); }  // resumed: continues
  EXPECT_EQ(read_file(path), "{\"step\":3}\n");
  write_file(dir / "m.d/log", "x");
  EXPECT_EQ(file_keep_numbered(dir / "m.d/log"), dir / "m.d/log.1");
  write_file(dir / "m.d/.hidden", "x");
  EXPECT_EQ(file_keep_numbered(dir / "m.d/.hidden"), dir / "m.d/.hidden.1");
  EXPECT_EQ(file_keep_numbered(dir / "m.d/none"), "");
}

// A last line cut short (a full disk, a kill) is dropped when the file is opened again; a file
// that is not JSON lines is refused, not appended to.
TEST(Metrics, IncompleteLastLineDroppedAndOtherFilesRefused) {
  TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  write_file(path, "{\"step\":1}\n{\"step\":2,\"lo");
  {
    MetricsWriter w(path);
    w.write(JsonLine().add("step", int64_t(2)));
  }
  EXPECT_EQ(read_file(path), "{\"step\":1}\n{\"step\":2}\n");
  write_file(path, "{\"step\":1");  // one line, incomplete
  { MetricsWriter w(path); }
  EXPECT_EQ(read_file(path), "");
  const std::string tokens = dir / "data.tokens";
  write_file(tokens, std::string("LNTK\x01\0\0\0", 8));
  expect_error<std::runtime_error>([&] { MetricsWriter w(tokens); },
                                   {"does not hold longnet's metrics lines"});
  EXPECT_EQ(read_file(tokens), std::string("LNTK\x01\0\0\0", 8));
}

// A resume from a checkpoint older than the file's last rows removes the rows of the steps it
// runs again (validation rows included); rows up to the step stay, also across read blocks.
TEST(Metrics, ResumeDropsTheRowsAfterItsStep) {
  TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  std::string rows, kept;
  for (int64_t s = 0; s <= 3000; ++s) {  // ~120 KiB: more than one 64 KiB block
    std::string row = "{\"step\":" + std::to_string(s) + ",\"loss\":1.5,\"pad\":\"" +
                      std::string(size_t(s % 7 * 5), 'x') + "\"}\n";
    if (s % 100 == 0) row += "{\"step\":" + std::to_string(s) + ",\"val_loss\":2}\n";
    rows += row;
    if (s <= 1234) kept += row;
  }
  write_file(path, rows);
  {
    MetricsWriter w(path);
    EXPECT_EQ(w.drop_rows_after(3000), 0);
    EXPECT_EQ(w.drop_rows_after(1234), (3000 - 1234) + 18);  // training rows + 18 val rows
    EXPECT_EQ(read_file(path), kept);
    w.write(JsonLine().add("step", int64_t(1235)));
  }
  EXPECT_EQ(read_file(path), kept + "{\"step\":1235}\n");
  {
    MetricsWriter w(path);
    EXPECT_EQ(w.drop_rows_after(-1), 1236 + 13);  // every row
  }
  EXPECT_EQ(read_file(path), "");
  // A line that is not a step's row (a foreign line) stops the removal: it and all before stay.
  write_file(path, "{\"step\":1}\n{\"note\":1}\n{\"step\":5}\n");
  {
    MetricsWriter w(path);
    EXPECT_EQ(w.drop_rows_after(1), 1);
  }
  EXPECT_EQ(read_file(path), "{\"step\":1}\n{\"note\":1}\n");
}

// Outputs are never one of the job's inputs, nor inside an input directory, also through links.
TEST(OutputPaths, NeverAnInput) {
  TempDir dir;
  const std::string data = dir / "data.tokens", ds = dir / "ds";
  write_file(data, "x");
  ASSERT_EQ(::mkdir(ds.c_str(), 0755), 0);
  ASSERT_EQ(::link(data.c_str(), (dir / "hard.json").c_str()), 0);
  ASSERT_EQ(::symlink(data.c_str(), (dir / "soft.json").c_str()), 0);
  const std::vector<std::string> inputs = {"", data, ds};
  for (const std::string& out :
       {data, dir / "hard.json", dir / "soft.json", ds + "/manifest.json", ds + "/new/deeper.json"})
    expect_error<std::runtime_error>([&] { output_not_input(out, inputs, "--json"); },
                                     {"--json '" + out + "'", "an input of this job"});
  output_not_input(dir / "e.json", inputs, "--json");  // elsewhere: fine
  output_not_input(dir / "ds.json", inputs, "--json");
  // ".." after a part that does not exist yet leads back inside as the kernel will see it, once
  // the missing part is created; "." and repeated slashes change nothing.
  for (const std::string& out : {dir / "missing/../ds/x.json", dir / "a/b/../../ds/./y.json",
                                 dir / "ds//new/../z.json", dir / "missing/../data.tokens"})
    expect_error<std::runtime_error>([&] { output_not_input(out, inputs, "--json"); },
                                     {"an input of this job"});
  output_not_input(dir / "ds/../e.json", inputs, "--json");
  output_not_input(dir / "missing/../ds/../e.json", inputs, "--json");
  EXPECT_TRUE(path_inside(dir / "ds/../ds", ds));
  EXPECT_FALSE(path_inside(dir / "ds/..", ds));
  EXPECT_TRUE(path_inside("/", "/"));
  EXPECT_TRUE(path_inside(dir / "../../..", "/"));
  // Content kinds: each replaces only what longnet writes of that kind (or an empty file), never
  // other JSON: a dataset manifest, an export's config, a corpus in JSON lines, a plain list.
  write_file(dir / "old.json", "  \n{\n  \"command\": \"longnet bench scaling\", \"rows\": []}");
  output_file_prepare(dir / "old.json", "--json", OutputContent::kResults);
  write_file(dir / "empty.json", "");
  output_file_prepare(dir / "empty.json", "--json", OutputContent::kResults);
  write_file(dir / "m.jsonl", "{\"st");  // a first line cut short: the writer drops it
  output_file_prepare(dir / "m.jsonl", "log.metrics", OutputContent::kMetrics);
  write_file(dir / "m.jsonl", "{\"step\":0,\"val_loss\":5.9}\n");
  output_file_prepare(dir / "m.jsonl", "log.metrics", OutputContent::kMetrics);
  write_file(dir / "t.json", "\n  {\n    \"schemaVersion\": 1,\n");
  output_file_prepare(dir / "t.json", "--trace", OutputContent::kTrace);
  // A path that can only name a directory: refused, and its directory is not made.
  for (const std::string& d :
       {dir / "newdir/", dir / "newdir/.", dir / "newdir/..", std::string(".")})
    expect_error<std::runtime_error>(
        [&] { output_file_prepare(d, "--json", OutputContent::kResults); },
        {"names a directory, not a file"});
  EXPECT_EQ(path_kind(dir / "newdir"), PathKind::kMissing);
  for (const std::string& other :
       {std::string("[1, 2, 3]"), std::string("{\"format\": \"longnet-dataset\"}"),
        std::string("{\"text\": \"a corpus line\"}\n"),
        std::string("{\"command\": \"python x\"}")}) {
    write_file(dir / "other.json", other);
    for (auto kind : {OutputContent::kResults, OutputContent::kMetrics, OutputContent::kTrace})
      expect_error<std::runtime_error>(
          [&] { output_file_prepare(dir / "other.json", "--json", kind); },
          {"exists and does not hold", "give a new path"});
  }
  expect_error<std::runtime_error>(
      [&] { output_file_prepare(dir / "m.jsonl", "--json", OutputContent::kResults); },
      {"does not hold longnet's results JSON"});
  expect_error<std::runtime_error>(
      [&] { output_file_prepare(dir / "old.json", "log.metrics", OutputContent::kMetrics); },
      {"does not hold longnet's metrics lines"});
  expect_error<std::runtime_error>(
      [&] { output_file_prepare(data, "--json", OutputContent::kResults); }, {"does not hold"});
  write_file(dir / "p.png", "\x89PNG\r\n\x1a\n....");
  output_file_prepare(dir / "p.png", "--plot", OutputContent::kImage);
  expect_error<std::runtime_error>(
      [&] { output_file_prepare(dir / "old.json", "--plot", OutputContent::kImage); },
      {"does not hold a PNG, SVG or PDF"});
  output_file_prepare(data, "--out", OutputContent::kAny);  // callers that check themselves
}

}  // namespace
}  // namespace longnet
