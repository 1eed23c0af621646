// A small blocking FIFO with a capacity, used between the pipeline stages.
// close() ends the stream (pop drains what is left, then returns nullopt);
// cancel() drops everything and wakes every waiter (an error elsewhere).
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

namespace dydca::detail {

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : ring_(capacity ? capacity : 1) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Blocks while full. false: the queue was cancelled (the item is dropped).
  bool push(T item) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return cancelled_ || count_ < ring_.size(); });
    if (cancelled_) return false;
    ring_[(head_ + count_) % ring_.size()] = std::move(item);
    ++count_;
    not_empty_.notify_one();
    return true;
  }
  // Blocks while empty and open. nullopt: closed and drained, or cancelled.
  std::optional<T> pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return cancelled_ || closed_ || count_ > 0; });
    if (cancelled_ || count_ == 0) return std::nullopt;
    std::optional<T> item = std::move(ring_[head_]);
    ring_[head_].reset();
    head_ = (head_ + 1) % ring_.size();
    --count_;
    not_full_.notify_one();
    return item;
  }
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }
  void cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::vector<std::optional<T>> ring_;  // fixed at construction: no allocation per item
  size_t head_ = 0, count_ = 0;
  bool closed_ = false, cancelled_ = false;
};

}  // namespace dydca::detail
