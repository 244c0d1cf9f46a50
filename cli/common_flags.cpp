// Shared command-line values (see common_flags.h).
#include "longnet/cli/common_flags.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "longnet/core/device_memory.h"
#include "longnet/core/dtype_names.h"
#include "longnet/core/text.h"
#include "longnet/parallel/communicator.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/train/config_schema.h"

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
  return dtype_short_name(dtype);
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

void engine_flags_cpu_note(const EngineOptions& e, const c10::Device& device,
                           const std::string& command) {
  if (device.is_cuda()) return;
  const std::string note = engine_options_cpu_note(e, [](const std::string& field) {
    std::string flag = field == "fused_merge" ? "no-fused-merge" : field;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return "--" + flag;
  });
  if (!note.empty()) log_info(command + ": note: " + note);
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
  // Each override as the keys it sets, with their values as YAML text. A section's override
  // ('model={num_heads: 2}') merges into the section (train/config.cpp), so it sets the keys
  // under it, not the section: beside model.d_model=64 it is no conflict, beside
  // model.num_heads=4 it is. Values that are no valid YAML stay as given (refused when applied).
  struct Setting {
    std::string key, value;
    size_t index;  // the override
  };
  std::vector<Setting> settings;
  auto key_of = [&](const std::string& o) { return trim(o.substr(0, o.find('='))); };
  const std::function<void(const std::string&, const YAML::Node&, size_t)> add_section =
      [&](const std::string& section, const YAML::Node& map, size_t i) {
        for (auto it = map.begin(); it != map.end(); ++it) {
          const YAML::Node k = it->first;
          const YAML::Node v = it->second;
          if (!k.IsScalar()) continue;  // (refused when applied)
          const std::string key = section + "." + k.Scalar();
          if (!config_is_section(key))
            settings.push_back({key, YAML::Dump(v), i});
          else if (v.IsMap())
            add_section(key, v, i);  // (else kept as the defaults, or refused when applied)
        }
      };
  for (size_t i = 0; i < overrides.size(); ++i) {
    const std::string& o = overrides[i];
    const auto eq = o.find('=');
    const std::string key = key_of(o);
    const std::string text = eq == std::string::npos ? std::string() : trim(o.substr(eq + 1));
    YAML::Node value;
    bool parsed = false;
    try {
      value = YAML::Load(text);
      parsed = true;
    } catch (const YAML::Exception&) {
    }
    if (key.empty() || !config_is_section(key))
      settings.push_back({key, parsed ? YAML::Dump(value) : text, i});
    else if (parsed && value.IsMap())
      add_section(key, value, i);  // (else refused when applied: a section takes a mapping)
  }
  // (maps, not all pairs: a script may pass thousands of overrides)
  std::map<std::string, size_t> first;     // a key -> its first setting
  std::map<std::string, size_t> sections;  // each section above a key -> a setting under it
  auto both = [&](size_t j, size_t i, const std::string& longer) {
    return std::invalid_argument("longnet " + command + ": '" + text_cut(overrides[j]) + "' and '" +
                                 text_cut(overrides[i]) + "' both set " + longer +
                                 "; give each key once");
  };
  for (size_t n = 0; n < settings.size(); ++n) {
    const Setting& s = settings[n];
    const std::string& b = s.key;
    if (const auto it = first.find(b); it != first.end()) {
      const Setting& f = settings[it->second];
      // The same value twice loses nothing (scripts repeat a shared setting); a key twice in
      // one override is refused when it is applied.
      if (f.index == s.index || f.value == s.value) continue;
      if (key_of(overrides[f.index]) == b && key_of(overrides[s.index]) == b)
        throw std::invalid_argument("longnet " + command + ": " + b +
                                    " is overridden twice with different values ('" +
                                    text_cut(overrides[f.index]) + "' and '" +
                                    text_cut(overrides[s.index]) + "'); give it once");
      throw both(f.index, s.index, b);
    }
    if (b.empty()) continue;  // (refused with its own message when applied)
    for (size_t dot = b.find('.'); dot != std::string::npos; dot = b.find('.', dot + 1))
      if (const auto it = first.find(b.substr(0, dot)); it != first.end())
        throw both(settings[it->second].index, s.index, b);
    if (const auto it = sections.find(b); it != sections.end())
      throw both(settings[it->second].index, s.index, settings[it->second].key);
    first.emplace(b, n);
    for (size_t dot = b.find('.'); dot != std::string::npos; dot = b.find('.', dot + 1))
      sections.emplace(b.substr(0, dot), n);
  }
}

void refuse_several_ranks(const std::string& command) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {  // (Open MPI's; MPICH's)
    const char* v = std::getenv(name);
    if (!v) continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end != v && n > 1)
      throw std::invalid_argument("longnet " + command + ": started as one of " +
                                  std::to_string(n) +
                                  " ranks (mpirun -np); it uses every core of its machine by "
                                  "itself, and the copies would write one output together: run "
                                  "it once, without mpirun (or with -np 1)");
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
        diff = "rank " + std::to_string(other) + " was started with " + text_cut(a[i]) +
               ", rank 0 with " + text_cut(b[i]);
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
