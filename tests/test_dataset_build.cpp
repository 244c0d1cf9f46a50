// `longnet data build` into sharded datasets (train/dataset_build.h): the token stream (units,
// separators, the validation rule), shard boundaries and widths (uint16, uint32), the same bytes
// whatever the number of workers, resume after an error and after a kill (simulated by the
// fault-injection hooks) to the same bytes as an uninterrupted build, repair of a damaged shard,
// and every refusal: --out a file, a foreign directory, a dataset of other inputs, malformed
// JSON Lines, a truncated .gz, a FIFO source. Each leaves no temporary file and loses no
// complete shard.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "longnet/tests/dataset_test_util.h"
#include "longnet/train/corpus.h"
#include "longnet/train/dataset_build.h"
#include "longnet/train/dataset_manifest.h"
#include "longnet/train/fault_injection.h"
#include "longnet/train/token_sampler.h"
#include "longnet/train/tokenizer.h"

namespace longnet {
namespace {

using namespace longnet::testing;

DatasetBuildOptions options(const std::vector<std::string>& sources, const std::string& out,
                            const std::string& tokenizer = "bytes:eot", uint64_t shard_bytes = 4000,
                            double val = 0.1) {
  DatasetBuildOptions o;
  o.sources = sources;
  o.out_dir = out;
  o.tokenizer = tokenizer;
  o.shard_bytes = shard_bytes;
  o.val_fraction = val;
  o.workers = 2;
  o.progress = false;
  o.quiet = true;
  return o;
}

// Every file of a dataset directory, name -> bytes.
std::map<std::string, std::string> contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& n : listing(dir)) out[n] = read_file(dir + "/" + n);
  return out;
}

bool no_tmp(const std::string& dir) {
  for (const auto& n : listing(dir))
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) return false;
  return true;
}

struct Hooks {  // resets the fault injection at scope exit
  ~Hooks() {
    fault_injection().build_fail_after_shards = -1;
    fault_injection().build_kill_after_shards = -1;
  }
};

TEST(DatasetBuild, StreamIsDocumentsWithEotBetweenAndValidationByUnitIndex) {
  TempDir dir;
  const auto docs = make_corpus(dir / "src", 23, 300);
  auto o = options({dir / "src"}, dir / "ds", "bytes:eot", 1 << 20, 0.2);
  const auto sum = dataset_build(o);
  EXPECT_FALSE(sum.resumed);
  EXPECT_EQ(sum.documents, 23);
  // The expected streams: unit k (here one per file) to validation when floor(0.2 k) steps.
  std::vector<int64_t> want[2];
  for (int k = 0; k < 23; ++k) {
    auto& w = want[dataset_unit_is_val(k, 0.2)];
    if (!w.empty()) w.push_back(256);
    for (unsigned char c : docs[k]) w.push_back(c);
  }
  EXPECT_TRUE(dataset_unit_is_val(0, 0.2));
  EXPECT_FALSE(dataset_unit_is_val(1, 0.2));
  EXPECT_TRUE(dataset_unit_is_val(5, 0.2));
  auto d = TokenDataset::open(dir / "ds");
  EXPECT_EQ(d->format(), "longnet");
  EXPECT_EQ(split_ids(*d, DataSplit::kTrain), want[0]);
  EXPECT_EQ(split_ids(*d, DataSplit::kVal), want[1]);
  const DatasetManifest& m = *d->manifest();
  EXPECT_TRUE(m.complete);
  EXPECT_EQ(m.token_bytes, 2);
  EXPECT_EQ(m.vocab_size, 257);
  EXPECT_EQ(m.eot_id, 256);
  EXPECT_EQ(m.tokenizer_hash, "bytes:eot");
  EXPECT_EQ(m.corpus_files, 23);
}

