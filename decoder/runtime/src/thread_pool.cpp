#include "thread_pool.h"

#include <algorithm>

namespace dydca::rt {

ThreadPool::ThreadPool(int workers) {
  threads_.reserve(size_t(std::max(workers - 1, 0)));
  try {
    for (int i = 1; i < workers; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
  } catch (...) {
    stop_all();  // a joinable std::thread must not be destroyed
    throw;
  }
}

ThreadPool::~ThreadPool() { stop_all(); }

void ThreadPool::stop_all() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void ThreadPool::drain(int worker) {
  for (int job = next_.fetch_add(1, std::memory_order_relaxed); job < jobs_;
       job = next_.fetch_add(1, std::memory_order_relaxed))
    fn_(ctx_, job, worker);
}

void ThreadPool::run_impl(int jobs, JobFn fn, void* ctx) {
  if (jobs <= 0) return;
  if (threads_.empty() || jobs == 1) {
    for (int j = 0; j < jobs; ++j) fn(ctx, j, 0);
    return;
  }
  std::lock_guard<std::mutex> turn(run_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    jobs_ = jobs;
    next_.store(0, std::memory_order_relaxed);
    busy_ = int(threads_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  drain(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return busy_ == 0; });
}

void ThreadPool::worker_loop(int worker) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain(worker);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace dydca::rt
