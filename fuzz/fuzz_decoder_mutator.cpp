// The decoder fuzzer's custom mutator (docs/decisions.md, "A structure-aware
// mutator for the decoder fuzzer"). Byte-level mutations of a whole .mkv
// almost never reach the runtime with a different model: every blob is
// zstd-compressed behind a CRC, so one flipped byte fails the CRC check at
// open. So half of the mutations go inside a blob instead:
//   demux the input with our own PacketReader (from memory), pick a dydca
//   attachment (model, routing or segment table; inside a segment table one
//   segment's model, update or routing), open its envelope, mutate the
//   payload (LLVMFuzzerMutate on its bytes; or, for a full model, a few
//   weights or activation scales set to extreme values, or a new
//   architecture, and the model written again in its own weight format),
//   seal it again and re-mux the file with our
//   VideoFileWriter (same video packets, tags and other attachments).
// The other half, and any input this cannot demux, get libFuzzer's own
// byte-level mutation (Matroska framing, tags, the H.264 stream).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>

#include "dydca/container.h"
#include "fuzz_common.h"
#include "fuzz_decoder.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace dydca::fuzz {
namespace {

using Rng = std::minstd_rand;
using Bytes = std::vector<uint8_t>;

// A plain char array: it outlives static destructors, so the atexit cleanup can use it.
char scratch[64];
const char* scratch_path() {
  if (!scratch[0])
    std::snprintf(scratch, sizeof scratch, "/dev/shm/dydca-fuzz-decoder-%d.mkv", int(getpid()));
  return scratch;
}

Bytes mutate_bytes(Bytes v) {
  if (v.empty()) v.push_back(0);
  const size_t size = v.size();
  v.resize(size + size / 4 + 16);
  v.resize(LLVMFuzzerMutate(v.data(), size, v.size()));
  return v;
}

// A few weights (or int8 activation scales) of a full model set to values a
// trained model never has; the model is written again in its weight format
// (the writer refuses what its format cannot hold: then nothing).
std::optional<Bytes> mutate_model_values(const Bytes& sealed, Rng& rng) {
  ModelBlobInfo info;
  auto m = parse_model(sealed, &info);
  if (!m || m->tensors.empty()) return std::nullopt;
  static constexpr float kExtreme[] = {0.0f,   -0.0f,   1e-45f,  -1e-38f, 1.0f,    -1.0f,
                                       127.0f, -128.0f, 65504.f, -65504.f, 1e20f, -1e20f,
                                       3e38f,  -3e38f};
  const float pick = kExtreme[rng() % std::size(kExtreme)];
  for (int n = 1 + int(rng() % 4); n > 0; --n) {
    if (!m->act.empty() && rng() % 4 == 0) {
      auto& scales = m->act.path[rng() % m->act.path.size()];
      // The blob allows scales in [1e-10, 1e10].
      if (!scales.empty()) scales[rng() % scales.size()] = rng() % 2 ? 1e-10f : 1e10f;
      continue;
    }
    Tensor& t = m->tensors[rng() % m->tensors.size()];
    if (t.data.empty()) continue;
    float& w = t.data[rng() % t.data.size()];
    w = rng() % 2 ? pick : w * float(1 << (rng() % 24));
    t.int8.clear();  // stale now: requantised from data
    t.int8_scale.clear();
  }
  auto out = serialize_model(*m, {info.weights, 1});
  if (!out) return std::nullopt;
  return std::move(*out);
}

// A full model given another architecture of the same scale: C, E, N and
// 1 to 4 paths drawn anew (odd and extreme sizes likelier than trained
// ones), every tensor made at its new shape with the old values where they
// fit; int8 activation scales (if the model had them) re-made to match.
// Fits only where the architecture may change: a format-1 file, or a
// format-2 file of one segment (the routing's path ids must still fit).
std::optional<Bytes> mutate_model_arch(const Bytes& sealed, Rng& rng) {
  ModelBlobInfo info;
  auto old = parse_model(sealed, &info);
  if (!old) return std::nullopt;
  static constexpr int kSizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 32, 63, 64};
  ModelArch arch;
  arch.scale = old->arch.scale;
  arch.channels = kSizes[rng() % std::size(kSizes)];
  arch.inner = kSizes[rng() % std::size(kSizes)];
  arch.blocks = int(rng() % 4);
  for (int p = 1 + int(rng() % 4); p > 0; --p) {
    const int depth = int(rng() % uint32_t(arch.blocks + 1));
    const int width = depth == 0 && rng() % 2 ? 0 : 1 + int(rng() % uint32_t(arch.channels));
    arch.paths.push_back({depth, width});
  }
  Model m = model_with_arch(arch, [&](const std::string& name, size_t i) {
    const Tensor* t = old->find(name);
    return t && i < t->data.size() ? t->data[i] : 0.01f * float(int(rng() % 201) - 100);
  });
  for (const PathSpec& p : arch.paths)
    if (!old->act.empty())
      m.act.path.emplace_back(p.width ? size_t(1 + 2 * p.depth) : 0, 0.05f);
  auto out = serialize_model(m, {info.weights, 1});
  if (!out) return std::nullopt;
  return std::move(*out);
}

