// The `longnet` sub-commands, each `int fn(args after the command words)`, returning the exit
// status. main.cpp holds the table; each command parses its own flags (cli_flags.h).
#pragma once

#include <string>
#include <vector>

namespace longnet {

using Args = std::vector<std::string>;

int cmd_check_comm(const Args& args);       // check_commands.cpp
int cmd_check_attention(const Args& args);  // check_commands.cpp
int cmd_bench_attention(const Args& args);  // bench_commands.cpp
int cmd_bench_scaling(const Args& args);    // bench_commands.cpp
int cmd_data_build(const Args& args);       // data_command.cpp
int cmd_train(const Args& args);            // train_command.cpp
int cmd_check_generate(const Args& args);   // generation_check.cpp
int cmd_generate(const Args& args);         // generate_command.cpp
int cmd_eval(const Args& args);             // eval_command.cpp
int cmd_bench_generate(const Args& args);   // bench_generate.cpp

}  // namespace longnet
