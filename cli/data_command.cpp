// `longnet data build SRC_DIR OUT [--val-fraction F]`: packs a directory of text or code into a
// byte-token file (train/token_data.h).
#include <iostream>
#include <stdexcept>

#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "train/token_data.h"

namespace longnet {

int cmd_data_build(const Args& args) {
  CliFlags f("data build");
  flags_data_build(f);
  f.parse(args);
  if (f.help_requested()) {
    std::cout << "usage: longnet data build SRC_DIR OUT [flags]\n"
                 "  Turns every text file under SRC_DIR into the byte-token file OUT.\n"
              << f.flags_usage();
    return 0;
  }
  const auto& pos = f.positional();
  if (pos.size() != 2)
    throw std::invalid_argument("longnet data build: expected SRC_DIR OUT, got " +
                                std::to_string(pos.size()) +
                                " arguments (e.g. longnet data build /usr/include "
                                "data/usr_include.tokens)");
  data_build(pos[0], pos[1], f.get_double("val-fraction"));
  return 0;
}

}  // namespace longnet
