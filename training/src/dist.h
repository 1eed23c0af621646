// Data-parallel training over LibTorch's own distributed engine (c10d):
// a TCPStore hosted by rank 0 for the rendezvous and small blobs, and a
// ProcessGroupGloo for the gradient all-reduce. Private to training/.
//
// Every call turns c10d's exceptions (a rank that died, never joined, a
// timeout, a port in use) into a Status with a one-line message.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "dydca/status.h"
#include "dydca/training.h"

namespace dydca {

class DistGroup {
 public:
  // Blocks until all world_size ranks joined, or fails after config.timeout_s.
  static Expected<std::unique_ptr<DistGroup>> connect(const DistConfig& config);
  ~DistGroup();

  int rank() const;
  int world_size() const;
  // Rank 0 publishes `bytes` under `key`; every rank returns rank 0's bytes.
  Expected<std::string> share(const std::string& key, const std::string& bytes);
  // Every rank adds itself under `name`, then waits for all (see
  // DistSession::barrier).
  Status barrier(const std::string& name);
  // In place over all ranks: sum, or max.
  Status all_reduce(torch::Tensor& t, bool max = false);

 private:
  struct Impl;
  explicit DistGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct DistSession::Impl {
  std::unique_ptr<DistGroup> group;
};

}  // namespace dydca
