// Files that appear whole or not at all: the one home of
// write-to-a-temporary-name-then-rename. The bytes go to a temporary file in
// the same folder ("<path>.part<pid>-<n>": same filesystem, so the rename is
// atomic, and concurrent writers of one name stay apart), are flushed to disk
// (fsync), and the file is renamed over `path`. A crash, an error or an
// exception leaves the old file (or none), never half of a new one, and no
// temporary file once the writer is gone.
//
//   // a writer that makes the file itself (libav, a Y4M writer, LibTorch):
//   PendingFile out(path);
//   DYDCA_TRY(write_everything_to(out.temp_path()));
//   DYDCA_TRY(out.commit());   // without it, ~PendingFile removes the temp file
//
//   // bytes already in memory:
//   DYDCA_TRY(write_file_atomic(path, bytes));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dydca/status.h"

namespace dydca {

class PendingFile {
 public:
  explicit PendingFile(std::string path);
  ~PendingFile();  // discard() unless committed
  PendingFile(PendingFile&& other) noexcept;
  PendingFile& operator=(PendingFile&& other) noexcept;
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  const std::string& path() const { return path_; }  // the final name
  // Where to write; empty once committed or discarded. The writer must have
  // closed it before commit().
  const std::string& temp_path() const { return temp_; }
  // Flushes the temporary file to disk and renames it to path(). On failure
  // the temporary file is removed and path() is left as it was. Once only.
  Status commit();
  // Removes the temporary file if there is one (nothing once committed).
  void discard();

 private:
  std::string path_, temp_;
};

// `size` bytes at `data` into `path` through a PendingFile.
Status write_file_atomic(const std::string& path, const void* data, size_t size);
inline Status write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  return write_file_atomic(path, bytes.data(), bytes.size());
}
inline Status write_file_atomic(const std::string& path, const std::string& text) {
  return write_file_atomic(path, text.data(), text.size());
}

}  // namespace dydca
