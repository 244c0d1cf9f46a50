// A test driver that forges training checkpoints whose integrity record still holds (the edit of
// a file made elsewhere, or of a run that diverged), for tests/checkpoint_guard.sh:
//   checkpoint_forge SRC.ckpt DST_DIR CASE
// reads SRC, changes one entry as CASE says, and writes it to DST_DIR under SRC's step.
#include <ATen/ATen.h>

#include <iostream>
#include <stdexcept>
#include <string>

#include "longnet/train/checkpoint_files.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: checkpoint_forge SRC.ckpt DST_DIR CASE\n";
    return 2;
  }
  try {
    const std::string src = argv[1], dir = argv[2], c = argv[3];
    auto state = longnet::checkpoint_read(src);
    auto model = state.at("model").toGenericDict();
    auto optim = state.at("optimizer").toGenericDict();
    const std::string first = model.begin()->key().toStringRef();
    auto param = [&] { return model.at(first).toTensor().clone(); };
    auto moments = [&] { return optim.at(first).toGenericDict(); };
    if (c == "param_nan") {
      auto t = param();
      t.view(-1)[0] = NAN;
      model.insert_or_assign(first, t);
    } else if (c == "param_inf") {
      auto t = param();
      t.view(-1)[t.numel() - 1] = -INFINITY;
      model.insert_or_assign(first, t);
    } else if (c == "param_int") {
      model.insert_or_assign(first, param().to(at::kInt));
    } else if (c == "opt_nan") {
      auto t = moments().at("exp_avg").toTensor().clone();
      t.view(-1)[0] = NAN;
      moments().insert_or_assign("exp_avg", t);
    } else if (c == "opt_negative") {
      moments().insert_or_assign("exp_avg_sq", -at::ones_like(param()));
    } else if (c == "opt_shape") {
      moments().insert_or_assign("exp_avg", at::zeros({7}));
    } else if (c == "rng_float") {
      state.insert_or_assign("rng_cpu", state.at("rng_cpu").toTensor().to(at::kFloat));
    } else if (c == "rng_rows") {
      const auto r = state.at("rng_cpu").toTensor();
      state.insert_or_assign("rng_cpu", at::cat({r, r}));
    } else if (c == "rng_short") {
      state.insert_or_assign("rng_cpu", state.at("rng_cpu").toTensor().narrow(1, 0, 10).clone());
    } else if (c == "rng_zero") {
      state.insert_or_assign("rng_cpu", at::zeros_like(state.at("rng_cpu").toTensor()));
    } else if (c == "grid_zero") {
      state.insert_or_assign("grid", c10::List<int64_t>({0, 0}));
    } else if (c == "norm_huge") {  // finite, but the logits overflow float32
      for (const auto& kv : model)
        if (kv.key().toStringRef().find("norm") != std::string::npos &&
            kv.key().toStringRef().find("weight") != std::string::npos)
          model.insert_or_assign(kv.key(), at::full_like(kv.value().toTensor(), 3e38));
    } else if (c == "bad_steps") {
      state.insert_or_assign("bad_steps", state.at("step").toInt() + 1);
    } else {
      std::cerr << "checkpoint_forge: unknown case " << c << "\n";
      return 2;
    }
    longnet::checkpoint_write(dir, state.at("step").toInt(), state, 1 << 20);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_forge: " << e.what() << "\n";
    return 1;
  }
}
