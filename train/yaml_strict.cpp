// Strict YAML scalars and yaml-cpp's traps (see yaml_strict.h).
#include "longnet/train/yaml_strict.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <set>
#include <stdexcept>
#include <vector>

#include "longnet/core/text.h"

namespace longnet {
namespace {

// ---- scalar parsing from raw text ----------------------------------------------------------

const std::regex kDecimalInt(R"([-+]?(0|[1-9][0-9]*))");
const std::regex kLeadingZeroInt(R"([-+]?0[0-9_]+)");
const std::regex kPrefixedInt(R"([-+]?0[xXoObB][0-9a-fA-F_]+)");
const std::regex kDecimalFloat(R"([-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)");
const std::regex kLeadingZeroFloat(R"([-+]?0[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?)");
const std::regex kNonFinite(R"([-+]?\.?(inf|Inf|INF|nan|NaN|NAN|infinity|Infinity))");
const std::set<std::string> kYaml11Bools = {"y",   "Y",   "yes",  "Yes",  "YES",   "n",    "N",
                                            "no",  "No",  "NO",   "on",   "On",    "ON",   "off",
                                            "Off", "OFF", "True", "TRUE", "False", "FALSE"};

void expect_scalar(const YAML::Node& n, const std::string& key, const std::string& where,
                   const std::string& expected, const std::string& example) {
  if (n.IsScalar()) return;
  std::string got = yaml_describe(n);
  if (n.IsNull())
    yaml_fail(where, key, "has no value; write " + expected + " (e.g. " + example + ")");
  yaml_fail(where, key, "expected " + expected + ", got " + got + " (e.g. " + example + ")");
}

// Quoted or explicitly tagged scalars are strings to YAML; numbers and booleans must be plain.
void expect_plain(const YAML::Node& n, const std::string& key, const std::string& where,
                  const std::string& expected) {
  if (n.Tag() == "?") return;
  if (n.Tag() == "!")
    yaml_fail(where, key,
              "expected " + expected + ", got " + yaml_describe(n) +
                  "; remove the quotes (or the '!' tag)");
  yaml_fail(
      where, key,
      "expected " + expected + ", got '" + n.Scalar() + "' tagged " + n.Tag() + "; remove the tag");
}

void reject_ambiguous_integer(const std::string& s, const std::string& key,
                              const std::string& where) {
  if (std::regex_match(s, kLeadingZeroInt))
    yaml_fail(where, key,
              "'" + s +
                  "' is ambiguous: YAML 1.1 reads a leading zero as octal, YAML 1.2 as decimal; "
                  "write the number without leading zeros");
  if (std::regex_match(s, kPrefixedInt))
    yaml_fail(where, key, "'" + s + "' is not a plain decimal number; write it in decimal");
}

// A line whose first non-blank character is ',' outside any [ ] or { } list: yaml-cpp (0.8)
// loops on several forms of it ('- a\n,b', 'a\n# c\n,b'), and in a config it never means
// anything. Tracks flow brackets and quoted scalars (which start a node: at a line start or after
// one of : - [ { , ?) and skips comments.
void reject_line_start_commas(const std::string& text, const std::string& name) {
  // (also bounds the nesting of [ ] and { }: yaml-cpp recurses per level)
  int depth = 0;
  char quote = 0, prev = '\n';  // prev: the last non-blank character of this line
  size_t line_no = 1;
  auto node_start = [&prev] { return std::strchr("\n:-[{,?", prev) != nullptr; };
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '\n') {
      ++line_no;
      prev = '\n';
      continue;
    }
    if (quote != 0) {
      if (quote == '"' && ch == '\\')
        ++i;
      else if (quote == '\'' && ch == '\'' && i + 1 < text.size() && text[i + 1] == '\'')
        ++i;
      else if (ch == quote)
        quote = 0;
      prev = ch;
      continue;
    }
    if (ch == ' ' || ch == '\t' || ch == '\r') continue;
    if (ch == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(text[i - 1])))) {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (prev == '\n' && depth == 0) {
      // The line's first token, after node properties ('!tag', '&anchor'), if any.
      size_t j = i;
      while (j < text.size() && (text[j] == '!' || text[j] == '&')) {
        j = std::min(text.find_first_of(" \t\r\n,[]{}", j), text.size());
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
      }
      if (j < text.size() && text[j] == ',')
        throw std::invalid_argument(name + ":" + std::to_string(line_no) +
                                    ": YAML syntax error: a line starting with ',' outside any "
                                    "[ ] or { } list (fix the YAML at that line)");
    }
    // prev becomes the character's role: itself where it is an indicator, 'a' where it is part
    // of a plain scalar (outside brackets ':', '-', '?' only count before a blank, and '[', '{',
    // quotes only where a node starts: in 'k: /["' the '[' and '"' are plain).
    const char next = i + 1 < text.size() ? text[i + 1] : '\n';
    const bool blank_next = next == ' ' || next == '\t' || next == '\r' || next == '\n';
    char role = ch;
    if ((ch == '"' || ch == '\'') && node_start())
      quote = ch;
    else if ((ch == '[' || ch == '{') && (depth > 0 || node_start())) {
      if (++depth > kMaxFlowDepth)
        throw std::invalid_argument(name + ":" + std::to_string(line_no) +
                                    ": lists or mappings nested more than " +
                                    std::to_string(kMaxFlowDepth) +
                                    " deep; a config needs a few levels (fix the YAML at that "
                                    "line)");
    } else if ((ch == ']' || ch == '}') && depth > 0)
      --depth;
    else if (depth == 0 && (std::strchr("\"'[{,", ch) != nullptr ||
                            (std::strchr(":-?", ch) != nullptr && !blank_next)))
      role = 'a';
    prev = role;
  }
}

}  // namespace

