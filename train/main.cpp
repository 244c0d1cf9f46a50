// The `longnet` command line: one binary, subcommands for checking, benchmarking and training.
// Run under mpirun for more than one rank; errors end the whole job (see run_main).
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "longnet_build_info.h"
#include "parallel/comm_check.h"
#include "parallel/mpi_bootstrap.h"
#include "train/cli_flags.h"

namespace longnet {
namespace {

using Args = std::vector<std::string>;

c10::DeviceType parse_device(const std::string& name) {
  if (name == "cpu") return c10::kCPU;
  if (name == "cuda") return c10::kCUDA;
  throw std::invalid_argument("--device: '" + name + "' is not a device; use cpu or cuda");
}

int cmd_check_comm(const Args& args) {
  CliFlags f("check comm");
  f.add("device", "cpu", "cpu (MPI) or cuda (NCCL)");
  f.add("elements", "1024", "elements per rank");
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  return comm_check(parse_device(f.get("device")), f.get_int("elements"));
}

struct Command {
  std::string help;
  std::function<int(const Args&)> run;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"check comm",
       {"round-trip tensors through the communicators (MPI or NCCL)", cmd_check_comm}},
  };
  return table;
}

std::string usage() {
  std::string s =
      "longnet " LONGNET_VERSION
      " - LongNet dilated attention and sequence-parallel training\n\n"
      "usage: [mpirun -np P] longnet COMMAND [SUBCOMMAND] [flags]   (--help after any command)\n\n"
      "commands:\n";
  for (const auto& [name, cmd] : commands())
    s += "  " + name + std::string(22 - name.size(), ' ') + cmd.help + "\n";
  s += "\n  --version              print version, commit and build settings\n";
  return s;
}

int dispatch(const Args& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
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
  std::cerr << "longnet: unknown command '" << argv[0] << (argv.size() > 1 ? " " + argv[1] : "")
            << "'\n\n"
            << usage();
  return 2;
}

}  // namespace
}  // namespace longnet

int main(int argc, char** argv) {
  return longnet::dispatch(std::vector<std::string>(argv + 1, argv + argc));
}
