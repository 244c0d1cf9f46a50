// Reading datasets (train/token_dataset.h, train/token_sampler.h) and everything that guards it
// (issue 18): CRC-32, the strict JSON reader and manifest checks (every integer range-checked,
// names kept inside the directory, the size bounded before reading), shard headers, llm.c /
// nanoGPT shards, the grid sampler across shard boundaries (each rank of dp x sp gets exactly
// its slice of the single-process batch, also under mpirun; exact resume), and the bad inputs:
// FIFOs and directories where files belong (refused before opening, so nothing waits), shards
// that shrink or vanish while in use, corrupt ids, checksum mismatches, a tokenizer or
// vocabulary that does not match the config.
#include <ATen/ATen.h>
#include <mpi.h>
#include <sys/stat.h>

#include <cstring>

#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/tests/dataset_test_util.h"
#include "longnet/train/config.h"
#include "longnet/train/crc32.h"
#include "longnet/train/data_file.h"
#include "longnet/train/dataset_build.h"
#include "longnet/train/dataset_check.h"
#include "longnet/train/eval_data.h"
#include "longnet/train/json_read.h"
#include "longnet/train/metrics.h"
#include "longnet/train/sha256.h"
#include "longnet/train/shard_header.h"
#include "longnet/train/token_sampler.h"
#include "longnet/train/tokenizer.h"

