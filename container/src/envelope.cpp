#include "envelope.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "byte_io.h"

namespace dydca::blob {

uint32_t crc32_update(uint32_t crc_in, const uint8_t* data, size_t size) {
  uLong crc = crc_in;
  // zlib takes uInt lengths; feed in pieces so sizes above 4 GiB stay correct.
  while (size > 0) {
    uInt n = size > (1u << 30) ? (1u << 30) : uInt(size);
    crc = crc32(crc, data, n);
    data += n;
    size -= n;
  }
  return uint32_t(crc);
}

namespace {
uint32_t crc32_of(const uint8_t* data, size_t size) { return crc32_update(0, data, size); }
}  // namespace

Expected<std::vector<uint8_t>> seal_envelope(const EnvelopeKind& kind,
                                             const std::vector<uint8_t>& payload, int zstd_level) {
  if (payload.empty() || payload.size() > kind.max_payload)
    return Status::error(std::string(kind.what) + " payload of " + std::to_string(payload.size()) +
                         " bytes is outside the format's limits");
  std::vector<uint8_t> compressed(ZSTD_compressBound(payload.size()));
  size_t n = ZSTD_compress(compressed.data(), compressed.size(), payload.data(), payload.size(),
                           zstd_level);
  if (ZSTD_isError(n))
    return Status::error(std::string(kind.what) + ": zstd failed: " + ZSTD_getErrorName(n));
  compressed.resize(n);

  ByteWriter w;
  w.bytes(kind.magic, 8);
  w.u16(kind.version);
  w.u16(0);  // flags, none defined in version 1
  w.u32(uint32_t(payload.size()));
  w.u32(uint32_t(compressed.size()));
  w.bytes(compressed.data(), compressed.size());
  w.u32(crc32_of(w.buffer().data(), w.size()));
  return w.take();
}

Expected<OpenedEnvelope> open_envelope(const EnvelopeKind& kind, const uint8_t* data, size_t size) {
  const std::string what = kind.what;
  if (!data || size < 8 || std::memcmp(data, kind.magic, 8) != 0)
    return Status::error("not a dydca " + what + " (bad magic)");
  if (size < kEnvelopeOverheadBytes)
    return Status::error(what + " is truncated (" + std::to_string(size) + " bytes)");
  ByteReader r(data + 8, size - 8);
  OpenedEnvelope out;
  out.version = r.u16();
  const uint16_t flags = r.u16();
  const uint32_t payload_size = r.u32();
  const uint32_t stored_size = r.u32();
  if (out.version == 0) return Status::error(what + " has invalid format version 0");
  if (out.version > kind.version)
    return Status::error(what + " format version " + std::to_string(out.version) +
                         " is not supported (this dydca reads versions 1.." +
                         std::to_string(kind.version) + "; the file needs a newer dydca)");
  if (flags != 0)
    return Status::error(what + " has flags " + std::to_string(flags) + " that version " +
                         std::to_string(out.version) + " does not define");
  if (uint64_t(stored_size) + kEnvelopeOverheadBytes != size)
    return Status::error(
        what + " size mismatch: header says " +
        std::to_string(uint64_t(stored_size) + kEnvelopeOverheadBytes) + " bytes, blob has " +
        std::to_string(size) +
        (uint64_t(stored_size) + kEnvelopeOverheadBytes > size ? " (truncated)" : ""));
  if (payload_size == 0 || payload_size > kind.max_payload)
    return Status::error(what + " payload size " + std::to_string(payload_size) +
                         " is outside the limit of " + std::to_string(kind.max_payload) + " bytes");
  const size_t crc_at = kEnvelopeHeaderBytes + stored_size;
  const uint32_t stored_crc = uint32_t(data[crc_at]) | uint32_t(data[crc_at + 1]) << 8 |
                              uint32_t(data[crc_at + 2]) << 16 | uint32_t(data[crc_at + 3]) << 24;
  if (crc32_of(data, crc_at) != stored_crc)
    return Status::error(what + " checksum mismatch (the file is damaged)");

  const uint8_t* z = data + kEnvelopeHeaderBytes;
  const unsigned long long content = ZSTD_getFrameContentSize(z, stored_size);
  if (content != payload_size || ZSTD_findFrameCompressedSize(z, stored_size) != stored_size)
    return Status::error(what + " payload is not one zstd frame of the announced size");
  out.payload.resize(payload_size);
  size_t n = ZSTD_decompress(out.payload.data(), out.payload.size(), z, stored_size);
  if (ZSTD_isError(n) || n != payload_size)
    return Status::error(what + " payload does not decompress" +
                         (ZSTD_isError(n) ? std::string(": ") + ZSTD_getErrorName(n) : ""));
  return out;
}

}  // namespace dydca::blob
