// Strict flag parsing for the CLI (see cli_flags.h).
#include "longnet/cli/cli_flags.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace longnet {

int64_t parse_int_strict(const std::string& text, const std::string& what) {
  const char* b = text.data() + (!text.empty() && text[0] == '+' ? 1 : 0);
  const char* e = text.data() + text.size();
  int64_t v = 0;
  auto r = std::from_chars(b, e, v);
  if (text.empty() || b == e || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range) ||
      r.ptr != e)
    throw std::invalid_argument(what + ": '" + text + "' is not a whole number");
  if (r.ec == std::errc::result_out_of_range)
    throw std::invalid_argument(what + ": '" + text + "' is out of range for a 64-bit number");
  return v;
}

double parse_double_strict(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const bool plain = !text.empty() && text.find_first_of(" \t\n\r\f\vxXpP") == std::string::npos;
  double v = plain ? std::strtod(text.c_str(), &end) : 0.0;
  if (!plain || end != text.c_str() + text.size())
    throw std::invalid_argument(what + ": '" + text + "' is not a number");
  // (A value below the smallest normal double, 1e-320 say, underflows with ERANGE to a
  // subnormal or 0: taken as that, as the config reader takes it; the flag's range decides.)
  const bool underflow = errno == ERANGE && std::isfinite(v) && std::fabs(v) < 1.0;
  if (!std::isfinite(v) || (errno == ERANGE && !underflow))
    throw std::invalid_argument(what + ": '" + text + "' is " +
                                (std::isnan(v)
                                     ? "not a number (nan)"
                                     : "not finite (a double holds at most about 1.8e308)"));
  return v;
}

void CliFlags::range_check(const std::string& name, double v, const std::string& shown) const {
  const OptionSpec& r = find(name).range;
  if (!r.contains(v))
    throw std::invalid_argument("longnet " + command_ + " --" + name + ": " + shown +
                                " is out of range; it must be " + r.range_text());
}

void CliFlags::add(const std::string& name, const std::string& default_value,
                   const std::string& help, const OptionSpec& range) {
  flags_[name] = Flag{default_value, help, false, false, false, false, range};
  order_.push_back(name);
}

void CliFlags::add_switch(const std::string& name, const std::string& help) {
  flags_[name] = Flag{"0", help, true, false, false, false, OptionSpec{}};
  order_.push_back(name);
}

void CliFlags::add_hidden(const std::string& name, const std::string& default_value,
                          const std::string& help, const OptionSpec& range) {
  add(name, default_value, help, range);
  flags_[name].hidden = true;
}

void CliFlags::add_switch_hidden(const std::string& name, const std::string& help) {
  add_switch(name, help);
  flags_[name].hidden = true;
}

void CliFlags::allow_empty(const std::string& name) {
  auto it = flags_.find(name);
  if (it == flags_.end()) throw std::logic_error("CliFlags::allow_empty: no flag --" + name);
  it->second.empty_ok = true;
}

void CliFlags::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      // "-checkpoint X" would otherwise be two positionals the command may ignore; "-" (stdin)
      // stays a positional.
      if (a.size() > 1 && a[0] == '-')
        throw std::invalid_argument("longnet " + command_ + ": unexpected argument '" + a +
                                    "' (flags start with --; see --help)");
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
    // The last value would silently win: say so instead.
    if (f.given)
      throw std::invalid_argument("longnet " + command_ + ": --" + name +
                                  " given twice; give it once");
    const std::string default_value = f.value;
    if (f.is_switch) {
      if (inline_value)
        throw std::invalid_argument("longnet " + command_ + ": --" + name + " takes no value");
      f.value = "1";
    } else if (inline_value) {
      f.value = value;
    } else {
      if (i + 1 >= args.size())
        throw std::invalid_argument("longnet " + command_ + ": --" + name + " needs a value");
      if (args[i + 1].rfind("--", 0) == 0)
        throw std::invalid_argument(
            "longnet " + command_ + ": --" + name + " needs a value, and '" + args[i + 1] +
            "' after it reads as a flag; for a value that starts with --, write --" + name +
            "=VALUE (e.g. --" + name + "='" + args[i + 1] + "')");
      f.value = args[++i];
    }
    // An empty value would read as "not given" and silently mean the default.
    if (!f.is_switch && f.value.empty() && !f.empty_ok)
      throw std::invalid_argument(
          "longnet " + command_ + ": --" + name + " has an empty value; give one" +
          (default_value.empty()
               ? std::string(", or leave the flag out where it is optional")
               : ", or leave the flag out for its default (" + default_value + ")"));
    f.given = true;
  }
}

void CliFlags::no_positional() const {
  if (!positional_.empty())
    throw std::invalid_argument("longnet " + command_ + ": unexpected argument '" +
                                positional_.front() +
                                "'; this command takes only --flags (see --help)");
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
std::string CliFlags::values_text(const std::vector<std::string>& skip) const {
  std::string out;
  for (const auto& name : order_) {
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    const Flag& flag = find(name);
    std::string value;  // (one line per flag: a newline is written as \n, a backslash as \\)
    for (char c : flag.value)
      value += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    out += "--" + name + "=" + value + "\n";
  }
  return out;
}

int64_t CliFlags::int_value(const std::string& name, const std::string& text) const {
  try {
    const int64_t v = parse_int_strict(text, "longnet " + command_ + " --" + name);
    range_check(name, double(v), text);
    return v;
  } catch (const std::invalid_argument&) {
    // A whole number past 64 bits: the flag's own range, when it has one, says what works.
    const size_t digits = !text.empty() && (text[0] == '+' || text[0] == '-') ? 1 : 0;
    if (text.size() > digits && text.find_first_not_of("0123456789", digits) == std::string::npos) {
      const double big = std::strtod(text.c_str(), nullptr);
      if (std::isfinite(big)) range_check(name, big, text);
    }
    throw;
  }
}

int64_t CliFlags::get_int(const std::string& name) const {
  return int_value(name, get(name));
}

double CliFlags::get_double(const std::string& name) const {
  const double v = parse_double_strict(get(name), "longnet " + command_ + " --" + name);
  range_check(name, v, get(name));
  return v;
}

std::vector<int64_t> CliFlags::get_int_list(const std::string& name) const {
  std::vector<int64_t> out;
  const std::string text = get(name);
  if (!text.empty() && text.back() == ',')
    throw std::invalid_argument("longnet " + command_ + " --" + name + ": '" + text +
                                "' ends with a comma; give a comma-separated list of whole "
                                "numbers (e.g. 2048,4096)");
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    out.push_back(int_value(name, item));
    if (out.size() > 4096)
      throw std::invalid_argument("longnet " + command_ + " --" + name + ": more than 4096 values");
  }
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
