// The envelope shared by every dydca blob (model, update, routing, segments): magic, format version, sizes, a
// zstd-compressed payload and a CRC32 over everything before it. Opening an
// envelope checks (in this order) magic, version, flags, sizes against caps,
// the CRC, then decompresses into a buffer of the announced (capped) size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dydca/status.h"

namespace dydca::blob {

inline constexpr size_t kEnvelopeHeaderBytes = 20;  // magic 8, version 2, flags 2, sizes 4+4
inline constexpr size_t kEnvelopeOverheadBytes = kEnvelopeHeaderBytes + 4;  // + CRC32

struct EnvelopeKind {
  const char* magic;     // exactly 8 characters
  const char* what;      // "model blob", for messages
  uint16_t version;      // the version this code writes and the newest it reads
  uint32_t max_payload;  // cap on the decompressed payload
};

// CRC-32 (zlib / ISO-HDLC), continued from `crc` (0 to start).
uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t size);

Expected<std::vector<uint8_t>> seal_envelope(const EnvelopeKind& kind,
                                             const std::vector<uint8_t>& payload, int zstd_level);

struct OpenedEnvelope {
  uint16_t version = 0;
  std::vector<uint8_t> payload;  // decompressed
};
Expected<OpenedEnvelope> open_envelope(const EnvelopeKind& kind, const uint8_t* data, size_t size);

}  // namespace dydca::blob
