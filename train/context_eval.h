// Loss against context length (the paper's long-context evaluation): windows of the validation
// split that END at the same positions, one per context length c, each scoring only its final
// T tokens, so every length is scored on the same tokens and the curve shows what the extra
// context buys:
//
//   validation:  ......[------------------ c_max ------------------]e.....
//                                         [------- c_2 ----------]e
//                                                    [--- c_1 ---]e
//   scored:                                               [- T -]e     (T <= min c)
//
// Inputs [e - c, e), targets one token later. With a sequence-parallel backend every rank holds
// its L = c / P tokens of each window (parallel/sequence_layout.h) and the sums are all-reduced.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "longnet/core/attention_backend.h"
#include "longnet/core/longnet_model.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/train/eval_data.h"

namespace longnet {

struct ContextEvalOptions {
  std::vector<int64_t> context_lens;  // tokens of context per window, each >= score_tokens
  int64_t score_tokens = 0;           // T; 0: the smallest context length
  int64_t windows = 4;                // window ends, spread evenly over the validation split
  int64_t batch_size = 1;             // windows per forward
  bool bf16_autocast = false;         // CUDA: the forward under bfloat16 autocast (as training)
};

struct ContextEvalRow;
// Called with each row as soon as its context length is done (progress; rows already printed
// survive a stop).
using ContextEvalRowDone = std::function<void(const ContextEvalRow&)>;
// Asked before every forward; true stops the evaluation there: the rows of the lengths already
// done are returned, the length in progress is dropped. Collective when the backend is (every
// rank must answer alike: agree on it across ranks inside the callback).
using ContextEvalStop = std::function<bool()>;

struct ContextEvalRow {
  int64_t context_len = 0;
  int64_t tokens = 0;         // scored tokens, all windows
  double loss = 0;            // mean cross-entropy per scored token, nats
  double bits_per_token = 0;  // loss / ln 2 (bits per byte for a byte vocabulary)
  double seconds = 0;         // wall time of this length's forwards
};

// The window ends for these options over `val_size` tokens: `windows` ends e with
// max(c) <= e <= val_size - 1, evenly spread. Throws std::invalid_argument when the split is too
// short for the longest context, or for that many windows without scoring a token twice.
std::vector<int64_t> context_eval_window_ends(const ContextEvalOptions& o, int64_t val_size);

// Evaluates model (eval mode, on grid.device) on every context length. Collective over the
// sequence-parallel group of `grid` when backend is sequence-parallel (every rank calls it).
std::vector<ContextEvalRow> context_eval(LongNetLM& model, const ValidationTokens& data,
                                         ProcessGrid& grid, AttentionBackend& backend,
                                         const ContextEvalOptions& o,
                                         const ContextEvalRowDone& on_row = nullptr,
                                         const ContextEvalStop& should_stop = nullptr);

}  // namespace longnet