namespace longnet {
namespace {

using namespace longnet::testing;

// A dataset of `files` random text files, bytes:eot tokens, shards of `shard_tokens`.
void build(const TempDir& dir, const std::string& name, int files = 24, int bytes = 900,
           uint64_t shard_tokens = 1000, double val = 0.15) {
  make_corpus(dir / (name + "_src"), files, bytes, 3);
  DatasetBuildOptions o;
  o.sources = {dir / (name + "_src")};
  o.out_dir = dir / name;
  o.tokenizer = "bytes:eot";
  o.shard_bytes = 2 * shard_tokens;
  o.val_fraction = val;
  o.progress = false;
  o.quiet = true;
  dataset_build(o);
}

void poke_u16(const std::string& path, uint64_t offset, uint16_t v) {
  std::string b = read_file(path);
  std::memcpy(&b[offset], &v, 2);
  write_file(path, b);
}

// ---- checksums, JSON, manifests, headers -----------------------------------------------------

TEST(Crc32, KnownValueAndPiecewiseEqualsWhole) {
  EXPECT_EQ(crc32_hex(crc32_update(0, "123456789", 9)), "cbf43926");
  std::string data(100003, '\0');
  std::mt19937 rng(1);
  for (auto& c : data) c = static_cast<char>(rng());
  const uint32_t whole = crc32_update(0, data.data(), data.size());
  EXPECT_EQ(crc32_update(crc32_update(0, data.data(), 777), data.data() + 777, data.size() - 777),
            whole);
}

TEST(Json, StrictParsingWithLinesInErrors) {
  const JsonValue v =
      json_parse("{\"a\": [1, -2.5e3, true, null],\n \"b\": \"x\\u00e9\\ud83d\\ude00\"}", "t");
  EXPECT_EQ(v.find("a")->items.size(), 4u);
  EXPECT_EQ(v.find("a")->items[1].text, "-2.5e3");
  EXPECT_EQ(v.find("b")->text, "x\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.find("b")->line, 2);
  for (const auto& [text, what] : std::vector<std::pair<std::string, std::string>>{
           {"{\"a\": 1, \"a\": 2}", "duplicate key"},
           {"{\"a\": 1} x", "text after"},
           {"{\"a\": 01}", "leading zero"},
           {"{\"a\": \"\\q\"}", "unknown escape"},
           {"{\"a\": \"\\ud800\"}", "surrogate"},
           {"{\"a\": [1, 2}", "expected ',' or ']'"},
           {"\n\n  {\"a\"", "t:3:7"},
           {std::string(100, '[') + std::string(100, ']'), "64 deep"}})
    expect_throw<std::runtime_error>([&] { json_parse(text, "t"); }, {what});
}

// Strings that are no UTF-8 (a file name may hold any byte) are written as valid JSON, each such
// byte as \udcXX (Python's surrogateescape), and read back to the same bytes.
TEST(Json, BytesThatAreNoUtf8RoundTrip) {
  const std::string raw = std::string("src\xff/a\xc3\xa9\xed\xa0\x80\xc3", 12) + "\x01\"x";
  const std::string quoted = json_quote(raw);
  EXPECT_EQ(quoted, "\"src\\udcff/a\xc3\xa9\\udced\\udca0\\udc80\\udcc3\\u0001\\\"x\"");
  for (unsigned char c : quoted) EXPECT_LT(c, 0xf5);  // (no raw invalid byte left)
  EXPECT_EQ(json_parse("{\"k\": " + quoted + "}", "t").find("k")->text, raw);
  expect_throw<std::runtime_error>([&] { json_parse("{\"k\": \"\\udc41\"}", "t"); },
                                   {"surrogate"});  // (not a byte's escape: those are 80..ff)
}

TEST(Manifest, RoundTripAndEveryFieldChecked) {
  TempDir dir;
  build(dir, "ds");
  const std::string path = dir / "ds/manifest.json";
  const std::string text = read_file(path);
  const DatasetManifest m = manifest_parse(text, path);
  EXPECT_EQ(manifest_to_json(m), text);
  EXPECT_TRUE(manifest_build_difference(m, m).empty());
  auto bad = [&](const std::string& from, const std::string& to, const std::string& what) {
    std::string t = text;
    const size_t at = t.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    t.replace(at, from.size(), to);
    expect_throw<std::runtime_error>([&] { manifest_parse(t, path); }, {what});
  };
  const auto& s0 = m.train.shards[0];
  bad("\"tokens\": " + std::to_string(s0.tokens), "\"tokens\": 1e3", "is not a whole number");
  bad("\"tokens\": " + std::to_string(s0.tokens), "\"tokens\": 99999999999999999999",
      "is not a whole number in [0, 1099511627776]");
  bad("\"bytes\": " + std::to_string(s0.bytes), "\"bytes\": 7",
      "splits.train.shards[0].bytes: 7 disagrees");
  bad("\"file\": \"train_000000.bin\"", "\"file\": \"../../etc/passwd\"",
      "is not a plain file name");
  bad("\"crc32\": \"" + crc32_hex(s0.crc32) + "\"", "\"crc32\": \"xyz\"", "8 hex digits");
  bad("\"version\": 1", "\"version\": 2", "has version 2");
  bad("\"format\": \"longnet-dataset\"", "\"format\": \"other\"", "not a longnet dataset manifest");
  bad("\"token_bytes\": 2", "\"token_bytes\": 3", "token_bytes");
  bad("\"vocab_size\": 257", "\"vocab_size\": 70000", "2 bytes cannot hold");
  bad("\"eot_id\": 256", "\"eot_id\": 257", "eot_id");
  bad("\"val_fraction\": 0.15", "\"val_fraction\": 1.5", "not in [0, 1)");
  bad("\"complete\": true", "\"complete\": 1", "is a number, not a boolean");
  bad("\"shard_tokens\"", "\"shard_tokenz\"", "shard_tokens: is missing");
  bad("\"train\": {\"tokens\": " + std::to_string(m.train.tokens),
      "\"train\": {\"tokens\": " + std::to_string(m.train.tokens + 1), "not the sum");
  // Larger than a manifest can be: refused before it is read.
  write_file(dir / "huge.json", std::string(kManifestMaxBytes + 1, ' '));
  expect_throw<std::runtime_error>(
      [&] { manifest_read(dir / "huge.json"); },
      {"more than the " + std::to_string(kManifestMaxBytes) + " bytes"});
  // ... and data build never writes one (it would succeed with a dataset nothing can read).
  DatasetManifest many = m;
  many.sources.assign(kManifestMaxBytes / 4000 + 10, std::string(4000, 's'));
  expect_throw<std::runtime_error>([&] { manifest_write(dir / "many", many); },
                                   {"would be", "more than the", "give a larger --shard-mb"});
}

TEST(ShardHeader, WriteCheckAndTheLlmcLayout) {
  unsigned char h[64];
  ShardHeader in;
  in.token_bytes = 4;
  in.vocab_size = 100277;
  in.tokens = 10;
  in.split = 1;
  in.index = 3;
  shard_header_write(h, in);
  const ShardHeader out = shard_header_check(h, 64, 64 + 40, "s");
  EXPECT_EQ(out.tokens, 10u);
  EXPECT_EQ(out.index, 3u);
  expect_throw<std::runtime_error>([&] { shard_header_check(h, 64, 64 + 39, "s"); },
                                   {"'s' is truncated", "promises 10 tokens"});
  expect_throw<std::runtime_error>([&] { shard_header_check(h, 64, 64 + 44, "s"); },
                                   {"4 bytes more"});
  in.tokens = ~uint64_t{0};  // no overflow in the size check
  shard_header_write(h, in);
  expect_throw<std::runtime_error>([&] { shard_header_check(h, 64, 1000, "s"); }, {"truncated"});
  int32_t l[256] = {kLlmcMagicU16, kLlmcVersionU16, 5};
  const auto* lb = reinterpret_cast<const unsigned char*>(l);
  EXPECT_EQ(llmc_header_check(lb, 1024, 1024 + 10, "n").tokens, 5u);
  l[2] = -1;
  expect_throw<std::runtime_error>([&] { llmc_header_check(lb, 1024, 1034, "n"); }, {"negative"});
  l[0] = 1234;
  expect_throw<std::runtime_error>([&] { llmc_header_check(lb, 1024, 1034, "n"); },
                                   {"magic 1234", "20240520"});
}

// ---- reading -------------------------------------------------------------------------------

TEST(TokenDataset, ReadsAcrossShardsAndDescribesItself) {
  TempDir dir;
  build(dir, "ds");
  auto d = TokenDataset::open(dir / "ds");
  auto same = TokenDataset::open(dir / "ds/manifest.json");
  EXPECT_EQ(split_ids(*d, DataSplit::kTrain), split_ids(*same, DataSplit::kTrain));
  EXPECT_GT(d->files(DataSplit::kTrain).size(), 10u);
  EXPECT_EQ(d->vocab_bound(), 257);
  EXPECT_NE(d->summary().find("longnet dataset"), std::string::npos);
  std::vector<int64_t> buf(10);
  expect_throw<std::out_of_range>(
      [&] { d->read(DataSplit::kVal, d->tokens(DataSplit::kVal) - 5, 10, buf.data()); },
      {"outside the validation split"});
  expect_throw<std::invalid_argument>([&] { TokenDataset::open(dir / "ds", "csv"); },
                                      {"auto, longnet, nanogpt or legacy"});
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ds", "legacy"); },
                                   {"is a directory"});
  // One of its shards given as data.path: named, with the directory to give instead.
  expect_throw<std::runtime_error>(
      [&] { TokenDataset::open(dir / "ds/train_000000.bin"); },
      {"is one shard of a longnet dataset", "its manifest.json: " + (dir / "ds") + ")"});
}

TEST(TokenDataset, FifosAndDirectoriesAreRefusedBeforeOpening) {
  TempDir dir;
  build(dir, "ds");
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0644), 0);
  expect_throw<std::runtime_error>(
      [&] { TokenDataset::open(dir / "pipe"); },
      {"'" + dir / "pipe" + "' is a FIFO (named pipe), not a regular"});
  const std::string shard = dir / "ds/train_000001.bin";
  ASSERT_EQ(::unlink(shard.c_str()), 0);
  ASSERT_EQ(::mkfifo(shard.c_str(), 0644), 0);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ds"); },
                                   {"shard '" + shard + "' is a FIFO"});
  ::unlink(shard.c_str());
  ASSERT_EQ(::mkdir(shard.c_str(), 0755), 0);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ds"); }, {"is a directory"});
  expect_throw<std::runtime_error>([&] { data_file_read_small("/dev/null", "manifest", 10); },
                                   {"is a character device"});
  // A data.path that is a link to nothing, or a loop of links, is named as such.
  ASSERT_EQ(::symlink((dir / "gone").c_str(), (dir / "dangling").c_str()), 0);
  expect_throw<std::runtime_error>(
      [&] { TokenDataset::open(dir / "dangling"); },
      {"is a symbolic link to '" + (dir / "gone") + "', which does not"});
  ASSERT_EQ(::symlink((dir / "loop_b").c_str(), (dir / "loop_a").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "loop_a").c_str(), (dir / "loop_b").c_str()), 0);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "loop_a"); },
                                   {"leads back to itself (a loop)"});
}