// Sources that overlap (the same directory twice, a file inside it, a link to it) read each file
// once: the dataset equals the one built from the directory alone, so no text sits in both
// splits.
TEST(DatasetBuild, OverlappingSourcesReadEachFileOnce) {
  TempDir dir;
  make_corpus(dir / "src", 23, 300);
  ASSERT_EQ(::symlink((dir / "src").c_str(), (dir / "link").c_str()), 0);
  const std::string inside = dir / ("src/" + listing(dir / "src")[3]);
  dataset_build(options({dir / "src"}, dir / "one", "bytes:eot", 1 << 20, 0.2));
  dataset_build(options({dir / "src", inside, dir / "link", dir / "src"}, dir / "overlap",
                        "bytes:eot", 1 << 20, 0.2));
  auto a = TokenDataset::open(dir / "one"), b = TokenDataset::open(dir / "overlap");
  EXPECT_EQ(split_ids(*b, DataSplit::kTrain), split_ids(*a, DataSplit::kTrain));
  EXPECT_EQ(split_ids(*b, DataSplit::kVal), split_ids(*a, DataSplit::kVal));
  EXPECT_EQ(b->manifest()->corpus_files, 23);
  CorpusSummary sum;
  corpus_files({dir / "src", inside, dir / "link", dir / "src"}, CorpusOptions{}, &sum);
  EXPECT_EQ(sum.duplicate_files, 1 + 23 + 23);
  // A dataset an older longnet built from these sources listed every file as often as it was
  // reached: rebuilding onto it is refused with the reason named.
  DatasetManifest older = manifest_read(dir / "overlap");
  older.corpus_files = 23 + 47;
  older.corpus_fingerprint = std::string(64, '0');
  manifest_write(dir / "overlap", older);
  testing::expect_throw<std::runtime_error>(
      [&] {
        dataset_build(options({dir / "src", inside, dir / "link", dir / "src"}, dir / "overlap",
                              "bytes:eot", 1 << 20, 0.2));
      },
      {"70 files 000000000000 there, 23 files",
       "the 47 file(s) these sources reach twice (overlapping --source paths or hard links) are "
       "now read once"});
}

// Text too small for both splits (one unit, which goes to validation) is refused and leaves
// nothing behind, so the advised --val-fraction 0 then builds; training reads a dataset without
// a validation split only when it does not evaluate (eval.interval: 0).
// More shards than a manifest can list (tiny shards of a large source) are refused before
// anything is read or written, not after hours of shards.
TEST(DatasetBuild, TooManyShardsForTheManifestRefusedAtStart) {
  TempDir dir;
  write_file(dir / "big.txt", "");
  ASSERT_EQ(::truncate((dir / "big.txt").c_str(), 48 << 20), 0);  // sparse: no disk taken
  expect_throw<std::invalid_argument>(
      [&] { dataset_build(options({dir / "big.txt"}, dir / "out", "bytes:eot", 256)); },
      {"would make a manifest of about", "give a larger --shard-mb"});
  EXPECT_NE(::access((dir / "out").c_str(), F_OK), 0);
}

TEST(DatasetBuild, NoValidationSplit) {
  TempDir dir;
  make_corpus(dir / "src", 1, 3000);
  expect_throw<std::runtime_error>(
      [&] { dataset_build(options({dir / "src"}, dir / "ds", "bytes:eot", 1 << 20, 0.2)); },
      {"the training split is empty", "unit 0 goes to validation",
       "--val-fraction 0 (and train with eval.interval: 0)"});
  struct stat st;
  EXPECT_NE(::stat((dir / "ds").c_str(), &st), 0) << "the refused build left its directory";
  ASSERT_EQ(::mkdir((dir / "mine").c_str(), 0755), 0);  // a directory the user made stays
  EXPECT_THROW(dataset_build(options({dir / "src"}, dir / "mine", "bytes:eot", 1 << 20, 0.2)),
               std::runtime_error);
  EXPECT_EQ(listing(dir / "mine").size(), 0u);
  // Sources that hold only a binary and an empty file: the refusal says so.
  write_file(dir / "odd/blob.bin", std::string("ab\0cd", 5));
  write_file(dir / "odd/empty.txt", "");
  expect_throw<std::runtime_error>(
      [&] { dataset_build(options({dir / "odd"}, dir / "ds_odd", "bytes:eot", 1 << 20, 0.0)); },
      {"the training split is empty", "1 binary files (a NUL byte), 1 empty files"});
  dataset_build(options({dir / "src"}, dir / "ds", "bytes:eot", 1 << 20, 0.0));
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ds"); },
                                   {"has an empty validation split", "eval.interval: 0"});
  auto d = TokenDataset::open(dir / "ds", "auto", /*need_val=*/false);
  EXPECT_EQ(d->tokens(DataSplit::kVal), 0);
  EXPECT_GT(d->tokens(DataSplit::kTrain), 2900);
  SamplerOptions so;
  so.seq_len = 16;
  so.val_batches = 0;
  TokenSampler sampler(*d, so);
  EXPECT_EQ(sampler.val_batches(), 0);
  EXPECT_EQ(sampler.next_batch().inputs.size(1), 16);
  so.val_batches = 1;
  expect_throw<std::runtime_error>([&] { TokenSampler(*d, so); },
                                   {"the validation split has 0 tokens"});
}

