// `longnet generate`: text from a trained LongNetLM. The prompt (any length, longer than the
// training context too) is prefilled in chunks, then one token per step from the dilated KV cache
// (core/incremental_lm.h), sampled greedily or with temperature / top-k / top-p, until the
// end-of-text token (when the tokenizer has one; byte-level models have none) or
// --max-new-tokens. One prompt streams its text to stdout as it is produced; --prompts-file's
// (one per line) run as one batch and print in order when done (or when a stop signal ends the
// generation early).
//
// Under mpirun the prefill is split over the ranks (parallel/parallel_prefill.h: each rank runs
// its share of the prompt's blocks of the largest segment length, then the state is broadcast),
// for prompts whose activations do not fit one device; rank 0 then generates and prints alone.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/cli/stdout_stream.h"
#include "longnet/core/device_memory.h"
#include "longnet/core/dtype_names.h"
#include "longnet/core/errors.h"
#include "longnet/core/file_util.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/core/sampling.h"
#include "longnet/core/text.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/parallel_prefill.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/train/dataset_check.h"
#include "longnet/train/tokenizer.h"

namespace longnet {
namespace {

// Prompt files are read whole: a regular file of at most this size (a FIFO, device or directory
// is refused before it is opened for reading; /dev/zero would never end).
constexpr uint64_t kPromptFileMaxBytes = uint64_t{1} << 30;
constexpr const char* kUtf8Bom = "\xEF\xBB\xBF";  // a byte-order mark some editors write first

// A file's text, without a UTF-8 byte-order mark at its start (an editor's mark, not text).
std::string file_text(const std::string& path, const std::string& flag) {
  std::string text = file_read_bounded(path, "longnet generate " + flag, kPromptFileMaxBytes);
  if (text.rfind(kUtf8Bom, 0) == 0) text.erase(0, 3);
  return text;
}

// The prompts the flags give: exactly one of --prompt, --prompt-file, --prompts-file; *lines gets
// each prompt's line in the --prompts-file (1-based; blank lines are skipped), else 1.
std::vector<std::string> prompts_from(const CliFlags& f, std::vector<int64_t>* lines_of) {
  const int given =
      int(f.given("prompt")) + int(f.given("prompt-file")) + int(f.given("prompts-file"));
  if (given != 1)
    throw std::invalid_argument(
        "generate: give exactly one of --prompt TEXT, --prompt-file PATH (one prompt, any "
        "length) and --prompts-file PATH (one prompt per line, run as a batch)");
  *lines_of = {1};
  if (f.given("prompt")) return {f.get("prompt")};
  if (f.given("prompt-file")) return {file_text(f.get("prompt-file"), "--prompt-file")};
  std::vector<std::string> out;
  lines_of->clear();
  const std::string text = file_text(f.get("prompts-file"), "--prompts-file");
  // A line ends at LF, CRLF or a lone CR (files from old Mac editors).
  int64_t n = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find_first_of("\r\n", start);
    if (end == std::string::npos) end = text.size();
    ++n;
    if (end > start) {
      out.push_back(text.substr(start, end - start));
      lines_of->push_back(n);
    }
    start = end + (text.compare(end, 2, "\r\n") == 0 ? 2 : 1);
  }
  if (out.empty())
    throw std::invalid_argument("generate: --prompts-file " + f.get("prompts-file") +
                                " has no non-empty line");
  return out;
}

// fn() (reading or tokenizing the prompts), with memory running out there said to be the
// prompts' (their size), not the model's.
template <typename F>
auto prompts_memory_guard(const CliFlags& f, F&& fn) {
  auto refuse = [&](const std::string& why) {
    const char* flag = f.given("prompts-file") ? "prompts-file" : "prompt-file";
    std::string source = "the prompt (--prompt)";
    if (f.given(flag)) {
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(f.get(flag), ec);
      source = std::string("--") + flag + " '" + f.get(flag) + "'" +
               (ec ? std::string() : " (" + std::to_string(bytes) + " bytes)");
    }
    return std::runtime_error("generate: out of host memory while reading and tokenizing " +
                              source + " (" + why +
                              "): its text and its tokens are held whole; give fewer or shorter "
                              "prompts (split the file and run it in parts)");
  };
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    throw refuse("std::bad_alloc");
  } catch (const c10::Error& e) {
    // (LibTorch's own words would read to the error's last handler as the model's memory)
    if (!says_out_of_memory(e.what_without_backtrace())) throw;
    throw refuse("LibTorch's allocator");
  }
}

