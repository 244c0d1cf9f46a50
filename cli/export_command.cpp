// `longnet export CHECKPOINT --out DIR [--dtype T]`: a trained model as model.safetensors and
// config.json (train/model_export.h), for tools that read those.
#include <iostream>
#include <stdexcept>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/core/file_util.h"
#include "longnet/train/model_export.h"

namespace longnet {

int cmd_export(const Args& args) {
  CliFlags f("export");
  flags_export(f);
  f.parse(args);
  if (f.help_requested()) {
    std::cout << "usage: longnet export CHECKPOINT --out DIR [flags]\n"
                 "  Writes DIR/model.safetensors (the parameters) and DIR/config.json (the\n"
                 "  model's options) from a `longnet train` checkpoint.\n"
              << f.flags_usage();
    return 0;
  }
  refuse_several_ranks("export");
  if (f.positional().size() != 1 || f.get("out").empty())
    throw std::invalid_argument(
        "longnet export: expected one CHECKPOINT and --out DIR (e.g. longnet export "
        "runs/base/checkpoints/step_00001000.ckpt --out exported/base)");
  // Checked before the checkpoint is read (a file or FIFO there is refused at once), without
  // creating it: a run that fails on the checkpoint or --dtype leaves nothing behind. The export
  // creates it, and checks that it can write there, once the checkpoint has been read.
  const std::string out = f.get("out");
  if (path_kind(out) != PathKind::kMissing && path_kind(out) != PathKind::kDirectory)
    throw std::invalid_argument("longnet export --out '" + out + "' is " + path_kind_text(out) +
                                ", not a directory: give a directory (created if missing)");
  const auto s = checkpoint_export(f.positional()[0], f.get("out"), f.get("dtype"));
  std::cout << "export: step " << s.step << ", " << s.tensors << " tensors, " << s.bytes
            << " bytes -> " << f.get("out") << "/model.safetensors, " << f.get("out")
            << "/config.json"
            << (s.tokenizer_file.empty() ? "" : ", " + f.get("out") + "/" + s.tokenizer_file)
            << std::endl;
  if (!s.tokenizer_note.empty()) std::cerr << "export: warning: " << s.tokenizer_note << std::endl;
  return 0;
}

}  // namespace longnet