TEST(DatasetBuild, ShardBoundariesCutTheStreamAtShardTokens_uint16) {
  TempDir dir;
  make_corpus(dir / "src", 17, 700);
  dataset_build(options({dir / "src"}, dir / "one", "bytes", 1 << 20));
  dataset_build(options({dir / "src"}, dir / "many", "bytes", 1000));  // 500 tokens per shard
  auto one = TokenDataset::open(dir / "one"), many = TokenDataset::open(dir / "many");
  for (DataSplit s : {DataSplit::kTrain, DataSplit::kVal})
    EXPECT_EQ(split_ids(*one, s), split_ids(*many, s));
  const DatasetManifest& m = *many->manifest();
  EXPECT_EQ(m.shard_tokens, 500);
  ASSERT_GE(m.train.shards.size(), 20u);
  for (size_t i = 0; i + 1 < m.train.shards.size(); ++i) {
    EXPECT_EQ(m.train.shards[i].tokens, 500);
    EXPECT_EQ(m.train.shards[i].file,
              "train_" + std::string(i < 10 ? "00000" : "0000") + std::to_string(i) + ".bin");
    struct stat st;
    ASSERT_EQ(::stat((dir / "many/" + m.train.shards[i].file).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 64 + 2 * 500);
  }
  EXPECT_LE(m.train.shards.back().tokens, 500);
  // Reads across every boundary give the same tokens as the one-shard dataset.
  std::vector<int64_t> a(1200), b(1200);
  for (int64_t start : {0, 499, 500, 1499, 4321}) {
    one->read(DataSplit::kTrain, start, 1200, a.data());
    many->read(DataSplit::kTrain, start, 1200, b.data());
    EXPECT_EQ(a, b) << start;
  }
}

// A tiktoken ranks file of `ranks` tokens (the 256 bytes, then random multi-byte strings).
std::string ranks_file(const std::string& path, int ranks) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto b64 = [](const std::string& in) {
    std::string out;
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
      const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
      for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
    }
    if (i + 1 == in.size()) {
      const uint32_t v = uint8_t(in[i]) << 16;
      out += std::string{k[(v >> 18) & 63], k[(v >> 12) & 63], '=', '='};
    } else if (i + 2 == in.size()) {
      const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
      out += std::string{k[(v >> 18) & 63], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
    }
    return out;
  };
  std::mt19937 rng(9);
  std::set<std::string> seen;
  std::string text;
  for (int r = 0; r < ranks; ++r) {
    std::string tok;
    if (r < 256) {
      tok = std::string(1, static_cast<char>(r));
    } else {
      do {
        tok.clear();
        for (int n = 2 + rng() % 3; n > 0; --n) tok += static_cast<char>('a' + rng() % 26);
      } while (!seen.insert(tok).second);
    }
    text += b64(tok) + " " + std::to_string(r) + "\n";
  }
  write_file(path, text);
  return path;
}

