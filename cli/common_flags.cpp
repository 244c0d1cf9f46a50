// Shared command-line values (see common_flags.h).
#include "longnet/cli/common_flags.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include "longnet/core/device_memory.h"
#include "longnet/parallel/communicator.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"

namespace longnet {

c10::DeviceType device_from_name(const std::string& name) {
  if (name == "cpu") return c10::kCPU;
  if (name == "cuda") return c10::kCUDA;
  throw std::invalid_argument("--device: '" + name + "' is not a device; use cpu or cuda");
}

c10::ScalarType dtype_from_name(const std::string& name) {
  if (name == "float32") return c10::kFloat;
  if (name == "bfloat16") return c10::kBFloat16;
  if (name == "float16") return c10::kHalf;
  if (name == "float64") return c10::kDouble;
  throw std::invalid_argument("--dtype: '" + name +
                              "' is not a dtype; use float32, bfloat16, float16 or float64");
}

std::string dtype_name(c10::ScalarType dtype) {
  for (const char* name : {"float32", "bfloat16", "float16", "float64"})
    if (dtype_from_name(name) == dtype) return name;
  return c10::toString(dtype);
}

void engine_flags_add(CliFlags& f) {
  const EngineOptions d;
  f.add("backend", d.backend, "GPU dense-attention kernel: cudnn or flash (engine.backend)");
  f.add("streams", std::to_string(d.streams),
        "CUDA streams the dense problems are spread over, 1 to 16 (engine.streams)",
        spec_range(1, 16));
  f.add_switch("no-fused-merge", "merge branches with ATen maths instead of the fused kernel");
  f.add("chunk-above", std::to_string(d.chunk_above),
        "GPU forward in chunks above this many elements of q; -1 automatic, 0 always",
        spec_range(-1, double(kMaxTokens) * (1 << 20)));
  f.add_switch("memory-trace", "print the allocator's memory after each sequence-parallel stage");
}

EngineOptions engine_flags_get(const CliFlags& f) {
  EngineOptions e;
  e.backend = f.get("backend");
  e.streams = f.get_int("streams");
  e.fused_merge = !f.get_switch("no-fused-merge");
  e.chunk_above = f.get_int("chunk-above");
  e.memory_trace = f.get_switch("memory-trace");
  try {
    engine_options_check(e);
  } catch (const OptionsError& err) {
    const std::string flag =
        err.field() == "engine.chunk_above" ? "chunk-above" : err.field().substr(7);
    throw std::invalid_argument("longnet: --" + flag + ": " + err.detail());
  }
  return e;
}

void tensor_size_check(const std::string& what, const std::vector<int64_t>& sizes) {
  int64_t n = 1;
  std::string text;
  bool overflow = false;
  for (int64_t x : sizes) {
    overflow = overflow || __builtin_mul_overflow(n, x, &n);
    text += (text.empty() ? "" : " x ") + std::to_string(x);
  }
  if (overflow || n > (int64_t(1) << 50))
    throw std::invalid_argument("longnet: " + what + " = " + text +
                                " elements is more than any machine holds (over 2^50); use "
                                "smaller sizes");
}

void tensor_memory_check(const std::string& command, const std::string& what,
                         const std::vector<int64_t>& sizes, int copies, c10::ScalarType dtype,
                         const c10::Device& device, double scores) {
  tensor_size_check(what, sizes);
  double bytes = double(copies) * double(c10::elementSize(dtype));
  for (int64_t x : sizes) bytes *= double(x);
  device_memory_check(bytes + scores, device,
                      "longnet " + command + ": " + std::to_string(copies) + " tensors of " + what +
                          (scores > 0 ? " and the attention scores of its longest branch" : ""),
                      scores > 0 ? "use smaller sizes, or shorter segments or higher rates (the "
                                   "CPU's plain maths holds each branch's scores)"
                                 : "use smaller sizes");
}

void overrides_unique_check(const std::vector<std::string>& overrides, const std::string& command) {
  auto trim = [](std::string t) {
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
    return t;
  };
  auto key_of = [&](const std::string& o) { return trim(o.substr(0, o.find('='))); };
  auto value_of = [&](const std::string& o) {
    const auto eq = o.find('=');
    return eq == std::string::npos ? std::string() : trim(o.substr(eq + 1));
  };
  // (maps, not all pairs: a script may pass thousands of overrides)
  std::map<std::string, size_t> first;     // a key -> its first override
  std::map<std::string, size_t> sections;  // each section above a key -> an override under it
  auto both = [&](size_t j, size_t i, const std::string& longer) {
    return std::invalid_argument("longnet " + command + ": '" + overrides[j] + "' and '" +
                                 overrides[i] + "' both set " + longer + "; give each key once");
  };
  for (size_t i = 0; i < overrides.size(); ++i) {
    const std::string b = key_of(overrides[i]);
    if (const auto it = first.find(b); it != first.end()) {
      // The same value twice loses nothing (scripts repeat a shared setting).
      if (value_of(overrides[it->second]) != value_of(overrides[i]))
        throw std::invalid_argument(
            "longnet " + command + ": " + b + " is overridden twice with different values ('" +
            overrides[it->second] + "' and '" + overrides[i] + "'); give it once");
      continue;
    }
    if (b.empty()) continue;  // (refused with its own message when applied)
    for (size_t dot = b.find('.'); dot != std::string::npos; dot = b.find('.', dot + 1))
      if (const auto it = first.find(b.substr(0, dot)); it != first.end())
        throw both(it->second, i, b);
    if (const auto it = sections.find(b); it != sections.end())
      throw both(it->second, i, key_of(overrides[it->second]));
    first.emplace(b, i);
    for (size_t dot = b.find('.'); dot != std::string::npos; dot = b.find('.', dot + 1))
      sections.emplace(b.substr(0, dot), i);
  }
}

void flags_agree_across_ranks(const CliFlags& f, const std::vector<std::string>& rank0_only) {
  if (!mpi_is_initialized() && !std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMI_SIZE") &&
      !std::getenv("PMIX_RANK"))
    return;  // (not started by mpirun: one process, and no MPI to start for nothing)
  mpi_ensure_initialized();
  if (mpi_world_size() <= 1) return;
  auto host = communicator_mpi_world();
  const std::string mine = "longnet " + f.command() + "\n" + f.values_text(rank0_only);
  const WorldDifference d = world_first_difference(*host, mine);
  if (d.rank < 0) return;
  const int other = d.rank;
  const std::string &theirs = d.theirs, &root = d.root;
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    for (size_t at = 0, end; at < text.size(); at = end + 1) {
      end = text.find('\n', at);
      if (end == std::string::npos) end = text.size();
      out.push_back(text.substr(at, end - at));
    }
    return out;
  };
  const auto a = lines(theirs), b = lines(root);
  std::string diff = "rank " + std::to_string(other) + " was started with other flags than rank 0";
  if (a.front() != b.front())
    diff =
        "rank " + std::to_string(other) + " runs `" + a.front() + "`, rank 0 `" + b.front() + "`";
  else
    for (size_t i = 1; i < std::min(a.size(), b.size()); ++i)
      if (a[i] != b[i]) {
        diff =
            "rank " + std::to_string(other) + " was started with " + a[i] + ", rank 0 with " + b[i];
        break;
      }
  const std::string what =
      "under mpirun every rank runs the same command with the same flags; "
      "give every rank the same command line";
  throw std::invalid_argument("longnet " + f.command() + ": " + diff + ": " + what);
}

std::string command_line(const std::string& name, const std::vector<std::string>& args) {
  std::string s = "longnet " + name;
  for (const auto& a : args) s += " " + a;
  return s;
}

}  // namespace longnet