TEST(TokenDataset, ShardShrunkOrGoneWhileInUseIsAnErrorNamingIt) {
  TempDir dir;
  build(dir, "ds");
  auto d = TokenDataset::open(dir / "ds");
  auto unread = TokenDataset::open(dir / "ds");  // no shard opened for reading yet
  const auto files = d->files(DataSplit::kTrain);
  const auto before = split_ids(*d, DataSplit::kTrain);  // every shard of d open now
  ASSERT_EQ(::truncate(files[2].c_str(), 100), 0);
  std::vector<int64_t> buf(d->tokens(DataSplit::kTrain));
  expect_throw<std::runtime_error>(
      [&] { d->read(DataSplit::kTrain, 0, d->tokens(DataSplit::kTrain), buf.data()); },
      {"shard '" + files[2] + "' shrank while in use", "100 bytes now", "resume"});
  // Shrunk before its first read: found when it is opened.
  expect_throw<std::runtime_error>(
      [&] { unread->read(DataSplit::kTrain, 2500, 5, buf.data()); },
      {"shard '" + files[2] + "' has 100 bytes now, fewer than the 2064"});
  // A dataset opened afterwards refuses it at once.
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ds"); },
                                   {files[2], "has 100 bytes but the manifest says 2064"});
  // Removed before its first read: named. (A shard removed while open reads on: the open file
  // keeps its data.)
  ASSERT_EQ(::unlink(files[4].c_str()), 0);
  expect_throw<std::runtime_error>([&] { unread->read(DataSplit::kTrain, 4100, 5, buf.data()); },
                                   {"shard '" + files[4] + "' does not exist"});
  d->read(DataSplit::kTrain, 4100, 5, buf.data());
  EXPECT_EQ(std::vector<int64_t>(buf.begin(), buf.begin() + 5),
            std::vector<int64_t>(before.begin() + 4100, before.begin() + 4105));
}