TEST(DatasetBuild, LargeVocabularyWritesUint32AndDecodesBack) {
  if (!tokenizer_kind_available("tiktoken")) GTEST_SKIP() << "tiktoken is compiled out";
  TempDir dir;
  const auto docs = make_corpus(dir / "src", 6, 2000);
  const std::string spec = "tiktoken:" + ranks_file(dir / "big.tiktoken", 70000);
  dataset_build(options({dir / "src"}, dir / "ds", spec, 6000, 0.3));
  auto d = TokenDataset::open(dir / "ds");
  const DatasetManifest& m = *d->manifest();
  EXPECT_EQ(m.token_bytes, 4);
  EXPECT_EQ(m.vocab_size, 70005);
  EXPECT_EQ(m.shard_tokens, 1500);
  EXPECT_GE(m.train.shards.size(), 3u);
  // Split at the end-of-text ids, decoded: the training documents in order.
  auto tok = tokenizer_open(spec);
  const auto ids = split_ids(*d, DataSplit::kTrain);
  std::vector<std::string> got(1);
  std::vector<uint32_t> cur;
  for (int64_t id : ids) {
    if (id == m.eot_id) {
      got.back() = tok->decode(cur);
      cur.clear();
      got.emplace_back();
    } else {
      cur.push_back(static_cast<uint32_t>(id));
    }
  }
  got.back() = tok->decode(cur);
  std::vector<std::string> want;
  for (int k = 0; k < 6; ++k)
    if (!dataset_unit_is_val(k, 0.3)) want.push_back(docs[k]);
  EXPECT_EQ(got, want);
}

TEST(DatasetBuild, SameBytesWhateverTheNumberOfWorkers) {
  TempDir dir;
  make_corpus(dir / "src", 30, 5000);
  // A document over 1 MiB comes in units; its parts must stay in order.
  std::string big;
  while (big.size() < (size_t{5} << 19)) big += "a long line of a big document\n";
  write_file(dir / "src/zz_big.txt", big);
  for (int w : {1, 3}) {
    auto o = options({dir / "src"}, dir / ("w" + std::to_string(w)), "bytes", 300000);
    o.workers = w;
    dataset_build(o);
  }
  EXPECT_EQ(contents(dir / "w1"), contents(dir / "w3"));
  EXPECT_GE(TokenDataset::open(dir / "w1")->manifest()->units, 33);
}

TEST(DatasetBuild, ResumeAfterAnErrorGivesTheUninterruptedBytes) {
  TempDir dir;
  Hooks hooks;
  make_corpus(dir / "src", 40, 400);
  const auto o = options({dir / "src"}, dir / "ds");
  dataset_build(options({dir / "src"}, dir / "whole"));
  fault_injection().build_fail_after_shards = 2;
  expect_throw<std::runtime_error>([&] { dataset_build(o); }, {"stopped after 2 shard(s)"});
  EXPECT_TRUE(no_tmp(dir / "ds"));
  const DatasetManifest partial = manifest_read(dir / "ds");
  EXPECT_FALSE(partial.complete);
  EXPECT_EQ(partial.train.shards.size() + partial.val.shards.size(), 2u);
  // Training refuses it, saying what to do.
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ds"); },
                                   {"is incomplete", "rerun the same `longnet data build`"});
  fault_injection().build_fail_after_shards = 3;  // fails again, 3 shards later
  expect_throw<std::runtime_error>([&] { dataset_build(o); }, {"stopped after 3 shard(s)"});
  fault_injection().build_fail_after_shards = -1;
  const auto sum = dataset_build(o);
  EXPECT_TRUE(sum.resumed);
  EXPECT_EQ(sum.shards_kept, 5);
  EXPECT_EQ(contents(dir / "ds"), contents(dir / "whole"));
  // Once complete, the same command does nothing, also after a change of a source's permissions
  // (its status-change time counts for resumes only).
  EXPECT_TRUE(dataset_build(o).up_to_date);
  ASSERT_EQ(::chmod((dir / "src/f03.txt").c_str(), 0600), 0);
  EXPECT_TRUE(dataset_build(o).up_to_date);
}

// A source rewritten after an interruption with its size and modification time put back (as
// `touch -r` or `cp -p` of another version do): the resume refuses instead of mixing versions.
TEST(DatasetBuild, ResumeRefusesASourceRewrittenWithItsSizeAndTimeKept) {
  TempDir dir;
  make_corpus(dir / "src", 40, 400);
  const auto o = options({dir / "src"}, dir / "ds");
  {
    Hooks hooks;
    fault_injection().build_fail_after_shards = 3;
    EXPECT_THROW(dataset_build(o), std::runtime_error);
  }
  const std::string first = dir / "src/f00.txt";  // read before the interruption
  struct stat before {};
  ASSERT_EQ(::stat(first.c_str(), &before), 0);
  std::string text = read_file(first);
  text[0] = text[0] == 'x' ? 'y' : 'x';
  ::usleep(20000);  // (a later status-change time on file systems with coarse clocks)
  write_file(first, text);
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, first.c_str(), times, 0), 0);
  struct stat after {};
  ASSERT_EQ(::stat(first.c_str(), &after), 0);
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  expect_throw<std::runtime_error>(
      [&] { dataset_build(o); },
      {"holds an interrupted build whose first ", "are not the same now"});
}

