// The tokenizing workers (see tokenize_pool.h).
#include "longnet/train/tokenize_pool.h"

#include <stdexcept>

#include "longnet/train/tokenizer.h"

namespace longnet {

TokenizePool::TokenizePool(const Tokenizer& tokenizer, int64_t workers,
                           std::vector<uint32_t> separator)
    : separator_(std::move(separator)) {
  if (workers < 1) throw std::invalid_argument("TokenizePool: workers must be >= 1");
  for (int64_t i = 0; i < workers; ++i)
    threads_.emplace_back(&TokenizePool::work, this, tokenizer.clone());
}

TokenizePool::~TokenizePool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TokenizePool::submit(TokenizeBatch batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.seq = submitted_++;
    queue_.push_back(std::move(batch));
  }
  work_cv_.notify_one();
}

TokenizeBatch TokenizePool::take() {
  std::unique_lock<std::mutex> lock(mu_);
  if (taken_ == submitted_) throw std::logic_error("TokenizePool::take: nothing submitted");
  done_cv_.wait(lock, [&] { return done_.count(taken_) > 0; });
  TokenizeBatch b = std::move(done_[taken_]);
  done_.erase(taken_++);
  lock.unlock();
  if (b.error) std::rethrow_exception(b.error);
  return b;
}

void TokenizePool::work(std::unique_ptr<Tokenizer> tokenizer) {
  for (;;) {
    TokenizeBatch b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      b = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      for (auto& u : b.units) {
        u.ids.clear();
        if (u.separator) u.ids = separator_;
        tokenizer->encode_piece(u.text, u.after_cut, u.ids);
        std::string().swap(u.text);
        const auto skip = static_cast<size_t>(u.pos.token);
        if (skip > u.ids.size())
          throw std::runtime_error(
              "data build: resuming needs " + std::to_string(skip) + " tokens of unit " +
              std::to_string(u.pos.unit) + " of corpus file " + std::to_string(u.pos.file) +
              " written already, but it has " + std::to_string(u.ids.size()) +
              ": the corpus or the tokenizer changed since; remove --out and build afresh");
        u.ids.erase(u.ids.begin(), u.ids.begin() + static_cast<std::ptrdiff_t>(skip));
      }
    } catch (...) {
      b.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_[b.seq] = std::move(b);
    }
    done_cv_.notify_all();
  }
}

}  // namespace longnet
