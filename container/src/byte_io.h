// Little-endian byte writer and bounds-checked reader for the dydca blobs.
// The reader never reads past its span: every accessor checks the remaining
// length first, and after the first failure it stays failed and returns
// zeros, so parsers can read a group of fields and check ok() once.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace dydca::blob {

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put_le(v, 2); }
  void u32(uint32_t v) { put_le(v, 4); }
  void u64(uint64_t v) { put_le(v, 8); }
  void f32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    u32(bits);
  }
  // Unsigned LEB128: 7 bits per byte, low group first, high bit = more.
  void varint(uint32_t v) {
    while (v >= 0x80) {
      out_.push_back(uint8_t(v | 0x80));
      v >>= 7;
    }
    out_.push_back(uint8_t(v));
  }
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + n);
  }
  size_t size() const { return out_.size(); }
  std::vector<uint8_t>& buffer() { return out_; }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  void put_le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(uint8_t(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : p_(data), size_(size) {}

  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? size_ - pos_ : 0; }
  size_t position() const { return pos_; }
  bool at_end() const { return ok_ && pos_ == size_; }
  // Marks the reader failed (used by callers for semantic errors too).
  void fail() { ok_ = false; }

  uint8_t u8() { return uint8_t(get_le(1)); }
  uint16_t u16() { return uint16_t(get_le(2)); }
  uint32_t u32() { return uint32_t(get_le(4)); }
  uint64_t u64() { return get_le(8); }
  float f32() {
    uint32_t bits = u32();
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  // Unsigned LEB128 of at most 5 bytes that fits 32 bits; fails otherwise.
  uint32_t varint() {
    uint64_t v = 0;
    for (int i = 0; i < 5; ++i) {
      uint8_t b = u8();
      if (!ok_) return 0;
      v |= uint64_t(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) {
        if (v > 0xffffffffu) break;
        return uint32_t(v);
      }
    }
    ok_ = false;
    return 0;
  }
  // A view of the next n bytes (nullptr and failed when fewer remain).
  const uint8_t* bytes(size_t n) {
    if (!ok_ || n > size_ - pos_) {
      ok_ = false;
      return nullptr;
    }
    const uint8_t* at = p_ + pos_;
    pos_ += n;
    return at;
  }

 private:
  uint64_t get_le(int n) {
    const uint8_t* b = bytes(size_t(n));
    if (!b) return 0;
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(b[i]) << (8 * i);
    return v;
  }
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace dydca::blob
