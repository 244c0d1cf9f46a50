// `longnet tokenizer ...`: train a tokenizer, encode text to ids and decode ids to text, as
// library functions that the CLI's command table calls (stdin and stdout are the data).
#pragma once

#include <string>
#include <vector>

namespace longnet {

// args[0] is the subcommand: train, encode, decode or info; the rest are its flags. Returns the
// exit status (0; 2 for a missing subcommand); throws std::invalid_argument for bad flags and
// std::runtime_error for unreadable inputs, as the other commands do.
//   train  --vocab-size V --source PATH [PATH...] --out PATH.model   (see tokenizer_train.h)
//   encode --tokenizer KIND[:PATH]   text on stdin -> ids on stdout, space-separated, then '\n'
//   decode --tokenizer KIND[:PATH]   ids on stdin (whitespace-separated) -> text on stdout
//   info   --tokenizer KIND[:PATH]   kind, vocabulary size, end-of-text id, content hash
int tokenizer_command(const std::vector<std::string>& args);

// The same, one subcommand each (args are its flags), for a command table keyed by two words.
int tokenizer_train_command(const std::vector<std::string>& args);
int tokenizer_encode_command(const std::vector<std::string>& args);
int tokenizer_decode_command(const std::vector<std::string>& args);
int tokenizer_info_command(const std::vector<std::string>& args);

}  // namespace longnet
