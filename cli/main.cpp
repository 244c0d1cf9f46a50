// The `longnet` command line: one binary, sub-commands for checking, benchmarking, data and
// training (commands.h). Run under mpirun for more than one rank; errors end the whole job
// (run_main in parallel/mpi_bootstrap.h).
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "longnet/cli/commands.h"
#include "longnet/cli/stdout_stream.h"
#include "longnet/cli/tokenizer_command.h"
#include "longnet/core/file_util.h"
#include "longnet/longnet_build_info.h"
#include "longnet/parallel/mpi_bootstrap.h"

namespace longnet {
namespace {

struct Command {
  std::string help;
  std::function<int(const Args&)> run;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"check comm",
       {"round-trip tensors through the communicators (MPI or NCCL)", cmd_check_comm}},
      {"check attention",
       {"sequence-parallel attention vs the single-process result", cmd_check_attention}},
      {"bench attention",
       {"time dilated attention (and dense SDPA) forward and backward", cmd_bench_attention}},
      {"bench scaling",
       {"the paper's Figure 5: forward time vs N at fixed tokens", cmd_bench_scaling}},
      {"data build",
       {"tokenize a corpus on every core into a sharded dataset (or a byte-token file)",
        cmd_data_build}},
      {"tokenizer train",
       {"train a SentencePiece BPE tokenizer (byte fallback) on a corpus, offline",
        tokenizer_train_command}},
      {"tokenizer encode", {"text on stdin -> token ids on stdout", tokenizer_encode_command}},
      {"tokenizer decode", {"token ids on stdin -> text on stdout", tokenizer_decode_command}},
      {"tokenizer info", {"a tokenizer's kind, vocabulary and hash", tokenizer_info_command}},
      {"train", {"train a LongNetLM from a YAML config (under mpirun)", cmd_train}},
      {"export", {"a checkpoint's model as model.safetensors and config.json", cmd_export}},
      {"check generate",
       {"teacher-forced incremental logits vs the full forward (dilated KV cache)",
        cmd_check_generate}},
      {"generate",
       {"text from a trained model (prompt of any length, constant memory)", cmd_generate}},
      {"eval", {"validation loss against context length (same scored tokens)", cmd_eval}},
      {"bench generate",
       {"generation tokens/s after 32K and 1M prompts, against the bandwidth bound",
        cmd_bench_generate}},
  };
  return table;
}

// The commands whose name starts with `group` ("" for all), as usage lines.
std::string command_lines(const std::string& group) {
  std::string s;
  for (const auto& [name, cmd] : commands())
    if (group.empty() || name == group || name.rfind(group + " ", 0) == 0)
      s +=
          "  " + name + std::string(name.size() < 22 ? 22 - name.size() : 1, ' ') + cmd.help + "\n";
  return s;
}

std::string usage() {
  return "longnet " LONGNET_VERSION
         " - LongNet dilated attention and sequence-parallel training\n\n"
         "usage: [mpirun -np P] longnet COMMAND [SUBCOMMAND] [flags]   (--help after any "
         "command)\n\ncommands:\n" +
         command_lines("") +
         "\n  --version              print version, commit and build settings\n";
}

bool is_help(const std::string& a) {
  return a == "--help" || a == "-h" || a == "help";
}

int dispatch(const Args& argv) {
  if (argv.empty() || is_help(argv[0])) {
    std::cout << usage();
    return argv.empty() ? 2 : 0;
  }
  if (argv[0] == "--version") {
    std::cout << "longnet " << LONGNET_VERSION << " (commit " << LONGNET_GIT_COMMIT << ", LibTorch "
              << LONGNET_TORCH_VERSION << ", CUDA path " << LONGNET_BUILT_WITH_CUDA << ")\n";
    return 0;
  }
  // Longest match first: "check comm" before "check".
  for (size_t words = std::min<size_t>(2, argv.size()); words >= 1; --words) {
    std::string name = argv[0];
    for (size_t i = 1; i < words; ++i) name += " " + argv[i];
    auto it = commands().find(name);
    if (it != commands().end()) {
      Args rest(argv.begin() + words, argv.end());
      return run_main([&] { return it->second.run(rest); });
    }
  }
  // An empty word would match every group below ("usage: longnet  SUBCOMMAND").
  if (argv[0].empty()) {
    std::cerr << "longnet: the command is empty ('')\n\n" << usage();
    return 2;
  }
  // A command group ("longnet data", "longnet bench --help"): list its sub-commands.
  const std::string group = argv[0];
  const std::string sub = command_lines(group);
  if (!sub.empty()) {
    const bool help = argv.size() == 1 || is_help(argv[1]);
    (help ? std::cout : std::cerr)
        << (help ? "" : "longnet: unknown sub-command '" + group + " " + argv[1] + "'\n\n")
        << "usage: longnet " << group << " SUBCOMMAND [flags]   (--help after any)\n\n"
        << "sub-commands:\n"
        << sub;
    return argv.size() > 1 && help ? 0 : 2;
  }
  std::cerr << "longnet: unknown command '" << argv[0] << "'\n\n" << usage();
  return 2;
}

}  // namespace
}  // namespace longnet

int main(int argc, char** argv) {
  // No command dies of a signal: a write to a closed pipe (`longnet generate ... | head`) fails
  // with EPIPE instead, and the commands that stream to stdout stop cleanly (stdout_stream.h).
  std::signal(SIGPIPE, SIG_IGN);
  // Ended by SIGINT, SIGTERM or SIGHUP, no command leaves a partial temporary file (data build's
  // shards, an atomic write's PATH.tmp.PID).
  longnet::temp_files_remove_on_signal();
  const int rc = longnet::dispatch(std::vector<std::string>(argv + 1, argv + argc));
  // What a command printed (eval's table, info, --help) must have reached stdout: a failed write
  // (a full disk) is an error, not status 0 with the output lost. A reader that closed the pipe
  // early (`| head`) is not.
  errno = 0;
  std::cout.flush();
  if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout) {
    const int e = errno ? errno : longnet::log_stdout_errno();
    if (rc != 0) return rc;  // the command failed and said why; once is enough
    if (e == EPIPE || longnet::stdout_was_closed()) return 0;  // `| head`: not an error
    std::fprintf(stderr, "longnet: writing stdout failed: %s; the output is incomplete\n",
                 e != 0 ? std::strerror(e) : "write error");
    return 1;
  }
  return rc;
}
