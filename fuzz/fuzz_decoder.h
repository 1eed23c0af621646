// The whole-decoder fuzz target's work, shared by the libFuzzer entry point
// (fuzz_decoder.cpp) and the regression replay that ctest runs in every build
// (tests/test_fuzz_replay.cpp): one input = one whole dydca file in memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "dydca/media.h"
#include "dydca/runtime.h"
#include "dydca/status.h"

namespace dydca::fuzz {

// Caps on the work one input may cost (the harness's, not the library's: the
// library's own limits are far larger). An input beyond them is not decoded.
inline constexpr int64_t kMaxPictures = 8;
inline constexpr int64_t kMaxScalarPictures = 2;  // with the scalar reference kernels
inline constexpr int64_t kMaxLrPixels = 128 * 128;
// Upper bound of the SR multiply-accumulates of the pictures decoded (halo
// recomputation included) plus the warm-up of each segment prepared.
inline constexpr int64_t kMaxSrMacs = 64'000'000;

struct DecoderRun {
  bool opened = false;   // DydcaReader accepted the bytes as a dydca file
  bool skipped = false;  // beyond the caps above: not decoded
  int64_t pictures = 0;  // pictures the sink received
  Status status;         // of the open or the decode (ok when both succeeded)
};

// Opens the bytes with DydcaReader (from memory), decodes up to kMaxPictures
// pictures with decode_file through a sink that checks each one, and checks
// the library's promises: a failure is one line naming what is wrong, frames
// in = frames out, pictures of the announced size. A broken promise aborts
// (a finding); anything else returns.
DecoderRun decode_dydca_bytes(const uint8_t* data, size_t size);

// The kernels an input is decoded with, by its size: the scalar reference
// for 1 in 8 sizes (half of them in int8: the auto precision never picks the
// scalar int8 kernels), AVX2 and AVX-512 (when the CPU has them) for half the
// rest each, with the auto precision.
struct KernelChoice {
  SimdLevel simd = SimdLevel::kNone;
  Precision precision = Precision::kAuto;
};
KernelChoice kernels_for_size(size_t size);

// Silences the library's and FFmpeg's logging (a fuzzer prints nothing per input).
void quiet_logs();

// An input in memory (not owned: the bytes outlive the reader).
class MemorySource final : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size) : data_(data), size_(int64_t(size)) {}
  int read(uint8_t* buf, int size) override {
    const int n = int(std::clamp<int64_t>(size_ - pos_, 0, size));
    if (n > 0) std::memcpy(buf, data_ + pos_, size_t(n));
    pos_ += n;
    return n;
  }
  int64_t seek(int64_t offset, int whence) override {
    if (whence == kSeekSize) return size_;
    const int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? pos_ : size_;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return -1;
    if (offset < -base || offset > size_ - base) return -1;
    pos_ = base + offset;
    return pos_;
  }

 private:
  const uint8_t* data_;
  int64_t size_;
  int64_t pos_ = 0;
};

}  // namespace dydca::fuzz
