// Private: a small persistent pool that runs an indexed batch of jobs on all
// workers (the calling thread is worker 0) and returns when all are done.
// Jobs are taken in index order from an atomic counter; which worker runs a
// job is unspecified, so jobs must only differ by their own output. Callers
// on several threads may share it: their batches run one after the other.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace dydca::rt {

class ThreadPool {
 public:
  // >= 1; workers - 1 threads are started. Throws std::system_error when the
  // system refuses a thread (those already started are stopped first).
  explicit ThreadPool(int workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int workers() const { return int(threads_.size()) + 1; }

  // Calls fn(job, worker) for every job in [0, jobs). No allocation.
  template <class F>
  void run(int jobs, F& fn) {
    run_impl(jobs, [](void* ctx, int job, int worker) { (*static_cast<F*>(ctx))(job, worker); },
             &fn);
  }

 private:
  using JobFn = void (*)(void* ctx, int job, int worker);
  void run_impl(int jobs, JobFn fn, void* ctx);
  void worker_loop(int worker);
  void drain(int worker);

  void stop_all();

  std::vector<std::thread> threads_;
  std::mutex run_mu_;  // held by the caller whose batch runs
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  uint64_t generation_ = 0;  // bumped per batch (under mu_)
  int busy_ = 0;             // background workers still in the batch (under mu_)
  bool stop_ = false;
  JobFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int jobs_ = 0;
  std::atomic<int> next_{0};
};

}  // namespace dydca::rt
