// The validation split through train/token_dataset.h (see eval_data.h): the one place evaluation
// touches the data format. Any format training reads (a sharded dataset, llm.c shards, a byte
// file); reads are pread-based and checked like training's.
#include "longnet/train/eval_data.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "longnet/train/dataset_check.h"
#include "longnet/train/dataset_manifest.h"
#include "longnet/train/token_dataset.h"

namespace longnet {

ValidationTokens validation_tokens_open(const std::string& path, int64_t model_vocab) {
  // (An empty validation split is named by the caller, which says how many tokens it needs.)
  std::shared_ptr<TokenDataset> data =
      TokenDataset::open(path, "auto", /*need_val=*/false, /*need_train=*/false);
  if (model_vocab > 0) data->bound_ids_by_model(model_vocab);
  // A damaged validation shard would give wrong scores, not an error: its checksums are checked
  // first (the split is small; training checks both splits at its start).
  const auto [bad, why] = data->verify_checksums(0, 1, DataSplit::kVal);
  if (bad >= 0) throw std::runtime_error(why);
  auto mu = std::make_shared<std::mutex>();  // a TokenDataset is read by one thread at a time
  ValidationTokens v;
  v.size = data->tokens(DataSplit::kVal);
  v.vocab_size = data->vocab_bound();
  v.description = data->summary();
  if (const DatasetManifest* m = data->manifest()) {
    manifest_vocab_check(*m, data->format() + " dataset '" + data->path() + "'", "");
    v.tokenizer_spec = m->tokenizer_spec;
    v.tokenizer_hash = m->tokenizer_hash;
  } else if (data->format() == "legacy") {
    v.tokenizer_spec = v.tokenizer_hash = "bytes";
  }
  v.read = [data, mu](int64_t start, int64_t count) {
    const int64_t size = data->tokens(DataSplit::kVal);
    if (start < 0 || count < 0 || start + count > size)
      throw std::out_of_range("validation tokens [" + std::to_string(start) + ", " +
                              std::to_string(start + count) + ") outside the split of " +
                              std::to_string(size) + " in " + data->path());
    auto out = at::empty({count}, at::kLong);
    std::lock_guard<std::mutex> lock(*mu);
    data->read(DataSplit::kVal, start, count, out.data_ptr<int64_t>());
    return out;
  };
  return v;
}

}  // namespace longnet
