// `longnet check comm` and `longnet check attention`: their flags (the checks themselves are
// comm_check.cpp and attention_check.cpp).
#include <iostream>

#include "longnet/cli/attention_check.h"
#include "longnet/cli/comm_check.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"

namespace longnet {

int cmd_check_comm(const Args& args) {
  CliFlags f("check comm");
  flags_check_comm(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  flags_agree_across_ranks(f);
  f.no_positional();
  return comm_check(device_from_name(f.get("device")), f.get_int("elements"));
}

int cmd_check_attention(const Args& args) {
  CliFlags f("check attention");
  flags_check_attention(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  flags_agree_across_ranks(f);
  f.no_positional();
  AttentionCheckOptions o;
  o.seq_len = f.get_int("seq-len");
  o.batch = f.get_int("batch");
  o.heads = f.get_int("heads");
  o.head_dim = f.get_int("head-dim");
  o.segments = f.get_int_list("segments");
  o.rates = f.get_int_list("rates");
  o.causal = f.get_switch("causal");
  o.dtype = dtype_from_name(f.get("dtype"));
  o.sp = f.get_int("sp");
  o.seed = static_cast<uint64_t>(f.get_int("seed"));
  o.device = device_from_name(f.get("device"));
  o.engine = engine_flags_get(f);
  return attention_check(o);
}

}  // namespace longnet
