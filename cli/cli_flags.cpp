// Strict flag parsing for the CLI (see cli_flags.h).
#include "cli/cli_flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace longnet {

int64_t parse_int_strict(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
    throw std::invalid_argument(what + ": '" + text + "' is not a whole number");
  return static_cast<int64_t>(v);
}

double parse_double_strict(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v))
    throw std::invalid_argument(what + ": '" + text + "' is not a finite number");
  return v;
}

void CliFlags::add(const std::string& name, const std::string& default_value,
                   const std::string& help) {
  flags_[name] = Flag{default_value, help, false, false};
  order_.push_back(name);
}

void CliFlags::add_switch(const std::string& name, const std::string& help) {
  flags_[name] = Flag{"0", help, true, false};
  order_.push_back(name);
}

void CliFlags::add_hidden(const std::string& name, const std::string& default_value,
                          const std::string& help) {
  add(name, default_value, help);
  flags_[name].hidden = true;
}

void CliFlags::add_switch_hidden(const std::string& name, const std::string& help) {
  add_switch(name, help);
  flags_[name].hidden = true;
}

void CliFlags::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto it = flags_.find(name);
    if (it == flags_.end())
      throw std::invalid_argument("longnet " + command_ + ": unknown flag --" + name +
                                  " (see --help for the flags it takes)");
    Flag& f = it->second;
    if (f.is_switch) {
      if (inline_value)
        throw std::invalid_argument("longnet " + command_ + ": --" + name + " takes no value");
      f.value = "1";
    } else if (inline_value) {
      f.value = value;
    } else {
      if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
        throw std::invalid_argument("longnet " + command_ + ": --" + name + " needs a value");
      f.value = args[++i];
    }
    f.given = true;
  }
}

const CliFlags::Flag& CliFlags::find(const std::string& name) const {
  auto it = flags_.find(name);
  if (it == flags_.end()) throw std::logic_error("flag --" + name + " was not declared");
  return it->second;
}

std::string CliFlags::get(const std::string& name) const {
  return find(name).value;
}
bool CliFlags::get_switch(const std::string& name) const {
  return find(name).value == "1";
}
bool CliFlags::given(const std::string& name) const {
  return find(name).given;
}

int64_t CliFlags::get_int(const std::string& name) const {
  return parse_int_strict(get(name), "longnet " + command_ + " --" + name);
}

double CliFlags::get_double(const std::string& name) const {
  return parse_double_strict(get(name), "longnet " + command_ + " --" + name);
}

std::vector<int64_t> CliFlags::get_int_list(const std::string& name) const {
  std::vector<int64_t> out;
  std::stringstream ss(get(name));
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(parse_int_strict(item, "longnet " + command_ + " --" + name));
  if (out.empty())
    throw std::invalid_argument("longnet " + command_ + " --" + name +
                                ": expected a comma-separated list of whole numbers");
  return out;
}

std::string CliFlags::usage() const {
  return "usage: longnet " + command_ + " [flags]\n" + flags_usage();
}

std::string CliFlags::flags_usage() const {
  std::ostringstream s;
  for (const auto& name : order_) {
    const Flag& f = flags_.at(name);
    if (f.hidden) continue;
    s << "  --" << name;
    if (!f.is_switch) s << " (default " << (f.value.empty() ? "none" : f.value) << ")";
    s << "\n      " << f.help << "\n";
  }
  return s.str();
}

}  // namespace longnet
