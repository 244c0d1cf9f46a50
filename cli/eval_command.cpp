// `longnet eval`: validation loss of a trained LongNetLM against context length
// (train/context_eval.h): every context length scores the same final tokens of windows that end
// at the same positions. Under mpirun every window is split over the ranks (sequence-parallel
// attention), for contexts one device cannot hold. Writes JSON and, with --plot, a PNG, SVG or
// PDF through launch/plot_eval.py.
#include <ATen/ATen.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "longnet/cli/bench_common.h"
#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/core/device_memory.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/core/file_util.h"
#include "longnet/core/int_math.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_layout.h"
#include "longnet/parallel/sequence_parallel_attention.h"
#include "longnet/train/context_eval.h"
#include "longnet/train/crc32.h"
#include "longnet/train/dataset_check.h"
#include "longnet/train/fault_injection.h"

#ifndef LONGNET_PYTHON_PATH
#define LONGNET_PYTHON_PATH "python3"
#endif
#ifndef LONGNET_SOURCE_DIR
#define LONGNET_SOURCE_DIR "."
#endif

namespace longnet {
namespace {

// Throws unless --plot names a file matplotlib writes by its extension: savefig adds ".png" to
// a path without one, so only these extensions write exactly the path given.
void plot_path_check(const std::string& path) {
  const auto slash = path.rfind('/');
  const auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos || (slash != std::string::npos && dot < slash)
                        ? ""
                        : path.substr(dot);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext != ".png" && ext != ".svg" && ext != ".pdf")
    throw std::invalid_argument("longnet eval --plot '" + path +
                                "': name a .png, .svg or .pdf file, the format follows the "
                                "extension (got " +
                                (ext.empty() ? std::string("none") : "'" + ext + "'") + ")");
  // ".png" alone is a hidden file without an extension to matplotlib, which would add one.
  if (path.size() - (slash == std::string::npos ? 0 : slash + 1) <= ext.size())
    throw std::invalid_argument("longnet eval --plot '" + path +
                                "': the file name is only an extension; give a name before it "
                                "(e.g. eval.png)");
  output_file_prepare(path, "longnet eval --plot", OutputContent::kImage);
}

// Whether two output paths name one file (the same one once written, or through a link).
bool same_output(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return path_resolve(a) == path_resolve(b);
}

// launch/plot_eval.py: installed beside the binary (PREFIX/share/longnet), else in the source
// tree the binary was built from.
std::string plot_script() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string dir(exe, size_t(n));
    dir = dir.substr(0, dir.rfind('/'));
    const std::string installed = dir + "/../share/longnet/plot_eval.py";
    if (path_kind(installed) == PathKind::kFile) return installed;
  }
  return std::string(LONGNET_SOURCE_DIR) + "/launch/plot_eval.py";
}

// Runs launch/plot_eval.py on the results file (without a shell: any path is one argument);
// false, having said why, when it cannot.
bool plot_results(const std::string& json, const std::string& png) {
  const char* env = std::getenv("LONGNET_PYTHON");
  const std::string python = env && *env ? env : LONGNET_PYTHON_PATH;
  const std::string script = plot_script();
  // ("--": a path that starts with '-' is a path, not an option)
  std::vector<std::string> words = {python, script, "--", json, png};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  // The child gets the default SIGPIPE back (main ignores it).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &pipe_set);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, python.c_str(), nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  int status = 0;
  if (err == 0)
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  const std::string cmd = python + " " + script + " " + json + " " + png;
  if (err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    log_info("eval: plot " + png);
    return true;
  }
  {
    const std::string why = err != 0 ? std::string("cannot start: ") + std::strerror(err)
                            : WIFEXITED(status)
                                ? "exited with " + std::to_string(WEXITSTATUS(status))
                                : "ended by signal " + std::to_string(WTERMSIG(status));
    const bool no_matplotlib = err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 3;
    std::cerr << ("error: eval: --plot " + png + " was not drawn (" + cmd + " " + why +
                  (no_matplotlib ? ": matplotlib is missing from that python: pip install "
                                   "matplotlib, or set LONGNET_PYTHON to a python that has it"
                   : err != 0    ? ": set LONGNET_PYTHON to a python 3 with matplotlib"
                                 : ": its message is above") +
                  "); the results are in the --json file " + json + "\n")
              << std::flush;
  }
  return false;
}

}  // namespace

