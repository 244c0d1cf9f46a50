// The `longnet` sub-commands, each `int fn(args after the command words)`, returning the exit
// status. main.cpp holds the table; each command parses its own flags (cli_flags.h).
#pragma once

#include <string>
#include <vector>

#include "longnet/cli/cli_flags.h"

namespace longnet {

using Args = std::vector<std::string>;

// What a --tokenizer flag takes.
constexpr const char* kTokenizerHelp =
    "tokenizer spec: bytes, bytes:eot, tiktoken:PATH.tiktoken or sentencepiece:PATH.model";

// Each command's flags, declared on f (the commands call them; so does the flags fuzzer).
void flags_check_comm(CliFlags& f);
void flags_check_attention(CliFlags& f);
void flags_bench_attention(CliFlags& f);
void flags_bench_scaling(CliFlags& f);
void flags_data_build(CliFlags& f);
void flags_train(CliFlags& f);
void flags_tokenizer_train(CliFlags& f);
void flags_tokenizer_encode(CliFlags& f);
void flags_tokenizer_decode(CliFlags& f);
void flags_tokenizer_info(CliFlags& f);
void flags_export(CliFlags& f);
void flags_check_generate(CliFlags& f);
void flags_generate(CliFlags& f);
void flags_eval(CliFlags& f);
void flags_bench_generate(CliFlags& f);

// The names of the commands that take flags ("check comm", ..., "train"), and their flags:
// command_flags declares name's flags on f and returns false for an unknown name.
const std::vector<std::string>& command_names();
bool command_flags(const std::string& name, CliFlags& f);

int cmd_check_comm(const Args& args);       // check_commands.cpp
int cmd_check_attention(const Args& args);  // check_commands.cpp
int cmd_bench_attention(const Args& args);  // bench_commands.cpp
int cmd_bench_scaling(const Args& args);    // bench_commands.cpp
int cmd_data_build(const Args& args);       // data_command.cpp
int cmd_train(const Args& args);            // train_command.cpp
int cmd_export(const Args& args);           // export_command.cpp
int cmd_check_generate(const Args& args);   // generation_check.cpp
int cmd_generate(const Args& args);         // generate_command.cpp
int cmd_eval(const Args& args);             // eval_command.cpp
int cmd_bench_generate(const Args& args);   // bench_generate.cpp

}  // namespace longnet
