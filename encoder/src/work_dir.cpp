#include "work_dir.h"

#include <sys/resource.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace dydca::detail {

namespace fs = std::filesystem;

Expected<std::vector<uint8_t>> read_file(const std::string& path, int64_t max_bytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return Status::error("cannot read " + path + ": " + ec.message());
  if (int64_t(size) > max_bytes)
    return Status::error(path + " is larger than " + std::to_string(max_bytes) + " bytes");
  std::vector<uint8_t> out(size);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data()), std::streamsize(size));
  if (!in) return Status::error("cannot read " + path);
  return out;
}

namespace {

constexpr char kPacketsMagic[8] = {'D', 'Y', 'D', 'C', 'A', 'L', 'R', 'S'};
constexpr uint32_t kPacketsVersion = 1;
constexpr int64_t kMaxPacketsFileBytes = int64_t{4} << 30;
constexpr uint32_t kMaxPacketBytes = 64u << 20;
constexpr uint32_t kMaxPackets = 1u << 22;

void put(std::vector<uint8_t>& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(uint8_t(v >> (8 * i)));
}

struct Cursor {
  const std::vector<uint8_t>& b;
  size_t pos = 0;
  bool get(uint64_t& v, int bytes) {
    if (b.size() - pos < size_t(bytes)) return false;
    v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(b[pos + size_t(i)]) << (8 * i);
    pos += size_t(bytes);
    return true;
  }
};

}  // namespace

Status write_packets_file(const std::string& path, const EncodedVideo& v) {
  std::vector<uint8_t> b(kPacketsMagic, kPacketsMagic + 8);
  put(b, kPacketsVersion, 4);
  put(b, uint32_t(v.width), 4);
  put(b, uint32_t(v.height), 4);
  put(b, uint32_t(v.frame_rate.num), 4);
  put(b, uint32_t(v.frame_rate.den), 4);
  put(b, uint32_t(v.time_base.num), 4);
  put(b, uint32_t(v.time_base.den), 4);
  put(b, v.extradata.size(), 4);
  b.insert(b.end(), v.extradata.begin(), v.extradata.end());
  put(b, v.packets.size(), 4);
  for (const EncodedPacket& p : v.packets) {
    put(b, uint64_t(p.pts), 8);
    put(b, uint64_t(p.dts), 8);
    put(b, uint64_t(p.duration), 8);
    put(b, p.keyframe ? 1 : 0, 1);
    put(b, p.data.size(), 4);
    b.insert(b.end(), p.data.begin(), p.data.end());
  }
  put(b, crc32(0L, b.data(), uInt(b.size())), 4);
  return write_file_atomic(path, b);
}

Expected<EncodedVideo> read_packets_file(const std::string& path) {
  DYDCA_ASSIGN_OR_RETURN(const auto b, read_file(path, kMaxPacketsFileBytes));
  auto bad = [&](const char* what) { return Status::error(path + ": " + what); };
  if (b.size() < 12 + 4 || std::memcmp(b.data(), kPacketsMagic, 8) != 0)
    return bad("not a dydca segment packet file");
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) crc |= uint32_t(b[b.size() - 4 + size_t(i)]) << (8 * i);
  if (crc != crc32(0L, b.data(), uInt(b.size() - 4))) return bad("checksum mismatch (damaged)");
  Cursor c{b, 8};
  uint64_t ver, w, h, fn, fd, tn, td, extra, count;
  if (!c.get(ver, 4) || ver != kPacketsVersion) return bad("unsupported version");
  if (!c.get(w, 4) || !c.get(h, 4) || !c.get(fn, 4) || !c.get(fd, 4) || !c.get(tn, 4) ||
      !c.get(td, 4) || !c.get(extra, 4))
    return bad("truncated");
  if (w < 1 || h < 1 || w > uint64_t(kMaxDimension) || h > uint64_t(kMaxDimension) ||
      extra > kMaxPacketBytes || extra > b.size() - c.pos)
    return bad("invalid header");
  EncodedVideo v;
  v.width = int(w);
  v.height = int(h);
  v.frame_rate = {int(fn), int(fd)};
  v.time_base = {int(tn), int(td)};
  v.extradata.assign(b.begin() + ptrdiff_t(c.pos), b.begin() + ptrdiff_t(c.pos + extra));
  c.pos += extra;
  if (!c.get(count, 4) || count > kMaxPackets) return bad("invalid packet count");
  v.packets.reserve(size_t(count));
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t pts, dts, dur, key, size;
    if (!c.get(pts, 8) || !c.get(dts, 8) || !c.get(dur, 8) || !c.get(key, 1) || !c.get(size, 4) ||
        size > kMaxPacketBytes || size > b.size() - 4 - c.pos)
      return bad("truncated packet");
    EncodedPacket p;
    p.pts = int64_t(pts);
    p.dts = int64_t(dts);
    p.duration = int64_t(dur);
    p.keyframe = key != 0;
    p.data.assign(b.begin() + ptrdiff_t(c.pos), b.begin() + ptrdiff_t(c.pos + size));
    c.pos += size;
    v.packets.push_back(std::move(p));
  }
  if (c.pos != b.size() - 4) return bad("trailing bytes");
  return v;
}