TEST(DatasetBuild, ResumeAfterAKillCleansTemporaryFilesAndRepairsADamagedShard) {
  TempDir dir;
  make_corpus(dir / "src", 40, 400);
  const auto o = options({dir / "src"}, dir / "ds");
  dataset_build(options({dir / "src"}, dir / "whole"));
  {
    Hooks hooks;
    fault_injection().build_fail_after_shards = 4;
    EXPECT_THROW(dataset_build(o), std::runtime_error);
  }
  // What a kill -9 leaves besides: the next shard's temporary file, half written.
  write_file(dir / "ds/train_000004.bin.tmp", "half a shard");
  write_file(dir / "ds/manifest.json.tmp", "{");
  // And a kept shard damaged since: it and what follows it are rebuilt.
  const DatasetManifest partial = manifest_read(dir / "ds");
  const std::string victim = dir / ("ds/" + partial.train.shards.at(1).file);
  std::string bytes = read_file(victim);
  bytes[100] ^= 1;
  write_file(victim, bytes);
  const auto sum = dataset_build(o);
  EXPECT_TRUE(sum.resumed);
  EXPECT_TRUE(no_tmp(dir / "ds"));
  EXPECT_EQ(contents(dir / "ds"), contents(dir / "whole"));
  // A complete dataset with a damaged shard: rerunning repairs it too.
  bytes = read_file(dir / "ds/train_000002.bin");
  bytes[80] ^= 4;
  write_file(dir / "ds/train_000002.bin", bytes);
  EXPECT_TRUE(dataset_build(o).resumed);
  EXPECT_EQ(contents(dir / "ds"), contents(dir / "whole"));
  // A directory in a shard's place: refused before the manifest is touched, with what to do.
  ASSERT_EQ(::unlink((dir / "ds/train_000003.bin").c_str()), 0);
  ASSERT_EQ(::mkdir((dir / "ds/train_000003.bin").c_str(), 0755), 0);
  expect_throw<std::runtime_error>([&] { dataset_build(o); },
                                   {"train_000003.bin' is a directory, where the dataset's shard "
                                    "belongs; remove it and rerun"});
  EXPECT_TRUE(manifest_read(dir / "ds").complete);
  ASSERT_EQ(::rmdir((dir / "ds/train_000003.bin").c_str()), 0);
  EXPECT_TRUE(dataset_build(o).resumed);
  EXPECT_EQ(contents(dir / "ds"), contents(dir / "whole"));
}

TEST(DatasetBuild, RefusesOutputThatIsAFileOrSomethingElse) {
  TempDir dir;
  make_corpus(dir / "src", 5, 300);
  write_file(dir / "file", "x");
  expect_throw<std::runtime_error>([&] { dataset_build(options({dir / "src"}, dir / "file")); },
                                   {"--out '" + dir / "file" + "' exists and is not a directory"});
  write_file(dir / "other/notes.txt", "mine");
  expect_throw<std::runtime_error>([&] { dataset_build(options({dir / "src"}, dir / "other")); },
                                   {"is not empty", "no manifest.json"});
  EXPECT_EQ(read_file(dir / "other/notes.txt"), "mine");
  dataset_build(options({dir / "src"}, dir / "ds"));
  const auto before = contents(dir / "ds");
  expect_throw<std::runtime_error>(
      [&] { dataset_build(options({dir / "src"}, dir / "ds", "bytes")); },
      {"built from other inputs", "the tokenizer: bytes:eot there, bytes here"});
  make_corpus(dir / "src2", 5, 300, 2);
  expect_throw<std::runtime_error>([&] { dataset_build(options({dir / "src2"}, dir / "ds")); },
                                   {"the sources"});
  expect_throw<std::runtime_error>(
      [&] { dataset_build(options({dir / "src"}, dir / "ds", "bytes:eot", 8000)); },
      {"--shard-mb"});
  write_file(dir / "src/f00.txt", "changed");
  expect_throw<std::runtime_error>([&] { dataset_build(options({dir / "src"}, dir / "ds")); },
                                   {"the corpus files"});
  EXPECT_EQ(contents(dir / "ds"), before);  // nothing lost
  expect_throw<std::invalid_argument>(
      [&] { dataset_build(options({dir / "src"}, dir / "x", "bytes", 4000, 1.0)); },
      {"--val-fraction"});
  expect_throw<std::invalid_argument>([&] { dataset_build(options({}, dir / "x")); }, {"--source"});
}

