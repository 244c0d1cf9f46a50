// Worker threads that tokenize batches of corpus units (documents or document parts), each with
// its own clone of the tokenizer, and give the results back in submission order: the output of
// `data build` is then the same whatever the number of workers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "longnet/train/dataset_manifest.h"

namespace longnet {

class Tokenizer;

struct TokenizeUnit {
  std::string text;        // emptied once tokenized
  int split = 0;           // 0 training, 1 validation
  bool separator = false;  // the separator ids go first
  bool after_cut = false;  // a piece after a cut of a longer text (Tokenizer::encode_after_cut)
  CorpusPosition pos;      // pos.token: leading ids to drop (written before a resume)
  std::vector<uint32_t> ids;
};

struct TokenizeBatch {
  int64_t seq = 0;
  std::vector<TokenizeUnit> units;
  std::exception_ptr error;  // a tokenizer error, rethrown by take()
};

class TokenizePool {
 public:
  TokenizePool(const Tokenizer& tokenizer, int64_t workers, std::vector<uint32_t> separator);
  ~TokenizePool();  // stops the workers (dropping queued work) and joins them
  TokenizePool(const TokenizePool&) = delete;
  TokenizePool& operator=(const TokenizePool&) = delete;

  // Queues a batch; its seq must be the previous one's + 1, from 0.
  void submit(TokenizeBatch batch);
  // The next batch in submission order, tokenized (waits for it). Rethrows its error.
  TokenizeBatch take();
  int64_t in_flight() const { return submitted_ - taken_; }

 private:
  void work(std::unique_ptr<Tokenizer> tokenizer);
  std::vector<uint32_t> separator_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<TokenizeBatch> queue_;
  std::map<int64_t, TokenizeBatch> done_;
  bool stop_ = false;
  int64_t submitted_ = 0, taken_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace longnet