// Rank 0's token lists on every rank (a count, then each list's length and ids, as uint32).
std::vector<std::vector<uint32_t>> token_lists_from_rank0(
    ProcessGrid& grid, const std::vector<std::vector<uint32_t>>& lists) {
  std::vector<uint32_t> flat;
  if (grid.world_rank == 0) {
    flat.push_back(static_cast<uint32_t>(lists.size()));
    for (const auto& x : lists) {
      TORCH_CHECK(x.size() < (uint64_t{1} << 32), "generate: a prompt of ", x.size(), " tokens");
      flat.push_back(static_cast<uint32_t>(x.size()));
      flat.insert(flat.end(), x.begin(), x.end());
    }
  }
  const std::string blob = world_broadcast(
      grid, std::string(reinterpret_cast<const char*>(flat.data()), flat.size() * 4), 0);
  flat.resize(blob.size() / 4);
  std::memcpy(flat.data(), blob.data(), flat.size() * 4);
  std::vector<std::vector<uint32_t>> out(flat.at(0));
  size_t i = 1;
  for (auto& x : out) {
    const size_t n = flat.at(i++);
    x.assign(flat.begin() + i, flat.begin() + i + n);
    i += n;
  }
  return out;
}

// The error for KV caches of B sequences that do not fit, with their size.
std::runtime_error caches_too_big(const LongNetLM& model, int64_t B, const c10::Device& device) {
  const int64_t element = model->token_embedding->weight.element_size();
  const int64_t per_prompt = IncrementalLM::cache_bytes_for(model->options(), 1, element);
  const int64_t total = IncrementalLM::cache_bytes_for(model->options(), B, element);
  std::ostringstream m;
  m << "generate: the KV caches of " << B << " prompt(s) need "
    << (total < 0 ? std::string("more than 2^63") : std::to_string(double(total) / (1 << 30)))
    << " GiB (" << double(per_prompt) / (1 << 20) << " MiB per prompt) on " << device
    << ", more than it can allocate: run fewer prompts at a time (lines of --prompts-file)";
  return std::runtime_error(m.str());
}

// The prompts (by index) in groups of similar lengths, each group from shortest to longest: a
// group padded to its longest prompt runs at most twice the tokens its prompts hold (or prompts
// of at most kGroupMinTokens, whose padding costs less than another forward).
constexpr int64_t kGroupMinTokens = 64;
std::vector<std::vector<int64_t>> prompt_groups(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> order(lengths.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[size_t(a)] < lengths[size_t(b)]; });
  std::vector<std::vector<int64_t>> groups;
  for (const int64_t i : order) {
    const int64_t n = lengths[size_t(i)];
    if (groups.empty() || (n > kGroupMinTokens && n > 2 * lengths[size_t(groups.back().front())]))
      groups.emplace_back();
    groups.back().push_back(i);
  }
  return groups;
}

// The generator of B sequences; a batch whose caches cannot be allocated is refused with their
// size.
std::unique_ptr<IncrementalLM> generator_create(const LongNetLM& model, int64_t B,
                                                const IncrementalOptions& io) {
  try {
    return std::make_unique<IncrementalLM>(model, B, io);
  } catch (const c10::Error& e) {
    if (!says_out_of_memory(e.what_without_backtrace())) throw;
    throw caches_too_big(model, B, model->token_embedding->weight.device());
  }
}

}  // namespace

