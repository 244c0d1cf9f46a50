// `data build` into a sharded dataset (see dataset_build.h): the output directory's state, the
// reading loop, and the shard writing in corpus order.
#include "longnet/train/dataset_build.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "longnet/core/file_util.h"
#include "longnet/core/options.h"
#include "longnet/core/text.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/build_progress.h"
#include "longnet/train/corpus.h"
#include "longnet/train/fault_injection.h"
#include "longnet/train/sha256.h"
#include "longnet/train/shard_writer.h"
#include "longnet/train/tokenize_pool.h"
#include "longnet/train/tokenizer.h"

namespace longnet {
namespace {

constexpr size_t kBatchBytes = size_t{1} << 20;  // text per worker batch
constexpr size_t kBatchUnits = 256;
bool before(const CorpusPosition& a, const CorpusPosition& b) {
  return a.file != b.file ? a.file < b.file : a.unit < b.unit;
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    throw std::runtime_error("data build: cannot read --out '" + dir +
                             "': " + std::strerror(errno));
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

// A file a build of ours may have left: a shard, a temporary shard or manifest.
bool ours(const std::string& name) {
  auto shard = [](const std::string& n) {
    for (const char* p : {"train_", "val_"}) {
      const size_t k = std::strlen(p);
      if (n.size() == k + 10 && n.compare(0, k, p) == 0 &&
          n.compare(n.size() - 4, 4, ".bin") == 0 &&
          std::all_of(n.begin() + k, n.end() - 4, [](char c) { return c >= '0' && c <= '9'; }))
        return true;
    }
    return false;
  };
  if (name == std::string(kManifestName) + ".tmp") return true;
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
    return shard(name.substr(0, name.size() - 4));
  return shard(name);
}

// The build's state: the manifest so far and the shard being written in each split.
class Builder {
 public:
  Builder(const DatasetBuildOptions& o, DatasetBuildSummary& sum) : o_(o), sum_(sum) {}
  ~Builder() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  void run();

 private:
  void prepare_out_dir();
  void write_all(const CorpusOptions& co, const CorpusSummary& listing);
  void write_units(std::vector<TokenizeUnit>& units);
  void finish_shard(int split, const CorpusPosition& end);
  ManifestSplit& split(int s) { return s ? m_.val : m_.train; }

  const DatasetBuildOptions& o_;
  DatasetBuildSummary& sum_;
  std::unique_ptr<Tokenizer> tok_;
  DatasetManifest m_;
  std::vector<CorpusFile> files_;
  std::unique_ptr<ShardWriter> writer_[2];
  std::unique_ptr<CorpusFingerprint> fingerprint_;  // of the prefixes shards end in
  int64_t duplicate_files_ = 0;                     // reached twice in the sources, read once
  int lock_fd_ = -1;
  bool created_dir_ = false;
  bool started_empty_ = false;  // --out held nothing (or did not exist): a failure leaves nothing
  int kill_pending_ = 0;        // a signal number (the --debug-*-after-shards hooks)
  int64_t shards_this_run_ = 0;
  int64_t binary_files_ = 0, empty_files_ = 0,
          wide_text_files_ = 0;  // skipped as read in this run (directory walks)
  int64_t bad_lines_ = 0;        // malformed JSON lines skipped in this run
  // Bytes that are no UTF-8, which a SentencePiece model reads as U+FFFD (not kept exactly),
  // and the first file holding some.
  int64_t invalid_utf8_bytes_ = 0;
  std::string first_invalid_utf8_file_;
  std::string first_bad_line_;
};

void Builder::prepare_out_dir() {
  const std::string& out = o_.out_dir;
  struct stat st;
  if (::stat(out.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw std::runtime_error("data build: --out '" + out +
                               "' exists and is not a directory; a dataset is a directory (of "
                               "shards and manifest.json): give a new or empty directory");
  } else {
    if (!make_dirs(out))
      throw std::runtime_error("data build: cannot create --out '" + out +
                               "': " + std::strerror(errno));
    created_dir_ = true;
  }
  // One build per directory at a time.
  lock_fd_ = ::open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    throw std::runtime_error("data build: --out '" + out +
                             "' is being written by another longnet data build (or cannot be "
                             "locked); wait for it to finish");
  const auto entries = dir_entries(out);
  const bool has_manifest =
      std::find(entries.begin(), entries.end(), kManifestName) != entries.end();
  if (!has_manifest) {
    if (!entries.empty())
      throw std::runtime_error("data build: --out '" + out + "' is not empty (" +
                               std::to_string(entries.size()) + " entries, e.g. '" +
                               entries.front() +
                               "') and holds no longnet dataset (no manifest.json); give a new "
                               "or empty directory");
    started_empty_ = true;
    return;
  }
  DatasetManifest there;
  try {
    there = manifest_read(out);
  } catch (const std::exception& e) {
    throw std::runtime_error("data build: --out '" + out +
                             "' holds a manifest.json that cannot be read (" + e.what() +
                             "); remove '" + out + "' or give another --out");
  }
  // A complete dataset must be of this very corpus; an interrupted one, of the same files up to
  // where each split stopped (later files may have changed: a malformed one fixed, say).
  const std::string diff = manifest_build_difference(there, m_, there.complete);
  if (!diff.empty()) {
    // Built before files reached twice were read once: it lists each duplicate again.
    const bool older_dedup = duplicate_files_ > 0 && there.complete &&
                             there.corpus_files == m_.corpus_files + duplicate_files_;
    throw std::runtime_error(
        "data build: --out '" + out + "' holds a dataset built from other inputs (" + diff +
        (older_dedup ? "; the " + std::to_string(duplicate_files_) +
                           " file(s) these sources reach twice (overlapping --source paths or "
                           "hard links) are now read once, and that dataset read them twice"
                     : std::string()) +
        "); give another --out, or remove '" + out + "' to rebuild it");
  }
  if (!there.complete) {
    std::vector<const ManifestShard*> ends;
    for (const ManifestSplit* sp : {&there.train, &there.val})
      if (!sp->shards.empty()) ends.push_back(&sp->shards.back());
    std::sort(ends.begin(), ends.end(), [](const ManifestShard* a, const ManifestShard* b) {
      return a->end.file < b->end.file;
    });
    CorpusFingerprint fp(files_, true);
    // (The manifest keeps a fingerprint of the files read, not their names: a file added or
    // removed before where it stopped shifts the listing, so no file is named here.)
    for (const ManifestShard* e : ends)
      if (fp.prefix(e->end.file) != e->corpus_prefix) {
        const int64_t now = static_cast<int64_t>(files_.size());
        throw std::runtime_error(
            "data build: --out '" + out + "' holds an interrupted build whose first " +
            std::to_string(e->end.file + 1) +
            " corpus files (in sorted order, up to where it stopped) are not the same now: a "
            "file among them added, removed, renamed or rewritten, or their permissions or "
            "links changed (the sources list " +
            std::to_string(there.corpus_files) + " files in the manifest, " + std::to_string(now) +
            " now); or it was interrupted under an earlier longnet version. Restore the files, "
            "or remove '" +
            out + "' to rebuild it");
      }
  }
  // Keep each split's shards up to the first one that does not verify.
  bool dropped = false;
  for (int s = 0; s < 2; ++s) {
    const ManifestSplit& from = s ? there.val : there.train;
    for (size_t i = 0; i < from.shards.size(); ++i) {
      const std::string why = shard_verify(out, from.shards[i], s == 1, static_cast<int64_t>(i),
                                           m_.token_bytes, m_.vocab_size);
      if (!why.empty()) {
        // A directory, FIFO or device in a shard's place cannot be written over: said before
        // the manifest is touched.
        const std::string at = out + "/" + from.shards[i].file;
        const PathKind kind = path_kind(at);
        if (kind != PathKind::kFile && kind != PathKind::kMissing)
          throw std::runtime_error("data build: '" + at + "' is " + path_kind_text(at) +
                                   ", where the dataset's shard belongs; remove it and rerun the "
                                   "build (it goes on from the shards before it)");
        std::cerr << "data build: "
                  << (why.find(from.shards[i].file) != std::string::npos
                          ? why
                          : "shard '" + at + "': " + why)
                  << "; rebuilding from it" << std::endl;
        dropped = true;
        break;
      }
      split(s).shards.push_back(from.shards[i]);
      split(s).tokens += from.shards[i].tokens;
      ++sum_.shards_kept;
    }
  }
  if (there.complete && !dropped) {
    m_ = there;
    sum_.up_to_date = true;
    return;
  }
  sum_.resumed = true;
  // Remove what the kept shards do not cover: temporary files, dropped shards.
  for (const auto& name : entries) {
    bool kept = name == kManifestName;
    for (int s = 0; s < 2; ++s)
      for (const auto& h : split(s).shards) kept = kept || h.file == name;
    if (!kept && ours(name)) ::unlink((out + "/" + name).c_str());
  }
}

void Builder::finish_shard(int s, const CorpusPosition& end) {
  ManifestShard entry = writer_[s]->finish(end);
  entry.corpus_prefix = fingerprint_->prefix(end.file);
  writer_[s].reset();
  split(s).tokens += entry.tokens;
  split(s).shards.push_back(std::move(entry));
  manifest_write(o_.out_dir, m_);
  ++sum_.shards_written;
  ++shards_this_run_;
  const auto& f = fault_injection();
  if (f.build_fail_after_shards >= 0 && shards_this_run_ >= f.build_fail_after_shards)
    throw std::runtime_error("data build: stopped after " + std::to_string(shards_this_run_) +
                             " shard(s) (--debug-fail-after-shards)");
  if (f.build_kill_after_shards >= 0 && shards_this_run_ >= f.build_kill_after_shards)
    kill_pending_ = SIGKILL;
  if (f.build_term_after_shards >= 0 && shards_this_run_ >= f.build_term_after_shards)
    kill_pending_ = SIGTERM;
}

void Builder::write_units(std::vector<TokenizeUnit>& units) {
  for (auto& u : units) {
    const int s = u.split;
    size_t i = 0;
    while (i < u.ids.size()) {
      if (!writer_[s])
        writer_[s] = std::make_unique<ShardWriter>(o_.out_dir, s == 1,
                                                   static_cast<int64_t>(split(s).shards.size()),
                                                   m_.token_bytes, m_.vocab_size);
      const size_t n = std::min<size_t>(
          u.ids.size() - i, static_cast<size_t>(m_.shard_tokens - writer_[s]->tokens()));
      writer_[s]->append(u.ids.data() + i, n);
      i += n;
      if (kill_pending_ == SIGKILL) {  // as a kill -9 would: the next shard's .tmp file stays
        writer_[s]->flush();
        std::fprintf(stderr, "data build: killed on purpose (--debug-kill-after-shards)\n");
        std::_Exit(137);
      }
      if (kill_pending_ == SIGTERM) {  // as `kill PID` would: the .tmp files go with the process
        writer_[s]->flush();
        std::fprintf(stderr, "data build: SIGTERM on purpose (--debug-term-after-shards)\n");
        std::raise(SIGTERM);
      }
      if (writer_[s]->tokens() == m_.shard_tokens) {
        CorpusPosition end = u.pos;
        end.token = u.pos.token + static_cast<int64_t>(i);
        finish_shard(s, end);
      }
    }
  }
}

void Builder::run() {
  const auto t0 = std::chrono::steady_clock::now();
  tok_ = tokenizer_open(o_.tokenizer);
  m_.tokenizer_kind = tok_->kind();
  m_.tokenizer_spec = tokenizer_spec_absolute(o_.tokenizer);  // read from anywhere later
  m_.tokenizer_hash = tok_->content_hash();
  if (const std::string loss = tokenizer_loss_example(*tok_); !loss.empty())
    log_info("data build: warning: tokenizer " + o_.tokenizer +
             " does not give text back as it was (" + loss +
             "): the dataset holds only what it keeps. `longnet tokenizer train` makes "
             "SentencePiece models that keep every byte");
  if (document_separator(*tok_).empty())
    log_info("data build: warning: tokenizer " + o_.tokenizer +
             " has no end-of-text id and encodes a newline as nothing, so the documents follow "
             "one another with no boundary between them; a SentencePiece model with </s> (as "
             "`longnet tokenizer train` makes) separates them");
  m_.vocab_size = tok_->vocab_size();
  m_.eot_id = tok_->eot_id() ? static_cast<int64_t>(*tok_->eot_id()) : -1;
  m_.token_bytes = m_.vocab_size <= 65536 ? 2 : 4;
  m_.shard_tokens = static_cast<int64_t>(
      std::max<uint64_t>(1, std::min<uint64_t>(o_.shard_bytes / m_.token_bytes, kMaxTokens)));
  m_.val_fraction = o_.val_fraction;
  m_.jsonl_field = o_.jsonl_field;
  for (const auto& s : o_.sources) m_.sources.push_back(path_absolute(s));
  CorpusOptions co;
  co.jsonl_field = o_.jsonl_field;
  co.skip_bad_lines = o_.skip_bad_lines;
  co.cut_by = tok_.get();
  CorpusSummary listing;
  files_ = corpus_files(o_.sources, co, &listing);
  m_.corpus_files = static_cast<int64_t>(files_.size());
  m_.corpus_fingerprint = CorpusFingerprint(files_, false).prefix(m_.corpus_files);
  fingerprint_ = std::make_unique<CorpusFingerprint>(files_, true);
  duplicate_files_ = listing.duplicate_files;
  // The manifest lists every shard (about 260 bytes each) and source: one the reader would refuse
  // is refused here, before any shard. A token takes at least one byte of text (compressed files
  // counted at their size on disk), so this bounds the shards from above.
  {
    uint64_t text_bytes = 0, source_bytes = 0;
    for (const auto& f : files_) text_bytes += f.bytes;
    for (const auto& src : m_.sources) source_bytes += src.size() + 8;
    const uint64_t shards = text_bytes / uint64_t(m_.shard_tokens) + 2;
    const double manifest = double(source_bytes) + 1024.0 + 260.0 * double(shards);
    if (manifest > double(kManifestMaxBytes))
      throw std::invalid_argument(
          "data build: up to " + std::to_string(shards) + " shards of " +
          std::to_string(m_.shard_tokens) + " tokens (--shard-mb) for " +
          std::to_string(text_bytes) + " bytes of sources, and " +
          std::to_string(m_.sources.size()) + " --source paths, would make a manifest of about " +
          std::to_string(uint64_t(manifest) >> 20) + " MiB, more than the " +
          std::to_string(kManifestMaxBytes >> 20) +
          " MiB a manifest may have: give a larger --shard-mb, or fewer --source paths (a "
          "directory instead of its files)");
  }

  prepare_out_dir();
  if (!sum_.up_to_date) write_all(co, listing);
  sum_.train_tokens = m_.train.tokens;
  sum_.val_tokens = m_.val.tokens;
  sum_.train_shards = static_cast<int64_t>(m_.train.shards.size());
  sum_.val_shards = static_cast<int64_t>(m_.val.shards.size());
  sum_.documents = m_.documents;
  sum_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o_.quiet) return;
  char rate[160];
  std::snprintf(rate, sizeof(rate), "%.1f MB of text in %.2f s (%.2f MB/s, %lld worker(s))",
                sum_.text_bytes / 1e6, sum_.seconds,
                sum_.seconds > 0 ? sum_.text_bytes / 1e6 / sum_.seconds : 0.0,
                static_cast<long long>(sum_.workers));
  std::ostringstream line;
  line << "data build: " << printable_text(o_.out_dir) << ": "
       << (sum_.up_to_date
               ? "already complete and intact; nothing to do"
               : std::string(sum_.resumed ? "resumed with " + std::to_string(sum_.shards_kept) +
                                                " shard(s) kept, "
                                          : "") +
                     rate)
       << "; " << m_.documents << " documents; training " << m_.train.tokens << " tokens in "
       << m_.train.shards.size() << " shard(s), validation " << m_.val.tokens << " tokens in "
       << m_.val.shards.size() << " shard(s); uint" << 8 * m_.token_bytes << " tokens of "
       << m_.tokenizer_spec << " (vocabulary " << m_.vocab_size << ")";
  if (listing.large_files > 0 || listing.links > 0 || listing.special_files > 0)
    line << "; skipped in directories: " << listing.large_files << " plain file(s) over "
         << (co.max_directory_file_bytes >> 20) << " MiB, " << listing.links << " link(s) and "
         << listing.special_files
         << " FIFO(s), socket(s) or device(s) (name a plain file as a --source to include it "
            "whatever its size)";
  if (listing.long_paths > 0)
    line << "; skipped " << listing.long_paths << " path(s) in directories nested past the "
         << PATH_MAX << " bytes a path may have";
  if (binary_files_ > 0 || empty_files_ > 0) {
    line << "; skipped as read: " << binary_files_ << " binary file(s) (a NUL byte) and "
         << empty_files_ << " empty one(s) (no text, once decompressed)";
    if (wide_text_files_ > 0)
      line << "; " << wide_text_files_
           << " of the binary ones look like UTF-16 or UTF-32 text: convert them to UTF-8 (iconv)";
  }
  if (bad_lines_ > 0)
    line << "; skipped " << bad_lines_
         << " malformed JSON line(s) (--skip-bad-lines; the first: " << first_bad_line_ << ")";
  if (listing.duplicate_files > 0)
    line << "; " << listing.duplicate_files
         << " file(s) reached twice (overlapping --source paths or hard links), read once";
  log_info(line.str());
}

void Builder::write_all(const CorpusOptions& co, const CorpusSummary& listing) {
  try {
    m_.complete = false;
    manifest_write(o_.out_dir, m_);

    // Where each split resumes, and the first of the two.
    CorpusPosition resume[2];
    for (int s = 0; s < 2; ++s)
      if (!split(s).shards.empty()) resume[s] = split(s).shards.back().end;
    const CorpusPosition start = before(resume[1], resume[0]) ? resume[1] : resume[0];
    const double f = m_.val_fraction;
    // The first unit of each split gets no separator.
    int64_t first_unit[2] = {-1, -1};
    for (int64_t k = 0; first_unit[0] < 0 || (first_unit[1] < 0 && f > 0); ++k)
      if (first_unit[dataset_unit_is_val(k, f)] < 0) first_unit[dataset_unit_is_val(k, f)] = k;
    std::vector<uint32_t> separator = document_separator(*tok_);

    sum_.workers =
        o_.workers > 0 ? o_.workers : std::max<int64_t>(1, std::thread::hardware_concurrency());
    TokenizePool pool(*tok_, sum_.workers, separator);
    const int64_t max_in_flight = 2 * sum_.workers + 2;
    uint64_t total_bytes = 0, done_bytes = 0;
    for (size_t i = static_cast<size_t>(start.file); i < files_.size(); ++i)
      total_bytes += files_[i].bytes;
    Progress progress(o_.progress, total_bytes);
    auto shards_now = [&] {
      return static_cast<int64_t>(m_.train.shards.size() + m_.val.shards.size());
    };
    auto tokens_now = [&] {
      return m_.train.tokens + m_.val.tokens + (writer_[0] ? writer_[0]->tokens() : 0) +
             (writer_[1] ? writer_[1]->tokens() : 0);
    };
    auto drain = [&](int64_t keep) {
      while (pool.in_flight() > keep) {
        TokenizeBatch b = pool.take();
        write_units(b.units);
      }
    };
    int64_t index = start.index, docs = start.doc;
    const bool lossy_utf8 = tok_->kind() == "sentencepiece";
    TokenizeBatch batch;
    size_t batch_bytes = 0;
    // A malformed input ends the build, but only after everything read before it is written:
    // the shards that end before that file are kept for a rerun (once the input is fixed).
    std::exception_ptr read_error;
    int64_t error_file = -1;
    auto next = [&](CorpusReader& reader, Document& doc) {
      try {
        return reader.next(doc);
      } catch (const std::exception&) {
        read_error = std::current_exception();
        return false;
      }
    };
    for (int64_t fi = start.file; fi < static_cast<int64_t>(files_.size()) && !read_error; ++fi) {
      CorpusReader reader(std::vector<CorpusFile>{files_[fi]}, co);
      Document doc;
      int64_t unit = 0;
      while (next(reader, doc)) {
        if (lossy_utf8) {
          const size_t bad = utf8_invalid_bytes(doc.text);
          if (bad > 0 && invalid_utf8_bytes_ == 0) first_invalid_utf8_file_ = files_[fi].path;
          invalid_utf8_bytes_ += int64_t(bad);
        }
        for (size_t off = 0; off < doc.text.size(); ++unit) {
          const size_t len =
              tok_->piece_length(std::string_view(doc.text).substr(off), kTextPieceBytes);
          const bool continued = doc.continued || off > 0;
          const CorpusPosition pos{fi, unit, index, docs, 0};
          const std::string_view piece(doc.text.data() + off, len);
          off += len;
          if (fi == start.file && unit < start.unit) continue;  // before the resume point
          ++index;
          if (!continued) ++docs;
          const int s = dataset_unit_is_val(pos.index, f) ? 1 : 0;
          if (before(pos, resume[s])) continue;  // this split has it already
          TokenizeUnit u;
          u.split = s;
          u.separator = pos.index != first_unit[s] &&
                        (!continued || dataset_unit_is_val(pos.index - 1, f) != (s == 1));
          u.after_cut = continued;
          u.pos = pos;
          if (!before(resume[s], pos)) u.pos.token = resume[s].token;  // the resume unit
          u.text.assign(piece);
          sum_.text_bytes += len;
          batch_bytes += len;
          batch.units.push_back(std::move(u));
          if (batch_bytes >= kBatchBytes || batch.units.size() >= kBatchUnits) {
            pool.submit(std::move(batch));
            batch = TokenizeBatch();
            batch_bytes = 0;
            drain(max_in_flight);
          }
        }
        // (by the file's bytes on disk: a compressed file's text is larger than the file)
        progress.update(done_bytes + std::min<uint64_t>(reader.file_bytes_read(), files_[fi].bytes),
                        sum_.text_bytes, tokens_now(), shards_now());
      }
      if (read_error) error_file = fi;
      done_bytes += files_[fi].bytes;
      binary_files_ += reader.summary().binary_files;
      wide_text_files_ += reader.summary().wide_text_files;
      empty_files_ += reader.summary().empty_files;
      if (bad_lines_ == 0) first_bad_line_ = reader.summary().first_bad_line;
      bad_lines_ += reader.summary().bad_lines;
    }
    if (!batch.units.empty()) pool.submit(std::move(batch));
    drain(0);
    if (read_error) {
      // Shards that hold text of the failing file (or end at its start) are tied to it as it
      // is now: fixing it would make a rerun refuse them. They go, so that the rerun rebuilds
      // them from the fixed file.
      std::vector<std::string> dropped;  // (the manifest stops naming them before they go)
      for (int s = 0; s < 2; ++s)
        while (!split(s).shards.empty() && split(s).shards.back().end.file >= error_file) {
          dropped.push_back(split(s).shards.back().file);
          split(s).tokens -= split(s).shards.back().tokens;
          split(s).shards.pop_back();
        }
      if (!dropped.empty()) {
        manifest_write(o_.out_dir, m_);
        for (const auto& name : dropped) ::unlink((o_.out_dir + "/" + name).c_str());
        log_info("data build: " + std::to_string(dropped.size()) + " shard(s) holding text of '" +
                 printable_text(files_[size_t(error_file)].path) + "' removed; " +
                 std::to_string(m_.train.shards.size() + m_.val.shards.size()) +
                 " kept. Once the file is fixed, rerun the same command: it goes on from there");
      }
      std::rethrow_exception(read_error);
    }
    const CorpusPosition past_end{static_cast<int64_t>(files_.size()), 0, index, docs, 0};
    for (int s = 0; s < 2; ++s)
      if (writer_[s] && writer_[s]->tokens() > 0) finish_shard(s, past_end);
    if (kill_pending_) std::_Exit(137);
    progress.update(done_bytes, sum_.text_bytes, tokens_now(), shards_now(), true);
    progress.end();
    if (m_.train.tokens == 0) {
      // Nothing can train on it, and a rerun with other flags would be refused as a dataset of
      // other inputs: what this build wrote goes.
      for (const auto& sh : m_.val.shards) ::unlink((o_.out_dir + "/" + sh.file).c_str());
      ::unlink((o_.out_dir + "/" + kManifestName).c_str());
      if (created_dir_) ::rmdir(o_.out_dir.c_str());
      throw std::runtime_error(
          "data build: the training split is empty: the sources gave " + std::to_string(docs) +
          " document(s) in " + std::to_string(index) + " unit(s) of at most 1 MiB" +
          (m_.val_fraction > 0 && index > 0 ? ", and unit 0 goes to validation" : "") +
          " (skipped: " + std::to_string(binary_files_) + " binary files (a NUL byte" +
          (wide_text_files_ > 0 ? "; " + std::to_string(wide_text_files_) +
                                      " of them UTF-16 or UTF-32 text: convert to UTF-8"
                                : std::string()) +
          "), " + std::to_string(empty_files_) + " empty files (no text, once decompressed), " +
          std::to_string(listing.large_files) + " plain files over 16 MiB, " +
          std::to_string(listing.links) + " links, " + std::to_string(listing.special_files) +
          " FIFOs, sockets or devices, " +
          (listing.long_paths > 0 ? std::to_string(listing.long_paths) + " paths past PATH_MAX, "
                                  : std::string()) +
          std::to_string(listing.duplicate_files) + " files reached twice" +
          (bad_lines_ > 0
               ? ", " + std::to_string(bad_lines_) +
                     " malformed JSON line(s) with --skip-bad-lines, the first: " + first_bad_line_
               : std::string()) +
          "); give more text (directories or files of text, .jsonl, .gz, "
          ".zst)" +
          (m_.val_fraction > 0 ? " or --val-fraction 0 (and train with eval.interval: 0)" : ""));
    }
    // The split is by units of up to 1 MiB and unit 0 always goes to validation: few, uneven
    // units can give validation far more than its fraction. Said, not changed (the split is part
    // of what a resumed build must reproduce).
    const double val_share =
        double(m_.val.tokens) / double(std::max<int64_t>(1, m_.train.tokens + m_.val.tokens));
    const bool more =
        val_share > std::max(0.05, std::min(2 * m_.val_fraction, m_.val_fraction + 0.2));
    const bool less = val_share < std::max(m_.val_fraction / 2, m_.val_fraction - 0.2);
    if (m_.val_fraction > 0 && (more || less)) {
      std::ostringstream w;
      w << "data build: warning: the validation split holds " << std::lround(100 * val_share)
        << "% of the tokens (" << m_.val.tokens << "), " << (more ? "more" : "less")
        << " than --val-fraction " << m_.val_fraction
        << " asks: the split is by units (documents, or 1 MiB pieces of longer ones; the first "
           "and about every 1/fraction-th go to validation), so few units ("
        << index << " here) or units of uneven sizes give another share"
        << (more ? "; give more documents, or --val-fraction 0" : "");
      log_info(w.str());
    }
    if (invalid_utf8_bytes_ > 0)
      log_info("data build: warning: " + std::to_string(invalid_utf8_bytes_) +
               " byte(s) of the sources are not UTF-8 (the first in " + "'" +
               printable_text(first_invalid_utf8_file_) + "'); the SentencePiece tokenizer " +
               o_.tokenizer +
               " reads each as U+FFFD, so the dataset does not hold them exactly. Convert those "
               "files to UTF-8 (iconv -f latin1 -t utf-8), or use a byte-exact tokenizer "
               "(bytes, or tiktoken)");
    m_.documents = docs;
    m_.units = index;
    m_.complete = true;
    manifest_write(o_.out_dir, m_);
  } catch (...) {
    // Temporary files go (the writers' destructors); complete shards stay for a rerun. A
    // directory this run found empty (or created) and filled with nothing complete is left as
    // it was: its manifest would tie a rerun to these flags (a --jsonl-field fixed after the
    // error, say) with nothing to keep.
    writer_[0].reset();
    writer_[1].reset();
    if (started_empty_ && m_.train.shards.empty() && m_.val.shards.empty()) {
      ::unlink((o_.out_dir + "/" + kManifestName).c_str());
      if (created_dir_) ::rmdir(o_.out_dir.c_str());
    }
    throw;
  }
}

}  // namespace

bool dataset_unit_is_val(int64_t k, double f) {
  if (!(f > 0)) return false;
  if (k == 0) return true;
  return std::floor(double(k) * f) > std::floor(double(k - 1) * f);
}

DatasetBuildSummary dataset_build(const DatasetBuildOptions& o) {
  if (o.sources.empty())
    throw std::invalid_argument(
        "data build: give at least one --source (a directory, or a text, "
        ".jsonl, .gz or .zst file)");
  if (o.out_dir.empty()) throw std::invalid_argument("data build: --out DIR is required");
  // The dataset never lands where this build or a later one would read it as text, and never
  // holds a source that a resumed build could remove.
  for (const auto& src : o.sources)
    if (path_inside(o.out_dir, src) || path_inside(src, o.out_dir))
      throw std::invalid_argument("data build: --out '" + o.out_dir + "' and --source '" + src +
                                  "' overlap (one is, or lies inside, the other): the shards "
                                  "would be read back as text by the next build; write the "
                                  "dataset elsewhere (e.g. data/NAME)");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1))
    throw std::invalid_argument("data build: --val-fraction " + std::to_string(o.val_fraction) +
                                " must be in [0, 1) (e.g. 0.005)");
  if (o.shard_bytes < 256)
    throw std::invalid_argument(
        "data build: --shard-mb gives " + std::to_string(o.shard_bytes) +
        " bytes per shard; use at least 256 bytes (--shard-mb 0.000245 or more; "
        "e.g. --shard-mb 1024)");
  if (o.workers < 0 || o.workers > 4096)
    throw std::invalid_argument("data build: --workers " + std::to_string(o.workers) +
                                " must be in [0, 4096] (0: one per core)");
  DatasetBuildSummary sum;
  Builder(o, sum).run();
  return sum;
}

}  // namespace longnet