TEST(DatasetBuild, MalformedJsonLinesNameFileAndLineAndKeepCompleteShards) {
  TempDir dir;
  std::string good;
  for (int i = 0; i < 200; ++i) good += "{\"text\": \"document " + std::to_string(i) + " body\"}\n";
  write_file(dir / "src/a.jsonl", good);
  write_file(dir / "src/b.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"cut off\n");
  const auto o = options({dir / "src"}, dir / "ds", "bytes", 1000);
  expect_throw<std::runtime_error>([&] { dataset_build(o); },
                                   {dir / "src/b.jsonl" + ":2", "not valid JSON"});
  EXPECT_TRUE(no_tmp(dir / "ds"));
  const DatasetManifest m = manifest_read(dir / "ds");
  EXPECT_FALSE(m.complete);
  EXPECT_GE(m.train.shards.size(), 3u);  // a.jsonl's complete shards are kept
  for (const auto& s : m.train.shards) EXPECT_TRUE(exists(dir / ("ds/" + s.file)));
  // No kept shard holds text of b.jsonl (they would tie a rerun to the file as it was): once
  // the line is fixed, the same command goes on, to the bytes of a build of the fixed corpus.
  for (const ManifestSplit* sp : {&m.train, &m.val})
    for (const auto& s : sp->shards) EXPECT_LT(s.end.file, 1) << s.file;
  write_file(dir / "src/b.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"cut off\"}\n");
  EXPECT_TRUE(dataset_build(o).resumed);
  dataset_build(options({dir / "src"}, dir / "whole", "bytes", 1000));
  EXPECT_EQ(contents(dir / "ds"), contents(dir / "whole"));
  // A line without the field names the fields it has.
  write_file(dir / "src2/c.jsonl", "{\"body\": \"x\", \"id\": 3}\n");
  expect_throw<std::runtime_error>([&] { dataset_build(options({dir / "src2"}, dir / "ds2")); },
                                   {"c.jsonl:1", "no field \"text\"", "body", "--jsonl-field"});
  EXPECT_FALSE(exists(dir / "ds2"));  // nothing complete: the directory this run made is gone
  auto o3 = options({dir / "src2"}, dir / "ds3");
  o3.jsonl_field = "body";
  o3.val_fraction = 0;
  dataset_build(o3);
}

TEST(DatasetBuild, TruncatedGzipIsAnErrorNamingTheFile) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i * 7919 % 10007) + "\n";
  write_file(dir / "src/a.txt", text);
  if (std::system(("gzip -n " + dir / "src/a.txt").c_str()) != 0)
    GTEST_SKIP() << "no gzip program to make the test file with";
  const std::string gz = dir / "src/a.txt.gz";
  std::string bytes = read_file(gz);
  write_file(gz, bytes.substr(0, bytes.size() / 2));
  expect_throw<std::runtime_error>(
      [&] { dataset_build(options({gz}, dir / "ds", "bytes", 1 << 20)); }, {gz, "truncated"});
  EXPECT_FALSE(exists(dir / "ds"));
}

TEST(DatasetBuild, FifoSourceIsRefusedWithoutWaiting) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0644), 0);
  expect_throw<std::runtime_error>([&] { dataset_build(options({dir / "pipe"}, dir / "ds")); },
                                   {"pipe", "neither a directory nor a regular file"});
}

}  // namespace
}  // namespace longnet