TEST(TokenDataset, CorruptIdsAndChecksumsNameTheShard) {
  TempDir dir;
  build(dir, "ds");
  const std::string shard = dir / "ds/train_000003.bin";
  auto clean = TokenDataset::open(dir / "ds");
  EXPECT_EQ(clean->verify_checksums(0, 1).first, -1);
  poke_u16(shard, 64 + 2 * 7, 40000);  // an id no bytes:eot token has
  auto d = TokenDataset::open(dir / "ds");
  std::vector<int64_t> buf(5000);
  expect_throw<std::runtime_error>(
      [&] { d->read(DataSplit::kTrain, 0, 5000, buf.data()); },
      {"shard '" + shard + "': token 7 is 40000, not below the vocabulary 257", "corrupt"});
  // Any changed byte: the checksum; each of 3 ranks checks its third.
  poke_u16(shard, 64 + 2 * 7, 'q');
  int found = 0;
  for (int r = 0; r < 3; ++r) {
    const auto [index, why] = TokenDataset::open(dir / "ds")->verify_checksums(r, 3);
    if (index < 0) continue;
    ++found;
    EXPECT_EQ(index, 3);
    EXPECT_NE(why.find("shard '" + shard + "' is corrupt: its CRC-32 is"), std::string::npos)
        << why;
  }
  EXPECT_EQ(found, 1);
}

