// The C++ side of the Python package's parity test (tests/python/test_package.py): builds the
// LongNetLM of a `longnet train` checkpoint as the trainer does, loads its parameters, and writes
// its logits on given tokens (float32, CPU, eval mode) for Python to compare with its own model.
//
//   lm_logits CHECKPOINT TOKENS OUT
//     TOKENS: torch.save({"tokens": (batch, seq_len) int64}) from Python
//     OUT:    a torch.load-able dict {"logits": (batch, seq_len, vocab_size) float32}
#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "longnet/core/longnet_model.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/config.h"

namespace longnet {
namespace {

std::vector<char> file_read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TORCH_CHECK(f, "lm_logits: cannot open ", path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

int run(const std::string& checkpoint, const std::string& tokens_path, const std::string& out) {
  auto state = checkpoint_read(checkpoint);
  TORCH_CHECK(state.contains("config") && state.contains("model"), "lm_logits: ", checkpoint,
              " has no 'config' or 'model' entry");
  const auto config = config_parse(state.at("config").toStringRef(), checkpoint + " (config)");
  LongNetLM model(config.model);
  auto params = state.at("model").toGenericDict();
  {
    at::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      TORCH_CHECK(params.contains(p.key()), "lm_logits: ", checkpoint, " has no parameter '",
                  p.key(), "'");
      auto t = params.at(p.key()).toTensor();
      TORCH_CHECK(t.sizes() == p.value().sizes(), "lm_logits: parameter '", p.key(), "' has shape ",
                  t.sizes(), " in the checkpoint, ", p.value().sizes(), " in the model");
      p.value().copy_(t);
    }
    TORCH_CHECK(params.size() == model->named_parameters().size(), "lm_logits: ", checkpoint,
                " holds ", params.size(), " parameters, the model ",
                model->named_parameters().size());
  }
  model->eval();

  auto input = torch::pickle_load(file_read(tokens_path));
  TORCH_CHECK(input.isGenericDict(), "lm_logits: ", tokens_path, " must hold a dict");
  auto tokens = input.toGenericDict().at("tokens").toTensor();  // (B, N) int64
  at::Tensor logits;
  {
    at::NoGradGuard no_grad;
    logits = model->forward(tokens);  // (B, N, vocab) float32
  }
  c10::Dict<std::string, at::Tensor> result;
  result.insert("logits", logits.contiguous());
  const auto bytes = torch::pickle_save(result);
  std::ofstream f(out, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  TORCH_CHECK(f.good(), "lm_logits: cannot write ", out);
  std::cout << "lm_logits: " << config.model.variant << ", logits " << logits.sizes() << " -> "
            << out << "\n";
  return 0;
}

}  // namespace
}  // namespace longnet

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: lm_logits CHECKPOINT TOKENS OUT\n";
    return 2;
  }
  try {
    return longnet::run(argv[1], argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::cerr << "lm_logits: error: " << e.what() << "\n";
    return 1;
  }
}