[[noreturn]] void yaml_fail(const std::string& where, const std::string& key,
                            const std::string& msg) {
  throw std::invalid_argument(where + ": " + key + ": " + msg);
}

// Shortest text that reads back to the same double.
std::string double_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string yaml_double_text(double v) {
  std::string s = double_text(v);
  // Keep it visibly a float, also to YAML 1.1 readers (PyYAML): "0.0" not "0", "6.0e-04" not
  // "6e-04".
  if (s.find('.') == std::string::npos) {
    auto e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

// How a value looked in the file, for "got ..." in messages.
std::string yaml_describe(const YAML::Node& n) {
  if (n.IsNull()) return "an empty value";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.Tag() == "!") return "the quoted string \"" + n.Scalar() + "\"";
  return "'" + n.Scalar() + "'";
}

std::string YamlSource::at(const YAML::Mark& mark) const {
  if (!override.empty())  // (a long one cut: the message must stay readable)
    return "command-line override '" + printable_text(text_cut(override)) + "'";
  if (mark.is_null()) return file;
  return file + ":" + std::to_string(mark.line + 1);
}

// A number's text is short: a longer one is refused before the patterns read it (std::regex
// recurses per character, and 100,000 digits overflow the stack).
constexpr size_t kMaxNumberText = 100;
void reject_long_number(const std::string& s, const std::string& key, const std::string& where,
                        const std::string& example) {
  if (s.size() > kMaxNumberText)
    yaml_fail(where, key,
              "'" + s.substr(0, 24) + "...' (" + std::to_string(s.size()) +
                  " characters) is no number this key takes; write one of at most " +
                  std::to_string(kMaxNumberText) + " characters (e.g. " + example + ")");
}

int64_t yaml_int(const YAML::Node& n, const std::string& key, const std::string& where,
                 const std::string& example) {
  expect_scalar(n, key, where, "a whole number", example);
  expect_plain(n, key, where, "a whole number");
  const std::string& s = n.Scalar();
  reject_long_number(s, key, where, example);
  reject_ambiguous_integer(s, key, where);
  if (std::regex_match(s, kDecimalInt)) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto r = std::from_chars(b, s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      yaml_fail(where, key, "'" + s + "' is out of range for a 64-bit whole number");
    return v;
  }
  if (std::regex_match(s, kDecimalFloat)) {
    double d = std::strtod(s.c_str(), nullptr);
    std::string hint = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15
                           ? "; write " + std::to_string(static_cast<int64_t>(d))
                           : "; write a whole number (e.g. " + example + ")";
    yaml_fail(where, key, "expected a whole number, got the float '" + s + "'" + hint);
  }
  yaml_fail(where, key,
            "expected a whole number, got " + yaml_describe(n) + " (e.g. " + example + ")");
}

double yaml_float(const YAML::Node& n, const std::string& key, const std::string& where,
                  const std::string& example) {
  expect_scalar(n, key, where, "a number", example);
  expect_plain(n, key, where, "a number");
  const std::string& s = n.Scalar();
  reject_long_number(s, key, where, example);
  if (std::regex_match(s, kPrefixedInt)) reject_ambiguous_integer(s, key, where);
  if (std::regex_match(s, kLeadingZeroFloat))
    reject_ambiguous_integer(s.substr(0, s.find_first_of(".eE")), key, where);
  if (std::regex_match(s, kNonFinite))
    yaml_fail(where, key, "'" + s + "' is not a finite number (e.g. " + example + ")");
  if (!std::regex_match(s, kDecimalFloat))
    yaml_fail(where, key, "expected a number, got " + yaml_describe(n) + " (e.g. " + example + ")");
  double v = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(v)) yaml_fail(where, key, "'" + s + "' is out of range for a number");
  return v;
}