TEST(TokenDataset, LlmcShardsTrainAndValidationByName) {
  TempDir dir;
  auto shard = [&](const std::string& name, const std::vector<uint16_t>& ids, int32_t magic,
                   int32_t version, int64_t count) {
    std::vector<int32_t> h(256, 0);
    h[0] = magic, h[1] = version, h[2] = static_cast<int32_t>(count);
    std::string b(reinterpret_cast<const char*>(h.data()), 1024);
    b.append(reinterpret_cast<const char*>(ids.data()), 2 * ids.size());
    write_file(dir / ("fw/" + name), b);
  };
  std::vector<uint16_t> a(300), v(200), c(50);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(i * 7 % 1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i * 11 % 1000);
  for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<uint16_t>(i + 1000);
  shard("fineweb_train_000001.bin", a, kLlmcMagicU16, 1, 300);
  shard("fineweb_train_000002.bin", c, kLlmcMagicU16, 1, 50);
  shard("fineweb_val_000000.bin", v, kLlmcMagicU16, 1, 200);
  auto d = TokenDataset::open(dir / "fw");
  EXPECT_EQ(d->format(), "nanogpt");
  EXPECT_EQ(d->tokens(DataSplit::kTrain), 350);
  std::vector<int64_t> want(a.begin(), a.end());
  want.insert(want.end(), c.begin(), c.end());
  EXPECT_EQ(split_ids(*d, DataSplit::kTrain), want);
  EXPECT_EQ(split_ids(*d, DataSplit::kVal), std::vector<int64_t>(v.begin(), v.end()));
  // Evaluation bounds their ids by the model's vocabulary, as training does (they record none;
  // their token width, 2^16, is no vocabulary).
  const ValidationTokens vt = validation_tokens_open(dir / "fw", 1000);
  EXPECT_EQ(vt.vocab_size, 1000);
  EXPECT_TRUE(at::equal(vt.read(0, 200), at::tensor(std::vector<int64_t>(v.begin(), v.end()))));
  expect_throw<std::runtime_error>([&] { validation_tokens_open(dir / "fw", 900).read(0, 200); },
                                   {"fineweb_val_000000.bin': token", "model.vocab_size"});
  d->bound_ids_by_model(1020);
  std::vector<int64_t> buf(350);
  expect_throw<std::runtime_error>(
      [&] { d->read(DataSplit::kTrain, 0, 350, buf.data()); },
      {"fineweb_train_000002.bin': token 20 is 1020", "model.vocab_size"});
  // Found at the start as well (data.verify: checksums): they carry no checksum, so each rank
  // reads its share of the shards whole for an id past the bound.
  const auto [bad, why] = d->verify_checksums(0, 1);
  EXPECT_EQ(bad, 1);
  EXPECT_NE(why.find("fineweb_train_000002.bin': token 20 is 1020"), std::string::npos) << why;
  EXPECT_EQ(d->verify_checksums(1, 2).first, 1);  // rank 1 of 2 reads shard 1
  EXPECT_EQ(d->verify_checksums(0, 2).first, -1);
  d->set_vocab_bound(1050);
  EXPECT_EQ(d->verify_checksums(0, 1).first, -1);
  d->set_vocab_bound(1020);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "fw/fineweb_val_000000.bin"); },
                                   {"is one llm.c / nanoGPT shard"});
  shard("fineweb_train_000003.bin", c, kLlmcMagicU16, 1, 51);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "fw"); },
                                   {"fineweb_train_000003.bin' is truncated"});
  shard("fineweb_train_000003.bin", c, kLlmcMagicU16, 3, 50);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "fw", "nanogpt"); },
                                   {"version 3"});
  ::unlink((dir / "fw/fineweb_train_000003.bin").c_str());
  ::unlink((dir / "fw/fineweb_val_000000.bin").c_str());
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "fw"); },
                                   {"0 validation .bin shards"});
  // "val" is a word of a validation file's name, not part of another word: medieval_*.bin and
  // interval_*.bin are training files; val.bin, *_validation.bin, *_val0.bin, eval_*.bin are
  // validation files.
  ::unlink((dir / "fw/fineweb_train_000001.bin").c_str());
  ::unlink((dir / "fw/fineweb_train_000002.bin").c_str());
  shard("medieval_train_000001.bin", a, kLlmcMagicU16, 1, 300);
  shard("val.bin", v, kLlmcMagicU16, 1, 200);
  shard("medieval_validation.bin", c, kLlmcMagicU16, 1, 50);
  shard("shard_val0.bin", c, kLlmcMagicU16, 1, 50);
  shard("eval_000.bin", c, kLlmcMagicU16, 1, 50);
  shard("interval_train.bin", c, kLlmcMagicU16, 1, 50);
  auto m = TokenDataset::open(dir / "fw");
  EXPECT_EQ(m->tokens(DataSplit::kTrain), 350);
  EXPECT_EQ(m->tokens(DataSplit::kVal), 350);
}