int cmd_generate(const Args& args) {
  CliFlags f("generate");
  flags_generate(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  // (Rank 0 reads the prompt file and every rank prefills its tokens: a prompt file that
  // differs between hosts is not an error. A --prompt text is on every rank's command line, and
  // another one there is a mistake. The model's files may lie at other paths on other hosts:
  // what they hold is compared once loaded.)
  flags_agree_across_ranks(f, {"prompt-file", "prompts-file", "checkpoint", "config"});
  f.no_positional();
  mpi_ensure_initialized();

  SamplingOptions s;
  s.greedy = f.get_switch("greedy");
  for (const char* flag : {"temperature", "top-k", "top-p"})
    if (s.greedy && f.given(flag))
      throw std::invalid_argument(
          std::string("generate: --greedy takes the most likely token; --") + flag +
          " applies to sampling only: drop one of the two");
  const bool zero_temperature = f.given("temperature") && f.get_double("temperature") == 0;
  for (const char* flag : {"top-k", "top-p"})
    if (zero_temperature && f.given(flag))
      throw std::invalid_argument(std::string("generate: --temperature 0 takes the most likely "
                                              "token; --") +
                                  flag + " applies to sampling only: drop one of the two");
  // --seed seeds the sampling (and --random-init's parameters): with neither it would be
  // ignored, and a user comparing seeds would see the same text and not know why.
  if ((s.greedy || zero_temperature) && f.given("seed") && !f.get_switch("random-init"))
    throw std::invalid_argument(
        std::string("generate: ") + (s.greedy ? "--greedy" : "--temperature 0") +
        " takes the most likely token, so --seed (the sampling's seed) would change nothing: "
        "drop --seed, or sample (--temperature T > 0)");
  s.temperature = f.get_double("temperature");
  s.top_k = f.get_int("top-k");
  s.top_p = f.get_double("top-p");
  sampling_options_check(s);
  const int64_t max_new = f.get_int("max-new-tokens");
  if (max_new < 0) throw std::invalid_argument("generate: --max-new-tokens must be >= 0");
  // Rank 0 reads the prompts (a file need exist on its host only); the others take its tokens.
  std::vector<int64_t> prompt_lines;
  const auto prompts = prompts_memory_guard(f, [&] {
    return mpi_world_rank() == 0 ? prompts_from(f, &prompt_lines) : std::vector<std::string>{};
  });
  const bool from_file = f.given("prompts-file");

  const auto requested = device_auto(f.get("device"));
  const auto dtype = dtype_auto(f.get("dtype"), requested);
  auto grid = process_grid_create(1, mpi_world_size(), requested.type());
  const auto device = grid->device;  // this rank's GPU under mpirun
  const int64_t seed = f.get_int("seed");
  auto loaded = model_load(model_flags_get(f, device, dtype, seed));
  model_agree_across_ranks(*grid, loaded.model, loaded.source);
  const int64_t V = loaded.config.model.vocab_size;
  // The tokenizer: the one the model's data was made with (the prompt's ids must mean what they
  // meant in training), given or taken from the model's config.
  const RecordedTokenizer recorded = model_tokenizer(loaded);
  std::string spec = f.get("tokenizer");
  if (spec.empty() && recorded.spec.empty() && V != 256)
    throw std::invalid_argument(
        "generate: " + loaded.source + " does not say which tokenizer made its training data " +
        "(its data.path is not here, or holds llm.c shards) and its vocabulary is " +
        std::to_string(V) +
        ", not bytes: give --tokenizer KIND:PATH (the one it was trained with)");
  if (spec.empty()) spec = recorded.spec.empty() ? "bytes" : recorded.spec;
  std::unique_ptr<Tokenizer> tokenizer;
  try {
    tokenizer = tokenizer_open(spec);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) +
                             (f.get("tokenizer").empty()
                                  ? " (the tokenizer the model was trained with, from its config; "
                                    "give --tokenizer KIND:PATH with a copy of that file)"
                                  : ""));
  }
  // By content: also when the name is the recorded one (its file may have been replaced since,
  // e.g. by another `tokenizer train --out` onto it).
  if (!recorded.spec.empty() && (spec != recorded.spec || !recorded.hash.empty())) {
    const auto same = tokenizers_same({spec, tokenizer->content_hash()}, recorded);
    if (same && !*same && spec == recorded.spec)
      throw std::invalid_argument(
          "generate: tokenizer " + spec + " is not the file " + loaded.source +
          " was trained with: its contents changed since the training data was made (recorded "
          "hash " +
          recorded.hash +
          "); its ids would mean other text: restore that file (or give a copy "
          "of it with --tokenizer KIND:PATH)");
    if (same && !*same)
      throw std::invalid_argument(
          "generate: --tokenizer " + spec + " is not the tokenizer " + loaded.source +
          " was trained with (" + recorded.spec +
          "); its ids would mean other text: give that one" +
          (recorded.spec.find(':') != std::string::npos && recorded.spec.rfind("bytes", 0) != 0
               ? std::string(" (or a copy of its file)")
               : std::string()) +
          ", or leave --tokenizer out");
    // On stderr: stdout holds the text.
    if (!same && spec != recorded.spec && mpi_world_rank() == 0)
      std::cerr << "generate: warning: cannot check --tokenizer " << spec << " against the model's "
                << recorded.spec << " (that file is not here); using " << spec << " as given"
                << std::endl;
  }
  const int64_t tok_vocab = int64_t(tokenizer->vocab_size());
  if (tok_vocab > V)
    throw std::invalid_argument("generate: tokenizer " + tokenizer->spec() + " has " +
                                std::to_string(tok_vocab) + " tokens, the model's vocabulary " +
                                std::to_string(V));
  // Ids that are no token of the tokenizer are never sampled: past its vocabulary (a model's
  // may be padded) or gaps in it (cl100k has ids that name nothing, as 100256).
  std::vector<int64_t> banned_ids;
  for (uint32_t id = 0; id < uint32_t(tok_vocab); ++id) try {
      (void)tokenizer->decode(&id, 1);
    } catch (const std::out_of_range&) {
      banned_ids.push_back(id);
    }
  at::Tensor banned;
  if (!banned_ids.empty() || tok_vocab < V) {
    banned = at::zeros({V}, at::kBool);
    banned.narrow(0, tok_vocab, V - tok_vocab).fill_(true);
    if (!banned_ids.empty()) banned.index_fill_(0, at::tensor(banned_ids, at::kLong), true);
    banned = banned.to(device);
  }
  // A row of logits that is not finite (finite parameters whose activations overflow, as
  // float16's range allows) samples nothing: its id comes back as -1 (refused on the host, with
  // no extra synchronisation; rows already finished are not read), and the row is sampled as
  // zeros meanwhile (NaN would stop CUDA's multinomial with a device assert).
  auto choose = [&](const at::Tensor& logits) {
    const auto bad = at::isfinite(logits).all(-1).logical_not_();  // (B)
    auto clean = logits.masked_fill(bad.unsqueeze(-1), 0);
    if (banned.defined()) clean.masked_fill_(banned, -std::numeric_limits<double>::infinity());
    return sample_next(clean, s).masked_fill_(bad, -1);
  };
  auto refuse_not_finite = [&](int64_t b) {
    throw std::runtime_error(
        "generate: the model's logits for " +
        (from_file ? "line " + std::to_string(prompt_lines[b]) + " of --prompts-file"
                   : std::string("the prompt")) +
        " are NaN or infinite: its parameters are finite, so its activations overflow in " +
        dtype_name(dtype) + "; " + activation_overflow_advice(dtype));
  };
  std::vector<std::vector<uint32_t>> ids;
  size_t invalid_utf8 = 0;  // (SentencePiece reads each such byte as U+FFFD)
  prompts_memory_guard(f, [&] {
    for (size_t b = 0; b < prompts.size(); ++b) {
      if (tokenizer->kind() == "sentencepiece") invalid_utf8 += utf8_invalid_bytes(prompts[b]);
      ids.push_back(tokenizer->encode(prompts[b]));
      // An empty prompt starts a document: from the end-of-text token that ends the one before.
      if (ids.back().empty() && tokenizer->eot_id()) {
        ids.back() = {*tokenizer->eot_id()};
        std::cerr << "generate: "
                  << (from_file ? "line " + std::to_string(prompt_lines[b]) + " of --prompts-file"
                                : std::string("the prompt"))
                  << (prompts[b].empty() ? " is empty" : " encodes to no tokens")
                  << ": generating from the end-of-text token (the start of a document)"
                  << std::endl;
      }
      if (ids.back().empty())
        throw std::invalid_argument(
            "generate: " +
            (from_file ? "line " + std::to_string(prompt_lines[b]) + " of --prompts-file '" +
                             f.get("prompts-file") + "' is"
             : f.given("prompt-file") ? "--prompt-file '" + f.get("prompt-file") + "' is"
                                      : std::string("the prompt (--prompt) is")) +
            " empty, and tokenizer " + tokenizer->spec() +
            " has no end-of-text token to start from; generation starts from at least one token "
            "(e.g. --prompt $'\\n')");
    }
    if (invalid_utf8 > 0)  // (on stderr: stdout holds the text)
      std::cerr << "generate: warning: " << invalid_utf8
                << " byte(s) of the prompt text are not UTF-8; the SentencePiece tokenizer reads "
                   "each as U+FFFD, so the model sees that character in their place (convert the "
                   "text to UTF-8)"
                << std::endl;
    // Under mpirun every rank prefills rank 0's tokens: files read on other hosts may differ.
    if (grid->world_size > 1) ids = token_lists_from_rank0(*grid, ids);
  });
  const int64_t B = int64_t(ids.size());
  std::vector<int64_t> lengths;
  int64_t prompt_tokens = 0;
  for (const auto& x : ids) {
    lengths.push_back(int64_t(x.size()));
    prompt_tokens += int64_t(x.size());
  }
  const int64_t P = *std::max_element(lengths.begin(), lengths.end());
  // Prompts of very different lengths prefill in groups of similar lengths (each padded to its
  // longest only), then continue as one batch; the same on every rank (the same ids).
  const auto groups = prompt_groups(lengths);
  int64_t padded_tokens = 0;
  for (const auto& g : groups) padded_tokens += int64_t(g.size()) * lengths[size_t(g.back())];

  at::manual_seed(static_cast<uint64_t>(seed));
  step_flags_note(f, device);
  IncrementalOptions io = step_flags_get(f);
  io.prefill_chunk = f.get_int("prefill-chunk");
  // Checked before anything is allocated (the padded ids of a group may not fit where the caches
  // don't): the caches, and each group's prefill.
  if (IncrementalLM::cache_bytes_for(loaded.model->options(), B,
                                     loaded.model->token_embedding->weight.element_size()) < 0)
    throw caches_too_big(loaded.model, B, device);
  for (const auto& g : groups)
    generation_memory_check(loaded.model, B, int64_t(g.size()), lengths[size_t(g.back())],
                            io.prefill_chunk, device, "generate");
  auto inc_ptr = generator_create(loaded.model, B, io);
  IncrementalLM& inc = *inc_ptr;
  const auto eot = tokenizer->eot_id();
  // One prompt streams; --prompts-file prints its texts with their line headers at the end, also
  // when it holds one line (one format for scripts that read it).
  const bool stream = !from_file;
  TextStream streamed(*tokenizer, ids.empty() ? std::vector<uint32_t>{} : ids[0]);
  std::vector<std::vector<uint32_t>> out(B);
  std::vector<bool> done(B, false);

  // A stop signal (which mpirun forwards to every rank) is rank 0's to act on: the other ranks
  // take it from now on and do not die of it (rank 0, during its prefill, still does).
  if (grid->world_rank != 0) stop_signals_catch();
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor logits;
  for (const auto& g : groups) {
    const int64_t Pg = lengths[size_t(g.back())];  // (the group's longest)
    auto tokens = at::zeros({int64_t(g.size()), Pg}, at::kLong);
    int64_t* t = tokens.data_ptr<int64_t>();
    std::vector<int64_t> group_lengths;
    for (size_t i = 0; i < g.size(); ++i) {
      const auto& x = ids[size_t(g[i])];
      std::copy(x.begin(), x.end(), t + int64_t(i) * Pg);
      group_lengths.push_back(int64_t(x.size()));
    }
    auto group_logits = prefill_parallel(inc, tokens, group_lengths, *grid->world, g);
    if (!logits.defined()) logits = at::empty({B, group_logits.size(1)}, group_logits.options());
    logits.index_copy_(0, at::tensor(g, at::kLong).to(logits.device()), group_logits);
  }
  if (grid->world_rank != 0) return 0;  // rank 0 generates from the whole prefill's state
  auto next = choose(logits);
  auto host = next.cpu();  // the one host synchronisation per step
  // (-1 marks a row of non-finite logits for the host check only; out of place: on the CPU
  // `host` is `next` itself)
  next = next.clamp_min(0);
  auto t1 = std::chrono::steady_clock::now();
  // A stop signal (Ctrl-C, `kill`, a closed terminal) ends generation after the current token:
  // the text so far is printed as at the end (the streamed line's newline, a batch's texts),
  // --stats too, and the status is 128 + the signal's number, as if it had ended the process.
  // (A signal during the prefill ends the process at once: nothing has been printed yet.)
  stop_signals_catch();
  if (!stream)
    std::cerr << "generate: " << B << " prompts prefilled in "
              << std::chrono::duration<double>(t1 - t0).count() << " s; generating up to "
              << max_new << " tokens each; the texts print when all are done (Ctrl-C prints "
              << "them as they are)" << std::endl;
  int64_t produced = 0;
  for (int64_t i = 0; i < max_new; ++i) {
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t id64 = host[b].item<int64_t>();
      if (id64 < 0) {
        if (stream) stdout_write(streamed.flush() + "\n");
        refuse_not_finite(b);
      }
      const auto id = static_cast<uint32_t>(id64);
      if (eot && id == *eot) {
        done[b] = true;
        continue;
      }
      out[b].push_back(id);
      // The reader may go (`| head`): stop generating, status 0.
      if (stream && !stdout_write(streamed.add(id))) return stdout_closed_note("generate"), 0;
    }
    produced += 1;
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; }) || i + 1 == max_new ||
        stop_signal_caught() != 0)
      break;
    next = choose(inc.step(next));
    host = next.cpu();
    // A finished row's next id is never read, but it is fed to the model: never -1.
    next = next.clamp_min(0);
  }
  auto t2 = std::chrono::steady_clock::now();
  const int stopped_by = stop_signal_caught();
  std::string tail = stream ? streamed.flush() + "\n" : "";
  for (int64_t b = 0; b < B && !stream; ++b) {
    TextStream text(*tokenizer, ids[b]);  // (after the prompt: a leading space is kept)
    tail += "=== line " + std::to_string(prompt_lines[b]) + " ===\n" + prompts[b];
    for (const uint32_t id : out[b]) tail += text.add(id);
    tail += text.flush() + "\n";
  }
  if (!stdout_write(tail)) return stdout_closed_note("generate"), 0;
  if (f.get_switch("stats")) {
    const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
    const double gen_s = std::chrono::duration<double>(t2 - t1).count();
    std::ostringstream m;
    m << "generate: " << loaded.source << "; prompts " << B << " x up to " << P << " tokens ("
      << prompt_tokens << " in all), prefill " << prefill_s << " s ("
      << double(prompt_tokens) / prefill_s << " prompt tokens/s"
      << (prompt_tokens < padded_tokens ? ", padding not counted" : "")
      << (groups.size() > 1 ? ", in " + std::to_string(groups.size()) + " groups of similar lengths"
                            : std::string())
      << ", " << grid->world_size << " rank(s)); " << produced
      << " token(s) per prompt, the first from the prefill, then "
      << std::max<int64_t>(produced - 1, 0) << " decode step(s) in " << gen_s << " s ("
      << (gen_s > 0 && produced > 1 ? double(B * (produced - 1)) / gen_s : 0.0)
      << " tokens/s, batch " << B << "); device " << device << ", " << dtype_name(dtype) << "\n";
    std::cerr << m.str();
  }
  if (stopped_by != 0) {
    std::cerr << "generate: stopped by signal " << stopped_by << " (" << ::strsignal(stopped_by)
              << ") after " << produced << " generation step(s); the text above is all that "
              << "was generated\n";
    return 128 + stopped_by;
  }
  return 0;
}

}  // namespace longnet
