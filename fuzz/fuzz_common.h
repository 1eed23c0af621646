// Shared by the blob fuzzers: the first input byte chooses what the rest is.
//   even: a whole blob as stored (envelope checks: magic, version, sizes, CRC, zstd)
//   odd:  a decompressed payload, sealed here in a valid envelope, so that the
//         fuzzer reaches the payload parser instead of stopping at the CRC.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "dydca/container.h"
#include "envelope.h"

namespace dydca::fuzz {

// The envelopes of the four blob kinds (as the container's parsers define them).
inline const blob::EnvelopeKind kModelKind{"DYDCAMDL", "model blob", kModelBlobVersion,
                                           kMaxModelPayloadBytes};
inline const blob::EnvelopeKind kDeltaKind{"DYDCADLT", "model update", kModelDeltaVersion,
                                           kMaxModelPayloadBytes};
inline const blob::EnvelopeKind kRoutingKind{"DYDCARTG", "routing blob", kRoutingBlobVersion,
                                             kMaxRoutingPayloadBytes};
inline const blob::EnvelopeKind kSegmentsKind{"DYDCASEG", "segment table", kSegmentsBlobVersion,
                                              kMaxSegmentsPayloadBytes};

inline std::vector<uint8_t> blob_from_input(const blob::EnvelopeKind& kind, const uint8_t* data,
                                            size_t size) {
  if (size == 0) return {};
  if (!(data[0] & 1)) return std::vector<uint8_t>(data + 1, data + size);
  std::vector<uint8_t> payload(data + 1, data + size);
  auto sealed = blob::seal_envelope(kind, payload, 1);
  return sealed ? std::move(*sealed) : std::vector<uint8_t>{};
}

// Every tensor `arch` needs (model.h), in model.h's order, element i of
// tensor `name` being value(name, i).
template <class Value>
Model model_with_arch(const ModelArch& arch, Value value) {
  Model m;
  m.arch = arch;
  auto add = [&](std::string name, std::vector<int> shape) {
    Tensor t{std::move(name), shape, {}};
    size_t count = 1;
    for (int d : shape) count *= size_t(d);
    for (size_t i = 0; i < count; ++i) t.data.push_back(value(t.name, i));
    m.tensors.push_back(std::move(t));
  };
  const int c = arch.channels, e = arch.inner, s2 = arch.scale * arch.scale;
  add("head.weight", {c, 1, 3, 3});
  add("head.bias", {c});
  for (int i = 0; i < arch.blocks; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    add(b + ".conv1.weight", {e, c, 3, 3});
    add(b + ".conv1.bias", {e});
    add(b + ".conv2.weight", {c, e, 3, 3});
    add(b + ".conv2.bias", {c});
  }
  add("tail.weight", {s2, c, 3, 3});
  add("tail.bias", {s2});
  add("skip.weight", {s2, 1, 5, 5});
  add("skip.bias", {s2});
  return m;
}

// A small deterministic model: the seeds' models and the reference the
// model-update fuzzer applies its inputs to (so seeded updates carry the
// right fingerprint and reach the tensor parser).
inline Model small_model(int scale, int channels, int inner, int blocks, uint32_t seed = 1) {
  ModelArch arch;
  arch.scale = scale;
  arch.channels = channels;
  arch.inner = inner;
  arch.blocks = blocks;
  arch.paths = {{0, 0}, {blocks, channels}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 0.1f);
  return model_with_arch(arch, [&](const std::string&, size_t) { return n(rng); });
}

// The reference of the model-update fuzzer.
inline const Model& delta_reference() {
  static const Model m = small_model(2, 4, 4, 1);
  return m;
}

[[noreturn]] inline void invariant_failed(const char* what) {
  std::fprintf(stderr, "invariant failed: %s\n", what);
  std::abort();
}

}  // namespace dydca::fuzz