// nanoGPT's prepare.py writes train.bin and val.bin as bare uint16 tokens: read as they are under
// those names; an odd size is refused, and any other name still needs an llm.c header.
TEST(TokenDataset, NanogptHeaderlessFilesByTheirNames) {
  TempDir dir;
  std::vector<uint16_t> a(300), v(77);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(i * 13 % 60000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i * 5 % 60000);
  auto bare = [&](const std::string& name, const std::vector<uint16_t>& ids) {
    write_file(dir / ("ng/" + name),
               std::string(reinterpret_cast<const char*>(ids.data()), 2 * ids.size()));
  };
  bare("train.bin", a);
  bare("val.bin", v);
  write_file(dir / "ng/._train.bin", "macOS metadata");  // hidden: no shard
  for (const std::string format : {"auto", "nanogpt"}) {
    auto d = TokenDataset::open(dir / "ng", format);
    EXPECT_EQ(d->format(), "nanogpt");
    EXPECT_EQ(split_ids(*d, DataSplit::kTrain), std::vector<int64_t>(a.begin(), a.end()));
    EXPECT_EQ(split_ids(*d, DataSplit::kVal), std::vector<int64_t>(v.begin(), v.end()));
  }
  const ValidationTokens vt = validation_tokens_open(dir / "ng", 60000);
  EXPECT_TRUE(at::equal(vt.read(0, 77), at::tensor(std::vector<int64_t>(v.begin(), v.end()))));
  write_file(dir / "ng/val.bin", std::string(reinterpret_cast<const char*>(v.data()), 11));
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ng"); },
                                   {"val.bin' (no llm.c header", "odd size of 11 bytes"});
  bare("val.bin", v);
  bare("other_train.bin", a);
  expect_throw<std::runtime_error>([&] { TokenDataset::open(dir / "ng"); },
                                   {"other_train.bin' has magic", "train.bin and val.bin"});
}

// ---- the sampler over shards -----------------------------------------------------------------

