// PendingFile and write_file_atomic (atomic_file.h).
#include "dydca/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

namespace dydca {
namespace {

std::string temp_name_beside(const std::string& path) {
  std::random_device rd;
  return path + ".part" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000);
}

// fsync of a closed file by name (the writers that made it own its handle).
Status sync_to_disk(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error("cannot open " + path + ": " + std::strerror(errno));
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return Status::error("cannot flush " + path + " to disk: " + std::strerror(err));
  return Status::ok();
}

}  // namespace

PendingFile::PendingFile(std::string path) : path_(std::move(path)), temp_(temp_name_beside(path_)) {}

PendingFile::~PendingFile() { discard(); }

PendingFile::PendingFile(PendingFile&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::exchange(other.temp_, {})) {}

PendingFile& PendingFile::operator=(PendingFile&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temp_ = std::exchange(other.temp_, {});
  }
  return *this;
}

Status PendingFile::commit() {
  if (temp_.empty()) return Status::error(path_ + ": already committed or discarded");
  Status s = sync_to_disk(temp_);
  if (s) {
    std::error_code ec;
    std::filesystem::rename(temp_, path_, ec);
    if (ec) s = Status::error("cannot move " + temp_ + " to " + path_ + ": " + ec.message());
  }
  if (!s) {
    discard();
    return s;
  }
  temp_.clear();
  return s;
}

void PendingFile::discard() {
  if (temp_.empty()) return;
  std::error_code ec;
  std::filesystem::remove(temp_, ec);
  temp_.clear();
}

Status write_file_atomic(const std::string& path, const void* data, size_t size) {
  PendingFile out(path);
  std::FILE* f = std::fopen(out.temp_path().c_str(), "wb");
  if (!f) return Status::error("cannot write " + path + ": " + std::strerror(errno));
  const bool written = std::fwrite(data, 1, size, f) == size;
  if (std::fclose(f) != 0 || !written) return Status::error("cannot write " + path + " (disk full?)");
  return out.commit();
}

}  // namespace dydca