Expected<WorkDir> WorkDir::open(const std::string& dir, const std::string& manifest, bool resume,
                                bool shared, bool create) {
  WorkDir w;
  w.dir_ = dir;
  std::error_code ec;
  const std::string mpath = dir + "/manifest.json";
  if (fs::exists(mpath, ec)) {
    DYDCA_ASSIGN_OR_RETURN(auto old, read_file(mpath, 1 << 20));
    const bool same = std::string(old.begin(), old.end()) == manifest;
    if (!resume && !shared)
      return Status::error(dir + " holds an unfinished encode: add --resume to continue it, or "
                                 "delete the folder to start again");
    if (!same)
      return Status::error(dir + " holds an encode of other input or parameters (" + mpath +
                           "); delete the folder to start again");
    return w;
  }
  if (!create) return w;
  fs::create_directories(dir, ec);
  if (ec) return Status::error("cannot create " + dir + ": " + ec.message());
  DYDCA_TRY(write_file_atomic(mpath, manifest));
  return w;
}

std::string WorkDir::file(int segment, const char* ext) const {
  char name[64];
  std::snprintf(name, sizeof name, "/seg-%05d.%s", segment, ext);
  return dir_ + name;
}

bool WorkDir::done(int segment) const {
  std::error_code ec;
  return fs::exists(file(segment, "json"), ec);
}

void WorkDir::remove() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

struct Heartbeat::Impl {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
};

Heartbeat::Heartbeat(const WorkDir& dir, int rank) : impl_(std::make_unique<Impl>()) {
  const std::string path = dir.path() + "/alive-" + std::to_string(rank);
  impl_->thread = std::thread([impl = impl_.get(), path] {
    std::unique_lock lock(impl->mu);
    while (!impl->stop) {
      std::ofstream(path) << "alive\n";  // a fresh mtime
      impl->cv.wait_for(lock, std::chrono::seconds(1));
    }
  });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

void report_rank_failure(const std::string& dir, int rank, const std::string& message) {
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    (void)write_file_atomic(dir + "/failed-" + std::to_string(rank), message);
}

Status wait_for_segment(const WorkDir& dir, int segment, int owner, double timeout_s,
                        const std::atomic<bool>* stop) {
  const auto start = fs::file_time_type::clock::now();
  const std::string who = "rank " + std::to_string(owner);
  bool told = false;
  while (!dir.done(segment)) {
    if (stop && stop->load()) return Status::error("interrupted");
    std::error_code ec;
    const std::string failed = dir.path() + "/failed-" + std::to_string(owner);
    if (fs::exists(failed, ec)) {
      auto msg = read_file(failed, 4096);
      return Status::error(who + " failed: " +
                           (msg ? std::string(msg->begin(), msg->end()) : "(no message)"));
    }
    const auto now = fs::file_time_type::clock::now();
    const auto beat = fs::last_write_time(dir.path() + "/alive-" + std::to_string(owner), ec);
    const double age = std::chrono::duration<double>(now - (ec ? start : beat)).count();
    if (age > timeout_s)
      return Status::error(who + (ec ? " never started" : " stopped answering") +
                           " (no heartbeat in " + dir.path() + " for " +
                           std::to_string(int(age)) + " s); segment " + std::to_string(segment) +
                           " is missing");
    if (!told) {
      log_info("waiting for segment " + std::to_string(segment) + " from " + who);
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::ok();
}

double peak_rss_mb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

}  // namespace dydca::detail