// Each rank's slice of the grid (dp x sp) equals its part of the single-process batch (sp = 1),
// training and validation, over windows that cross shard boundaries.
void grid_check(const TokenDataset& d, int64_t dp, int64_t sp, int64_t rank) {
  SamplerOptions o;
  o.seq_len = 240;
  o.batch_size = 3;
  o.dp_size = dp;
  o.dp_index = rank / sp;
  o.sp_size = sp;
  o.sp_index = rank % sp;
  o.seed = 21;
  o.val_batches = 2;
  TokenSampler mine(d, o, 6 * dp);
  SamplerOptions whole_o = o;
  whole_o.sp_size = 1;
  whole_o.sp_index = 0;
  TokenSampler whole(d, whole_o, 6 * dp);
  const int64_t L = 240 / sp;
  for (int step = 0; step < 4; ++step) {
    const TokenBatch a = mine.next_batch(), b = whole.next_batch();
    EXPECT_TRUE(at::equal(a.inputs, b.inputs.narrow(1, o.sp_index * L, L)))
        << "dp " << dp << " sp " << sp << " rank " << rank << " step " << step;
    EXPECT_TRUE(at::equal(a.targets, b.targets.narrow(1, o.sp_index * L, L)));
  }
  for (int64_t i = 0; i < 2; ++i)
    EXPECT_TRUE(at::equal(mine.val_batch(i).inputs,
                          whole.val_batch(i).inputs.narrow(1, o.sp_index * L, L)));
  // And the single-process batch is the split's tokens at its start.
  std::vector<int64_t> row(241);
  d.read(DataSplit::kTrain, whole.train_start(6 * dp + o.dp_index * 3), 241, row.data());
  TokenSampler again(d, whole_o, 6 * dp);
  const TokenBatch first = again.next_batch();
  for (int64_t k = 0; k < 240; ++k) {
    ASSERT_EQ(first.inputs[0][k].item<int64_t>(), row[k]);
    ASSERT_EQ(first.targets[0][k].item<int64_t>(), row[k + 1]);
  }
}

TEST(DatasetGrid, EachRankReadsExactlyItsSliceOfTheSingleProcessBatch) {
  const int world = mpi_is_initialized() ? mpi_world_size() : 1;
  const int rank = mpi_is_initialized() ? mpi_world_rank() : 0;
  // Rank 0 builds; everyone reads the same directory.
  std::unique_ptr<TempDir> dir;
  char path[256] = {};
  if (rank == 0) {
    dir = std::make_unique<TempDir>();
    build(*dir, "ds", 30, 1200, 700);
    std::snprintf(path, sizeof(path), "%s", (*dir / "ds").c_str());
  }
  if (world > 1) MPI_Bcast(path, sizeof(path), MPI_CHAR, 0, MPI_COMM_WORLD);
  auto d = TokenDataset::open(path);
  if (world == 1) {
    for (auto [dp, sp] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 1}, {1, 4}, {2, 2}, {3, 2}})
      for (int64_t r = 0; r < dp * sp; ++r) grid_check(*d, dp, sp, r);
  } else {
    for (int64_t sp = 1; sp <= world; ++sp)
      if (world % sp == 0) grid_check(*d, world / sp, sp, rank);
  }
  if (world > 1) MPI_Barrier(MPI_COMM_WORLD);  // before rank 0 removes the directory
}

TEST(DatasetGrid, ExactResumeAcrossShardBoundaries) {
  TempDir dir;
  build(dir, "ds", 30, 1200, 200);
  auto d = TokenDataset::open(dir / "ds");
  SamplerOptions o;
  o.seq_len = 512;  // longer than a shard: every window crosses at least two boundaries
  o.batch_size = 2;
  o.dp_size = 2;
  o.dp_index = 1;
  o.sp_size = 2;
  o.sp_index = 1;
  o.seed = 4;
  TokenSampler a(*d, o);
  std::vector<TokenBatch> run;
  for (int i = 0; i < 6; ++i) run.push_back(a.next_batch());
  TokenSampler b(*d, o);
  b.set_position(3 * 2 * 2);  // as a checkpoint after 3 steps restores it
  for (int i = 3; i < 6; ++i) {
    const TokenBatch x = b.next_batch();
    EXPECT_TRUE(at::equal(x.inputs, run[i].inputs));
    EXPECT_TRUE(at::equal(x.targets, run[i].targets));
  }
}

