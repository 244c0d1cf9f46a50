// `longnet data build`: a corpus into a sharded token dataset (train/dataset_build.h),
//   longnet data build --tokenizer KIND:PATH --source PATH [PATH...] --out DIR [flags]
// or, as before, a directory of text into one byte-token file (train/token_data.h):
//   longnet data build SRC_DIR OUT [--val-fraction F]
#include <cmath>
#include <iostream>
#include <stdexcept>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/train/dataset_build.h"
#include "longnet/train/fault_injection.h"
#include "longnet/train/token_data.h"

namespace longnet {

int cmd_data_build(const Args& args_in) {
  // --source may come several times and take several paths: gather them before CliFlags, which
  // keeps one value per flag.
  std::vector<std::string> sources, args;
  for (size_t i = 0; i < args_in.size(); ++i) {
    const std::string& a = args_in[i];
    if (a == "--source") {
      if (i + 1 >= args_in.size() || args_in[i + 1].rfind("--", 0) == 0)
        throw std::invalid_argument("longnet data build: --source needs a path");
      sources.push_back(args_in[++i]);
    } else if (a.rfind("--source=", 0) == 0) {
      sources.push_back(a.substr(9));
    } else {
      args.push_back(a);
    }
  }
  CliFlags f("data build");
  flags_data_build(f);
  f.parse(args);
  if (f.help_requested()) {
    std::cout
        << "usage: longnet data build --tokenizer KIND:PATH --source PATH [PATH...] --out DIR "
           "[flags]\n"
           "  Tokenizes the sources on every core into DIR: shards of uint16 (or uint32) "
           "tokens and\n"
           "  manifest.json. Rerun the same command to finish an interrupted build.\n"
           "   or: longnet data build SRC_DIR OUT [--val-fraction F]\n"
           "  Packs every text file under SRC_DIR into the byte-token file OUT.\n"
        << f.flags_usage();
    return 0;
  }
  refuse_several_ranks("data build");
  const bool sharded = f.given("tokenizer") || f.given("out") || !sources.empty();
  const auto& pos = f.positional();
  if (!sharded) {
    // The byte-token file takes --val-fraction only: the others would be ignored.
    for (const char* flag : {"shard-mb", "jsonl-field", "skip-bad-lines", "workers", "no-progress"})
      if (f.given(flag))
        throw std::invalid_argument(
            std::string("longnet data build: --") + flag +
            " applies to sharded datasets (--tokenizer KIND:PATH --source PATH --out DIR), not to "
            "the byte-token file of SRC_DIR OUT, which takes --val-fraction only");
    if (pos.size() != 2)
      throw std::invalid_argument(
          "longnet data build: expected --tokenizer KIND:PATH --source PATH --out DIR, or SRC_DIR "
          "OUT for a byte-token file; got " +
          std::to_string(pos.size()) +
          " arguments (e.g. longnet data build --tokenizer bytes:eot --source /usr/include --out "
          "data/include)");
    data_build(pos[0], pos[1], f.get_double("val-fraction"));
    return 0;
  }
  for (const auto& p : pos) sources.push_back(p);
  if (sources.empty() || !f.given("out") || !f.given("tokenizer"))
    throw std::invalid_argument(
        "longnet data build: needs --tokenizer KIND:PATH, --source PATH and --out DIR (e.g. "
        "longnet data build --tokenizer tiktoken:cl100k_base.tiktoken --source corpus/ --out "
        "data/corpus)");
  DatasetBuildOptions o;
  o.sources = sources;
  o.tokenizer = f.get("tokenizer");
  o.out_dir = f.get("out");
  const double mb = f.get_double("shard-mb");
  if (!(mb > 0 && mb <= 1 << 20))
    throw std::invalid_argument("longnet data build: --shard-mb " + f.get("shard-mb") +
                                " must be in (0, 1048576] (e.g. 1024)");
  o.shard_bytes = static_cast<uint64_t>(std::llround(mb * 1048576.0));
  o.jsonl_field = f.get("jsonl-field");
  o.skip_bad_lines = f.get_switch("skip-bad-lines");
  o.val_fraction = f.get_double("val-fraction");
  o.workers = f.get_int("workers");
  o.progress = !f.get_switch("no-progress");
  FaultInjection& faults = fault_injection();
  faults.build_fail_after_shards = f.get_int("debug-fail-after-shards");
  faults.build_kill_after_shards = f.get_int("debug-kill-after-shards");
  faults.build_term_after_shards = f.get_int("debug-term-after-shards");
  dataset_build(o);
  return 0;
}

}  // namespace longnet
