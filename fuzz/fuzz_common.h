// Shared by the blob fuzzers: the first input byte chooses what the rest is.
//   even: a whole blob as stored (envelope checks: magic, version, sizes, CRC, zstd)
//   odd:  a decompressed payload, sealed here in a valid envelope, so that the
//         fuzzer reaches the payload parser instead of stopping at the CRC.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "envelope.h"

namespace dydca::fuzz {

inline std::vector<uint8_t> blob_from_input(const blob::EnvelopeKind& kind, const uint8_t* data,
                                            size_t size) {
  if (size == 0) return {};
  if (!(data[0] & 1)) return std::vector<uint8_t>(data + 1, data + size);
  std::vector<uint8_t> payload(data + 1, data + size);
  auto sealed = blob::seal_envelope(kind, payload, 1);
  return sealed ? std::move(*sealed) : std::vector<uint8_t>{};
}

[[noreturn]] inline void invariant_failed(const char* what) {
  std::fprintf(stderr, "invariant failed: %s\n", what);
  std::abort();
}

}  // namespace dydca::fuzz