// ---- config against dataset ------------------------------------------------------------------

TEST(DatasetCheck, TokenizerAndVocabularyMismatchesNameBothValues) {
  TempDir dir;
  build(dir, "ds");
  auto d = TokenDataset::open(dir / "ds");
  TrainConfig c = config_parse("model:\n  vocab_size: 257\ndata:\n  tokenizer: bytes\n", "c.yaml");
  expect_throw<std::invalid_argument>(
      [&] { dataset_config_check(c, *d); },
      {"c.yaml:4: data.tokenizer: 'bytes'", "its manifest records 'bytes:eot'"});
  c = config_parse("model:\n  vocab_size: 256\ndata:\n  tokenizer: bytes:eot\n", "c.yaml");
  expect_throw<std::invalid_argument>(
      [&] { dataset_config_check(c, *d); },
      {"c.yaml:2: model.vocab_size: 256 is smaller than the vocabulary of", "257 ids"});
  // The same rule from the config alone, when data.tokenizer says it.
  expect_throw<std::invalid_argument>([&] { config_check(c, 1); },
                                      {"model.vocab_size: 256", "bytes:eot", "257"});
  c = config_parse("model:\n  vocab_size: 300\ndata:\n  tokenizer: bytes:eot\n", "c.yaml");
  EXPECT_NE(dataset_config_check(c, *d).find("matches data.tokenizer"), std::string::npos);
  c = config_parse("model:\n  vocab_size: 300\n", "c.yaml");
  dataset_config_check(c, *d);  // no data.tokenizer: the manifest's
}

// A manifest whose vocabulary or end-of-text id is not its tokenizer's was edited: those bound
// the ids read, so it is refused (against data.tokenizer, or the recorded tokenizer).
TEST(DatasetCheck, ManifestVocabularyOtherThanItsTokenizersIsRefused) {
  TempDir dir;
  build(dir, "ds");
  auto d = TokenDataset::open(dir / "ds");
  DatasetManifest m = *d->manifest();
  EXPECT_NO_THROW(manifest_vocab_check(m, "ds", ""));
  EXPECT_NO_THROW(manifest_vocab_check(m, "ds", "bytes:eot"));
  m.vocab_size = 1000;
  for (const std::string spec : {"", "bytes:eot"})
    expect_throw<std::runtime_error>([&] { manifest_vocab_check(m, "ds", spec); },
                                     {"ds: its manifest records vocabulary 1000 and end-of-text id "
                                      "256, but its tokenizer 'bytes:eot'",
                                      "has 257 and 256", "the manifest was edited"});
  m.vocab_size = 257;
  m.eot_id = -1;
  expect_throw<std::runtime_error>([&] { manifest_vocab_check(m, "ds", ""); },
                                   {"end-of-text id -1", "has 257 and 256"});
}

TEST(DatasetCheck, TokenizerHashFromTheFileEqualsTheLibrarys) {
  if (!tokenizer_kind_available("tiktoken")) GTEST_SKIP() << "tiktoken is compiled out";
  TempDir dir;
  std::string ranks;
  const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int r = 0; r < 256; ++r) {
    const uint32_t v = static_cast<uint32_t>(r) << 16;
    ranks += std::string{b64[(v >> 18) & 63], b64[(v >> 12) & 63], '=', '='} + " " +
             std::to_string(r) + "\n";
  }
  write_file(dir / "t.tiktoken", ranks);
  const std::string spec = "tiktoken:" + dir / "t.tiktoken";
  EXPECT_EQ(tokenizer_file_hash(spec), tokenizer_open(spec)->content_hash());
  EXPECT_EQ(tokenizer_spec_hash(spec), "tiktoken:" + sha256_hex(ranks));
}

}  // namespace
}  // namespace longnet
