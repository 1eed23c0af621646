#include "dist.h"

#include <chrono>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

namespace dydca {
namespace {

// c10d messages can span lines (with a C++ stack): keep the first line.
std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return s.substr(0, std::min<size_t>(nl, 300));
}

}  // namespace

struct DistGroup::Impl {
  DistConfig config;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  Status fail(const std::string& what, const std::exception& e) const {
    return Status::error("distributed training (rank " + std::to_string(config.rank) + " of " +
                         std::to_string(config.world_size) + ", master " + config.master_addr +
                         ":" + std::to_string(config.master_port) + "): " + what + ": " +
                         first_line(e.what()));
  }
};

Expected<std::unique_ptr<DistGroup>> DistGroup::connect(const DistConfig& c) {
  if (c.world_size < 2 || c.world_size > 1024 || c.rank < 0 || c.rank >= c.world_size)
    return Status::error("distributed training: rank " + std::to_string(c.rank) +
                         " does not fit world size " + std::to_string(c.world_size));
  if (c.master_port < 1 || c.master_port > 65535 || c.master_addr.empty())
    return Status::error("distributed training: bad master address " + c.master_addr + ":" +
                         std::to_string(c.master_port));
  if (!(c.timeout_s > 0)) return Status::error("distributed training: timeout must be > 0");
  auto impl = std::make_unique<Impl>();
  impl->config = c;
  impl->timeout = std::chrono::milliseconds(int64_t(c.timeout_s * 1000));
  try {
    c10d::TCPStoreOptions so;
    so.port = uint16_t(c.master_port);
    so.isServer = c.rank == 0;
    so.numWorkers = size_t(c.world_size);
    so.waitWorkers = true;  // rank 0 waits for everyone (or times out)
    so.timeout = impl->timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(c.master_addr, so);
    impl->store = c10::make_intrusive<c10d::PrefixStore>("dydca", tcp);
  } catch (const std::exception& e) {
    return impl->fail(c.rank == 0 ? "not every rank joined the store" : "cannot reach the master",
                      e);
  }
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(impl->timeout);
    // The interface: GLOO_SOCKET_IFNAME-style override, else the address that
    // reaches the master (loopback for a one-machine run), else the hostname's.
    if (!c.interface.empty())
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(c.interface));
    else if (c.master_addr == "127.0.0.1" || c.master_addr == "localhost")
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, c.rank, c.world_size,
                                                              opts);
  } catch (const std::exception& e) {
    return impl->fail("not every rank joined in time", e);
  }
  return std::unique_ptr<DistGroup>(new DistGroup(std::move(impl)));
}

DistGroup::DistGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DistGroup::~DistGroup() = default;
int DistGroup::rank() const { return impl_->config.rank; }
int DistGroup::world_size() const { return impl_->config.world_size; }

Expected<std::string> DistGroup::share(const std::string& key, const std::string& bytes) {
  try {
    if (rank() == 0) impl_->store->set(key, std::vector<uint8_t>(bytes.begin(), bytes.end()));
    auto v = impl_->store->get(key);  // waits for rank 0 (store timeout)
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    return impl_->fail("no '" + key + "' from rank 0", e);
  }
}

Status DistGroup::barrier(const std::string& name) {
  const auto start = std::chrono::steady_clock::now();
  try {
    impl_->store->add(name, 1);
    while (impl_->store->add(name, 0) < world_size()) {
      const auto waited = std::chrono::steady_clock::now() - start;
      if (rank() == 0 && waited > impl_->timeout)
        return Status::error("distributed training (rank 0 of " + std::to_string(world_size()) +
                             "): a rank did not reach " + name + " in " +
                             std::to_string(int(impl_->config.timeout_s)) + " s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const std::exception& e) {
    return impl_->fail("a rank stopped answering at " + name, e);
  }
  return Status::ok();
}

Expected<std::shared_ptr<DistSession>> DistSession::connect(const DistConfig& config) {
  DYDCA_ASSIGN_OR_RETURN(auto g, DistGroup::connect(config));
  auto impl = std::make_unique<Impl>();
  impl->group = std::move(g);
  return std::shared_ptr<DistSession>(new DistSession(std::move(impl)));
}
DistSession::DistSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DistSession::~DistSession() = default;
int DistSession::rank() const { return impl_->group->rank(); }
int DistSession::world_size() const { return impl_->group->world_size(); }
Status DistSession::barrier(const std::string& name) { return impl_->group->barrier(name); }

Status DistGroup::all_reduce(torch::Tensor& t, bool max) {
  try {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    o.timeout = impl_->timeout;
    auto work = impl_->group->allreduce(v, o);
    work->wait(impl_->timeout);
  } catch (const std::exception& e) {
    return impl_->fail("a rank stopped answering", e);
  }
  return Status::ok();
}

}  // namespace dydca
