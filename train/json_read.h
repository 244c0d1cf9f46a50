// A small strict JSON reader for the files longnet writes and reads back (dataset manifests):
// no dependency on an optional library, so that a machine without nlohmann-json still reads
// datasets built elsewhere. Strict: one value, no trailing text, no duplicate keys, nesting at
// most 64 deep, numbers kept as their text so that integers are range-checked exactly. Errors
// name the file, line and column.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace longnet {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;                                        // a string's value, a number's text
  std::vector<JsonValue> items;                            // an array's
  std::vector<std::pair<std::string, JsonValue>> members;  // an object's, in file order
  int line = 0;                                            // where the value starts

  // The member `key` of an object, or nullptr.
  const JsonValue* find(const std::string& key) const;
  const char* type_name() const;
};

struct JsonParseOptions {
  bool duplicate_keys = false;  // true: a key given twice is kept twice in `members`, in order
  int max_depth = 64;           // (the reader recurses: each level costs stack)
};

// Parses `text` (a whole document). Throws std::runtime_error "NAME:LINE:COL: what".
JsonValue json_parse(const std::string& text, const std::string& name,
                     const JsonParseOptions& options = {});

}  // namespace longnet