bool yaml_bool(const YAML::Node& n, const std::string& key, const std::string& where) {
  expect_scalar(n, key, where, "true or false", "true");
  expect_plain(n, key, where, "true or false");
  const std::string& s = n.Scalar();
  if (s == "true") return true;
  if (s == "false") return false;
  if (kYaml11Bools.count(s))
    yaml_fail(where, key,
              "'" + s +
                  "' is ambiguous: YAML 1.1 reads it as a boolean, YAML 1.2 as a string; write "
                  "true or false");
  yaml_fail(where, key, "expected true or false, got " + yaml_describe(n));
}

std::string yaml_string(const YAML::Node& n, const std::string& key, const std::string& where,
                        const std::string& example) {
  expect_scalar(n, key, where, "a string", example);
  // A tag would be dropped silently ('!custom gelu' read as gelu); quotes ('!') and YAML's own
  // string tag (!!str) are fine.
  if (n.Tag() != "?" && n.Tag() != "!" && n.Tag() != "tag:yaml.org,2002:str")
    yaml_fail(where, key,
              "expected a string, got '" + n.Scalar() + "' tagged " + n.Tag() + "; remove the tag");
  // Escapes in a double-quoted string ("runs\0x", "a\nb") decode to control characters, which
  // the file itself may not hold: a path would be cut at a NUL or hold a line break.
  for (const unsigned char ch : n.Scalar())
    if (ch < 0x20 || ch == 0x7f)
      yaml_fail(where, key,
                "the string holds control character " + std::to_string(int(ch)) +
                    " (an escape such as \\0, \\n or \\t in double quotes); paths and "
                    "names take none");
  // Checkpoints keep the config as text, which Python's torch.load reads as UTF-8: a byte that
  // is no UTF-8 (a path from a Latin-1 system) would make every checkpoint unreadable there.
  const std::string& s = n.Scalar();
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_at(s, i);
    if (len == 0)
      yaml_fail(where, key,
                "the string holds bytes that are no UTF-8 (at byte " + std::to_string(i) + ": " +
                    printable_text(s.substr(i, 4)) +
                    "); checkpoints keep the config as text that Python reads as UTF-8: rename "
                    "the path, or reach it through a link whose name is UTF-8");
    i += len;
  }
  return s;
}

// Edits (insert, delete, substitute, swap two neighbours) between a and b: "modle" is 1 from
// "model".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// A typo is a few edits away, or a prefix ("warmup" for "warmup_steps").
bool looks_like(const std::string& typed, const std::string& known) {
  if (typed.size() > 2 * known.size() + 3) return false;  // (and no n x m table for a long key)
  size_t allowed = std::min<size_t>(3, std::max<size_t>(1, typed.size() / 3));
  if (edit_distance(typed, known) <= allowed) return true;
  return typed.size() >= 3 && known.rfind(typed, 0) == 0;
}