Bytes mutate_blob(const blob::EnvelopeKind& kind, const Bytes& sealed, Rng& rng) {
  auto opened = blob::open_envelope(kind, sealed.data(), sealed.size());
  if (!opened || rng() % 16 == 0) return mutate_bytes(sealed);  // the envelope itself
  if (&kind == &kSegmentsKind && rng() % 4 != 0) {
    auto table = parse_segments(sealed);
    if (table && !table->empty()) {
      SegmentRecord& s = (*table)[rng() % table->size()];
      if (!s.routing.empty() && rng() % 3 == 0)
        s.routing = mutate_blob(kRoutingKind, s.routing, rng);
      else
        s.model = mutate_blob(s.model_is_delta ? kDeltaKind : kModelKind, s.model, rng);
      if (auto out = serialize_segments(*table, 1)) return std::move(*out);
    }
  }
  if (&kind == &kModelKind && rng() % 2 == 0)
    if (auto out = rng() % 4 ? mutate_model_values(sealed, rng) : mutate_model_arch(sealed, rng))
      return std::move(*out);
  blob::EnvelopeKind same = kind;
  same.version = opened->version;
  auto out = blob::seal_envelope(same, mutate_bytes(std::move(opened->payload)), 1);
  return out ? std::move(*out) : sealed;
}

// The input with one of its dydca attachments mutated, re-muxed; nothing
// when it does not demux or has no dydca attachment.
std::optional<Bytes> mutate_attachment(const uint8_t* data, size_t size, Rng& rng) {
  auto reader = PacketReader::open(std::make_unique<MemorySource>(data, size), "mutator");
  if (!reader) return std::nullopt;
  MuxOptions mux;
  mux.tags = reader->header().tags;
  mux.attachments = reader->header().attachments;
  std::vector<size_t> blobs;
  for (size_t i = 0; i < mux.attachments.size(); ++i) {
    const std::string& type = mux.attachments[i].mimetype;
    if (type == kModelMimetype || type == kRoutingMimetype || type == kSegmentsMimetype)
      blobs.push_back(i);
  }
  if (blobs.empty()) return std::nullopt;
  EncodedVideo video = reader->header().video;
  for (EncodedPacket p; video.packets.size() < 1024;) {
    auto got = reader->read(p);
    if (!got || !*got) break;
    video.packets.push_back(std::move(p));
  }
  if (video.packets.empty()) return std::nullopt;

  Attachment& a = mux.attachments[blobs[rng() % blobs.size()]];
  const blob::EnvelopeKind& kind = a.mimetype == kModelMimetype     ? kModelKind
                                   : a.mimetype == kRoutingMimetype ? kRoutingKind
                                                                    : kSegmentsKind;
  a.data = mutate_blob(kind, a.data, rng);
  if (!write_video_file(scratch_path(), video, mux)) return std::nullopt;
  std::ifstream in(scratch_path(), std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

}  // namespace
}  // namespace dydca::fuzz

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  using namespace dydca::fuzz;
  static const bool registered = [] {
    std::atexit([] { std::remove(scratch_path()); });
    return true;
  }();
  (void)registered;
  Rng rng(seed);
  if (rng() % 2 == 0) {
    auto out = mutate_attachment(data, size, rng);
    if (out && !out->empty() && out->size() <= max_size) {
      std::copy(out->begin(), out->end(), data);
      return out->size();
    }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}