int cmd_eval(const Args& args) {
  CliFlags f("eval");
  flags_eval(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  // (The model's and the data's files may lie at other paths on other hosts: what they hold is
  // compared once loaded.)
  flags_agree_across_ranks(f, {"checkpoint", "config", "data"});
  f.no_positional();
  mpi_ensure_initialized();
  const auto device = device_auto(f.get("device"));
  if (f.get("dtype") != "float32" && !(f.get("dtype") == "bfloat16" && device.is_cuda()))
    throw std::invalid_argument("eval: --dtype '" + f.get("dtype") +
                                "': eval takes float32, or bfloat16 on cuda (autocast)");
  const auto dtype = dtype_from_name(f.get("dtype"));
  if (!f.get("plot").empty() && f.get("json").empty())
    throw std::invalid_argument("eval: --plot draws the --json results; give --json too");
  if (!f.get("plot").empty() && same_output(f.get("plot"), f.get("json")))
    throw std::invalid_argument("eval: --json and --plot name the same file ('" + f.get("json") +
                                "'); the plot would overwrite the results: give two paths");
  // The output paths are checked before any work (rank 0 writes them): never one of the inputs.
  if (mpi_world_rank() == 0) {
    const std::vector<std::string> inputs = {f.get("checkpoint"), f.get("config"), f.get("data")};
    if (!f.get("json").empty()) {
      output_not_input(f.get("json"), inputs, "longnet eval --json");
      output_file_prepare(f.get("json"), "longnet eval --json", OutputContent::kResults);
    }
    if (!f.get("plot").empty()) {
      output_not_input(f.get("plot"), inputs, "longnet eval --plot");
      plot_path_check(f.get("plot"));
    }
  }

  // Every flag is read (and range-checked) before the model and the data are loaded.
  ContextEvalOptions o;
  o.context_lens = f.get_int_list("context-lens");
  o.score_tokens = f.get_int("score-tokens");
  o.batch_size = f.get_int("batch-size");
  o.windows = f.get_int("batches") * o.batch_size;
  const int64_t seed = f.get_int("seed");
  fault_injection().eval_fail_at_length = f.get_int("debug-fail-at-length");

  const int world = mpi_world_size();
  auto grid = process_grid_create(1, world, device.type());
  auto loaded = model_load(model_flags_get(f, grid->device, at::kFloat, seed));
  model_agree_across_ranks(*grid, loaded.model, loaded.source);
  const std::string data_path = f.get("data").empty() ? loaded.config.data.path : f.get("data");
  if (mpi_world_rank() == 0)  // the checkpoint's dataset, when --data did not name one
    for (const char* out : {"json", "plot"})
      if (!f.get(out).empty())
        output_not_input(f.get(out), {data_path}, std::string("longnet eval --") + out);
  auto data = [&] {
    try {
      return validation_tokens_open(data_path, loaded.config.model.vocab_size);
    } catch (const std::exception& e) {
      std::string what = e.what();
      // The path came from --data (not from a config's data.path): name the flag.
      const std::string key = "data.path '";
      if (!f.get("data").empty() && what.rfind(key, 0) == 0)
        what = "--data '" + what.substr(key.size());
      // The checkpoint's own relative data.path holds from the directory training ran in.
      char cwd[PATH_MAX];
      if (f.get("data").empty() && !data_path.empty() && data_path[0] != '/' &&
          ::getcwd(cwd, sizeof(cwd)))
        what += f.get("config").empty()
                    ? " (the checkpoint's data.path, relative to the directory longnet runs in, " +
                          std::string(cwd) +
                          "): run from the directory training ran in, or give --data PATH"
                    : " (data.path of --config " + f.get("config") +
                          (loaded.config.origin.count("data.path") ? "" : ", its default") +
                          ", relative to the directory longnet runs in, " + std::string(cwd) +
                          "): give --data PATH";
      throw std::runtime_error("eval: " + what);
    }
  }();
  // The checkpoint's own data.path scored: it should still hold the data trained on (the
  // checkpoint records its validation split's size and a CRC-32 of 16 spans, as computed here).
  const uint32_t val_crc = tokens_sampled_crc(data.size, data.read);
  const std::string val_print =
      "validation " + std::to_string(data.size) + " tokens, sampled CRC-32 " + crc32_hex(val_crc);
  if (f.get("data").empty() && !loaded.data_fingerprint.empty() &&
      loaded.data_fingerprint.find(val_print) == std::string::npos)
    log_info("eval: warning: " + data.description + " (the checkpoint's data.path) is not the " +
             "data " + loaded.source + " was trained with (then: " + loaded.data_fingerprint +
             "; now: " + val_print +
             "): the losses below are of other text. Give --data to score a file on purpose");
  // Every rank must read the same validation data (a file at one path may differ between
  // hosts): its size and a CRC-32 of 16 spans of it, against rank 0's.
  if (world > 1) {
    const uint32_t crc = val_crc;
    const std::string mine = std::to_string(data.size) + " validation tokens, ids below " +
                             std::to_string(data.vocab_size) + ", sampled CRC-32 " + crc32_hex(crc);
    const std::string root = world_broadcast(*grid, mine, 0);
    if (mine != root)
      throw std::runtime_error("eval: rank " + std::to_string(grid->world_rank) +
                               " read other validation data than rank 0 from " + data.description +
                               " (" + mine + "; rank 0's: " + root +
                               "): under mpirun every rank must read the same data, so copy "
                               "the same file to every host");
  }
  // The data must be made by the model's tokenizer (where both are known), its ids must be ids
  // of the model, and each window must score tokens of its own.
  const RecordedTokenizer model_tok = model_tokenizer(loaded);
  if (!model_tok.spec.empty() && !data.tokenizer_spec.empty()) {
    const auto same = tokenizers_same(model_tok, {data.tokenizer_spec, data.tokenizer_hash});
    if (same && !*same)
      throw std::invalid_argument(
          "eval: " + data.description + " was made by tokenizer " + data.tokenizer_spec + " (" +
          data.tokenizer_hash + "), but " + loaded.source + " was trained on data of tokenizer " +
          model_tok.spec + (model_tok.hash.empty() ? "" : " (" + model_tok.hash + ")") +
          ": its losses there would mean nothing; score data built with "
          "the model's tokenizer (longnet data build --tokenizer " +
          model_tok.spec + " ...)");
    if (!same)
      log_info("eval: warning: cannot check the data's tokenizer " + data.tokenizer_spec +
               " against the model's " + model_tok.spec + " (a file is not here)");
  }
  const int64_t model_vocab = loaded.config.model.vocab_size;
  if (data.vocab_size > model_vocab)
    throw std::invalid_argument("eval: the data's vocabulary of " +
                                std::to_string(data.vocab_size) + " (" + data.description +
                                ") is larger than the model's " + std::to_string(model_vocab) +
                                " (model.vocab_size): score data built with the model's tokenizer");
  {
    auto lens = o.context_lens;
    std::sort(lens.begin(), lens.end());
    if (std::adjacent_find(lens.begin(), lens.end()) != lens.end())
      throw std::invalid_argument("eval --context-lens: a length is given twice; give each once");
    // Under mpirun every context is split over the ranks: checked here for each length, not
    // when its forward starts (after the shorter ones ran).
    if (world > 1) {
      const auto& segments = loaded.config.model.layer.attention.segment_lengths;
      // Why c cannot be split over the ranks; empty when it can.
      auto split_error = [&](int64_t c) -> std::string {
        try {
          SequenceLayout(c, world, segments);
          return {};
        } catch (const std::exception& e) {
          return e.what();
        }
      };
      for (int64_t c : lens) {
        const std::string why = split_error(c);
        if (why.empty()) continue;
        // The model's segment lengths are fixed by its training: what helps is a length that
        // splits (the next one up, among multiples of the rank count).
        int64_t next = -1;
        const int64_t most = *std::max_element(segments.begin(), segments.end());
        for (int64_t t = ceil_div(c, int64_t(world)) * world; t <= c + 4 * world * most; t += world)
          if (split_error(t).empty()) {
            next = t;
            break;
          }
        throw std::invalid_argument(
            "eval --context-lens: " + std::to_string(c) + " cannot be split over the " +
            std::to_string(world) + " ranks (" + why +
            "); this model's segment lengths are fixed by its training, so give context "
            "lengths that split" +
            (next > 0 ? " (the next one up is " + std::to_string(next) + ")" : std::string()) +
            ", or fewer ranks");
      }
    }
    // xPos's scales at every length, before any runs (the model's segment lengths are fixed by
    // its training: a length they do not nest on, or past the scales' range, is refused now,
    // not after the shorter lengths ran). The encoder of an encoder-decoder has no causal mask.
    for (int64_t c : lens) try {
        xpos_scales_check(c, loaded.config.model.layer.attention.segment_lengths,
                          XposPrecision::kFloat32, kXposScaleBase,
                          loaded.config.model.variant != "encoder_decoder");
      } catch (const std::exception& e) {
        throw std::invalid_argument("eval --context-lens: " + std::to_string(c) +
                                    " is past what this model's xPos can " + "score (" + e.what() +
                                    "); its segment lengths are fixed by its training: give " +
                                    "shorter context lengths");
      }
    // The score tokens and the longest context against the split first (their own messages),
    // then the windows.
    ContextEvalOptions one = o;
    one.windows = 1;
    context_eval_window_ends(one, data.size);
    // What the longest context's forward holds at its peak, per token: the logits and one
    // layer's activations (the input, q, k, v, an output per branch, the FFN's hidden layer
    // twice), 4 bytes each (2 under bf16 autocast). Measured: tiny.yaml at a 262,144-token
    // context peaks at 3.4 GB above the process's start, this estimate's 3.5 GB. A GPU holds
    // its rank's share; on the CPU the ranks may share one host's memory, so the whole window
    // counts. Refused before anything runs.
    const auto& L = loaded.config.model.layer;
    const double width = double(model_vocab) +
                         double(4 + L.attention.segment_lengths.size()) * double(L.d_model) +
                         2.0 * double(L.dim_feedforward);
    const double share = device.is_cuda() ? double(world) : 1.0;
    const double bytes_per = dtype == at::kBFloat16 ? 2.0 : 4.0;
    // On the CPU the plain maths also holds a branch's scores over its segments (all ranks'
    // together, on one host).
    const double scores = dilated_plain_score_bytes(
        lens.back(), lens.back(), L.num_heads, L.attention.segment_lengths,
        L.attention.dilation_rates, dtype == at::kBFloat16 ? at::kBFloat16 : at::kFloat, device);
    device_memory_check(
        double(o.batch_size) * (double(lens.back()) / share * width * bytes_per + scores), device,
        "eval: --batch-size " + std::to_string(o.batch_size) + " x context " +
            std::to_string(lens.back()) +
            (world > 1 && device.is_cuda() ? " / " + std::to_string(world) + " GPUs" : "") +
            " with vocab_size " + std::to_string(model_vocab),
        "use shorter --context-lens or a smaller --batch-size" +
            std::string(device.is_cuda() ? ", or more GPUs under mpirun" : ""));
    context_eval_window_ends(o, data.size);  // (windows that would score a token twice)
  }
  o.bf16_autocast = dtype == at::kBFloat16;
  log_info("eval: " + loaded.source + "; data " + data.description + "; " + std::to_string(world) +
           " rank(s), device " + grid->device.str());

  std::unique_ptr<AttentionBackend> backend;
  if (world > 1)
    backend = std::make_unique<SequenceParallelAttention>(grid);
  else
    backend = std::make_unique<LocalAttention>();
  // Each length's row as soon as it is done (stderr, rank 0): a long evaluation shows progress,
  // and rows done survive a stop. The table and --json follow at the end.
  const int64_t lengths = int64_t(o.context_lens.size());
  std::vector<ContextEvalRow> rows;  // each length's row when done (kept if a later one fails)
  // Bits per byte where a token is a byte (a byte-token file, a dataset of tokenizer bytes or
  // bytes:eot, whose end-of-text token stands for a document's end), as training says them.
  const bool byte_tokens =
      data.tokenizer_spec == "bytes" || data.tokenizer_spec.rfind("bytes:", 0) == 0;
  auto on_row = [&](const ContextEvalRow& r) {
    rows.push_back(r);
    if (grid->world_rank != 0) return;
    std::ostringstream p;
    p << "eval: [" << rows.size() << "/" << lengths << "] context " << r.context_len << ": loss "
      << r.loss << ", " << r.bits_per_token << " bits per " << (byte_tokens ? "byte" : "token")
      << " over " << r.tokens << " tokens in " << r.seconds << " s";
    std::cerr << p.str() << std::endl;
  };
  // SIGINT/SIGTERM stop before the next forward (every rank agrees): the lengths done are
  // printed and written to --json as a partial result, the status is 128 + the signal.
  stop_signals_catch();
  int stopped_by = 0;
  auto should_stop = [&] {
    stopped_by = int(world_max(*grid, stop_signal_caught()));
    return stopped_by != 0;
  };
  std::string failure;  // an error at a later length: the rows done are still reported
  try {
    context_eval(loaded.model, data, *grid, *backend, o, on_row, should_stop);  // (rows, as above)
  } catch (const c10::Error& e) {  // (its what() carries a backtrace)
    if (rows.empty()) throw;
    failure = e.what_without_backtrace();
  } catch (const std::bad_alloc&) {
    if (rows.empty()) throw;
    failure = "out of host memory" +
              (rows.size() < o.context_lens.size()
                   ? " at context length " + std::to_string(o.context_lens[rows.size()])
                   : std::string());
  } catch (const std::exception& e) {
    if (rows.empty()) throw;
    failure = e.what();
  }
  // A signal during the last forward (checked before each one) is not dropped: the rows are
  // all there, and the status still says the run was stopped. Agreed as before each forward
  // (a rank that met an error instead reports it, and its error ends the job).
  if (failure.empty() && stopped_by == 0) should_stop();

  const int64_t T = o.score_tokens > 0
                        ? o.score_tokens
                        : *std::min_element(o.context_lens.begin(), o.context_lens.end());
  const int64_t trained = loaded.config.data.seq_len;
  std::ostringstream s;
  s << "eval: the final " << T << " tokens of " << o.windows << " windows (trained at context "
    << trained << ")\n"
    << "  context      loss   " << (byte_tokens ? "bits/byte" : "bits/token")
    << "   tokens   seconds\n";
  // What a scored token sees: the tokens since the start of its segment in the branch whose
  // segment began earliest (segments restart every w_i from the window's first token), so past
  // the longest segment more context adds nothing: (fewest, most) over the scored tokens.
  const auto& segments = loaded.config.model.layer.attention.segment_lengths;
  auto context_seen = [&](int64_t c) {
    std::pair<int64_t, int64_t> seen{c, 0};
    for (int64_t pos = c - T; pos < c; ++pos) {
      int64_t most = 0;
      for (int64_t w : segments) most = std::max(most, pos % std::min(w, c) + 1);
      seen = {std::min(seen.first, most), std::max(seen.second, most)};
    }
    return seen;
  };
  std::vector<JsonLine> json_rows;
  bool restarts = false;
  for (const auto& r : rows) {
    const auto [seen_min, seen_max] = context_seen(r.context_len);
    const bool capped = seen_max < r.context_len;
    restarts |= capped;
    s << "  " << std::setw(7) << r.context_len << std::fixed << std::setprecision(4)
      << std::setw(10) << r.loss << std::setw(12) << r.bits_per_token << std::setw(9) << r.tokens
      << std::setprecision(2) << std::setw(10) << r.seconds
      << (capped ? "  (sees " + std::to_string(seen_min) + "-" + std::to_string(seen_max) + ")"
                 : "")
      << (r.context_len > trained ? "  (beyond training)" : "") << "\n"
      << std::defaultfloat;
    JsonLine j;
    j.add("context_len", r.context_len)
        .add("loss", r.loss)
        .add(byte_tokens ? "bits_per_byte" : "bits_per_token", r.bits_per_token)
        .add("scored_tokens", r.tokens)
        .add("context_seen_min", seen_min)
        .add("context_seen_max", seen_max)
        .add("seconds", r.seconds);
    json_rows.push_back(j);
  }
  if (restarts)
    s << "  (sees A-B: past the longest segment (" +
             std::to_string(*std::max_element(segments.begin(), segments.end())) +
             ") attention restarts with each segment, so the scored tokens see only A to B "
             "tokens of their context)\n";
  log_info(s.str());
  bool plot_ok = true;
  if (grid->world_rank == 0 && !f.get("json").empty()) {
    JsonLine extra;
    extra.add("model", loaded.source)
        .add("data", data.description)
        .add("score_tokens", T)
        .add("windows", o.windows)
        .add("trained_context", trained)
        .add("ranks", int64_t(world))
        .add("dtype", f.get("dtype"));
    if (stopped_by != 0) extra.add("stopped_by_signal", int64_t(stopped_by));
    if (!failure.empty()) extra.add("error", failure);
    if (stopped_by != 0 || !failure.empty())  // a partial result
      extra.add("context_lens_done", int64_t(rows.size())).add("context_lens_asked", lengths);
    bench_write_results(f.get("json"), command_line("eval", args), bench_device_name(grid->device),
                        extra, json_rows);
    log_info("eval: results " + f.get("json"));
    if (!f.get("plot").empty() && !rows.empty())
      plot_ok = plot_results(f.get("json"), f.get("plot"));
  }
  // (no collective here: the other ranks may have failed at that length too, or be waiting)
  if (!failure.empty())
    throw std::runtime_error(failure + "; the " + std::to_string(rows.size()) + " of " +
                             std::to_string(lengths) + " context length(s) done are above" +
                             (f.get("json").empty() ? "" : " and in " + f.get("json")));
  if (stopped_by != 0) {
    if (grid->world_rank == 0) {
      // One write: under mpirun stdout and stderr reach the terminal through separate pipes,
      // and a message written in pieces can be split by stdout's lines.
      std::ostringstream m;
      const std::string where = f.get("json").empty() ? "" : " (and in " + f.get("json") + ")";
      m << "eval: stopped by signal " << stopped_by << " (" << ::strsignal(stopped_by) << ")";
      if (int64_t(rows.size()) == lengths)
        m << " during the last context length, which was finished: all " << lengths
          << " row(s) above" << where << " were measured\n";
      else
        m << " after " << rows.size() << " of " << lengths << " context length(s); the rows above"
          << where << " are all that was measured\n";
      std::cerr << m.str() << std::flush;
    }
    // No rank exits (non-zero, which makes mpirun end the job) before rank 0 has written the
    // results and this message.
    world_max(*grid, 0);
    return 128 + stopped_by;
  }
  return plot_ok ? 0 : 1;  // (a plot asked for and not drawn is a failure; the results stand)
}

}  // namespace longnet