// yaml-cpp (0.7, 0.8) never returns, eating memory, when a document's first token is a ','
// (possibly after a byte-order mark, a tag or an anchor) or a ',' follows a document's root flow
// collection or quoted scalar ('[a] ,b', '"x" ,b'), and misreads control characters (all found by
// tests/fuzz). Reject those before it parses: control characters anywhere; lines starting with
// ',' outside brackets; and, skipping blank, comment and directive lines ('%' first on a line,
// which yaml-cpp reads as a directive even inside a document and then expects a new one) and
// document markers, any document that does not start with a plain key.
void yaml_reject_parser_traps(const std::string& text, const std::string& name) {
  size_t line_no = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch == '\n') ++line_no;
    if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f)
      throw std::invalid_argument(name + ":" + std::to_string(line_no) + ": control character " +
                                  std::to_string(int(ch)) + " in the file; a config is YAML text");
    // yaml-cpp does not end a line at a carriage return alone: a comment line ended by one would
    // swallow the lines after it unseen (a file of such lines reads as empty: every default).
    if (ch == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'))
      throw std::invalid_argument(
          name + ":" + std::to_string(line_no) +
          ": a carriage return not followed by a line feed (old Mac line endings?); end lines "
          "with \\n or \\r\\n");
  }
  reject_line_start_commas(text, name);
  bool at_start = true;
  size_t pos = 0;
  line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string rest = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line_no == 1 && rest.rfind("\xEF\xBB\xBF", 0) == 0) rest = rest.substr(3);  // BOM
    const bool indented = !rest.empty() && (rest[0] == ' ' || rest[0] == '\t');
    auto trim = [&rest](size_t from) {
      size_t j = rest.find_first_not_of(" \t\r", from);
      rest = j == std::string::npos ? "" : rest.substr(j);
    };
    trim(0);
    if (rest.empty() || rest[0] == '#') continue;
    if (rest[0] == '%') {  // yaml-cpp takes it for a directive even inside a document
      at_start = true;
      continue;
    }
    for (const char* marker : {"---", "..."})
      if (rest.rfind(marker, 0) == 0 && (rest.size() == 3 || rest[3] == ' ' || rest[3] == '\t')) {
        at_start = true;
        trim(3);
      }
    // Node properties (tags, anchors) before a document's first token.
    while (at_start && !rest.empty() && (rest[0] == '!' || rest[0] == '&')) {
      size_t j = rest.find_first_of(" \t,[]{}");
      if (j == std::string::npos) {
        rest.clear();
        break;
      }
      trim(j);
    }
    if (rest.empty() || rest[0] == '#') continue;
    // A config is a block mapping of sections, so a document must start with a plain key.
    // Anything else there ('[...]', '{...}', a quoted scalar, '- ', ',', '? ', ...) is refused:
    // yaml-cpp loops on a ',' after such a root node ('[a] ,b', '"x" ,b', '[] !t ,b').
    const bool block_entry = rest[0] == '-' && (rest.size() == 1 || rest[1] == ' ' ||
                                                rest[1] == '\t' || rest[1] == '\r');
    // ... and that key's ':' (followed by a blank or the end of the line) is on this line.
    auto has_key_colon = [](std::string line) {
      const size_t comment = line.find(" #");
      if (comment != std::string::npos) line.resize(comment);
      for (size_t c = line.find(':'); c != std::string::npos; c = line.find(':', c + 1))
        if (c + 1 == line.size() || std::strchr(" \t\r", line[c + 1]) != nullptr) return true;
      return false;
    };
    // ... in the first column (yaml-cpp loops on '  r:\n"x",', where the line after an
    // indented root mapping dedents past it).
    if (at_start && (block_entry || std::strchr("[]{},?:|>'\"*@`", rest[0]) != nullptr ||
                     !has_key_colon(rest) || indented))
      throw std::invalid_argument(name + ":" + std::to_string(line_no) +
                                  ": the config must be a mapping of sections (model:, data:, "
                                  "...), each key plain at the start of its line; this document "
                                  "starts with '" +
                                  (indented ? std::string("an indented key") : rest.substr(0, 1)) +
                                  "' (fix the YAML at that line)");
    at_start = false;
  }
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LONGNET_HAS_ASAN 1
#endif
#endif
#ifndef LONGNET_HAS_ASAN
#define LONGNET_HAS_ASAN 0
#endif

// yaml-cpp can loop forever on malformed input; the known traps are caught above, and this
// bounds the unknown ones: the config is parsed once in a child process with a time and memory
// limit before this process parses it. Returns normally when the child finished.
void yaml_parse_probe(const std::string& name, const std::function<void()>& parse,
                      bool hang_for_tests) {
  const pid_t pid = ::fork();
  if (pid < 0) return;  // no child: parse in-process only
  if (pid == 0) {
#if !defined(__SANITIZE_ADDRESS__) && !LONGNET_HAS_ASAN
    // 2 GiB beyond the address space already mapped (with CUDA libraries loaded that is
    // gigabytes). (AddressSanitizer reserves terabytes of address space; under it only the
    // time limit.)
    size_t mapped_pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%zu", &mapped_pages) != 1) mapped_pages = 0;
      std::fclose(f);
    }
    if (mapped_pages > 0) {  // (unknown: only the time limit)
      const size_t limit = mapped_pages * size_t(::sysconf(_SC_PAGESIZE)) + (size_t(2) << 30);
      struct rlimit mem = {limit, limit};
      ::setrlimit(RLIMIT_AS, &mem);
    }
#endif
    ::signal(SIGALRM, SIG_DFL);  // a fuzzer's own SIGALRM handler must not catch ours
    ::alarm(10);
    int code = 0;
    // Testing aid: the parser of an unknown malformed document that never returns.
    if (hang_for_tests)
      for (;;) ::pause();
    try {
      parse();
    } catch (const std::bad_alloc&) {
      code = 3;  // out of the memory limit
    } catch (...) {
      // A config error (or another exception): the parent's own parse raises and reports it.
    }
    ::_exit(code);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status) && WTERMSIG(status) != SIGALRM && WTERMSIG(status) != SIGKILL)
    throw std::invalid_argument(
        name + ": reading this config crashed the YAML parser's trial run (signal " +
        std::to_string(WTERMSIG(status)) +
        ", e.g. a stack overflow on extremely deep or long input); shorten the value or nesting "
        "it names, or fix the YAML");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
    throw std::invalid_argument(
        name +
        ": reading this config ran out of memory (2 GiB) in the YAML parser's trial run; "
        "the YAML is malformed or far too large, fix it");
  if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0))
    throw std::invalid_argument(
        name +
        ": the YAML parser did not finish on this config (it ran past 10 s); "
        "the YAML is malformed, e.g. a stray ',' after a value or an unclosed [ or {; fix it");
}

}  // namespace longnet
