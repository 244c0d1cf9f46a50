// The validation split through train/token_data.h's TokenFile (see eval_data.h): the one place
// evaluation touches the data format.
#include "train/eval_data.h"

#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>

#include "train/token_data.h"

namespace longnet {

ValidationTokens validation_tokens_open(const std::string& path) {
  auto file = std::make_shared<TokenFile>(path);
  ValidationTokens v;
  v.size = int64_t(file->val().size());
  v.vocab_size = TokenFile::kVocabSize;
  v.description = path + " (validation: " + std::to_string(v.size) + " tokens)";
  v.read = [file](int64_t start, int64_t count) {
    const auto val = file->val();
    if (start < 0 || count < 0 || start + count > int64_t(val.size()))
      throw std::out_of_range("validation tokens [" + std::to_string(start) + ", " +
                              std::to_string(start + count) + ") outside the split of " +
                              std::to_string(val.size()) + " in " + file->path());
    auto bytes = at::from_blob(const_cast<uint8_t*>(val.data() + start), {count}, at::kByte);
    return bytes.to(at::kLong);
  };
  return v;
}

}  // namespace longnet
