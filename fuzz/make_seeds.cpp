// Writes seed corpora for the fuzzers into
// DIR/{model,model_delta,routing,segments,demux}: small valid blobs (as
// stored, first byte 0) and their payloads (first byte 1), small dydca .mkv
// files (format 1 and 2) and a plain one.
#include <filesystem>
#include <fstream>
#include <random>

#include "dydca/container.h"
#include "dydca/synthetic.h"
#include "envelope.h"
#include "fuzz_common.h"

using namespace dydca;
using fuzz::small_model;

namespace {

RoutingMap small_routing(int w, int h, int frames, int chunks) {
  RoutingMap r;
  r.tile_size = 16;
  r.lr_width = w;
  r.lr_height = h;
  r.frames = frames;
  r.num_chunks = chunks;
  r.chunk_path = {std::vector<uint8_t>(size_t(chunks), 1), std::vector<uint8_t>(size_t(chunks), 0)};
  std::mt19937 rng(2);
  for (int i = 0; i < frames * r.tiles_per_frame(); ++i)
    r.chunk_ids.push_back(rng() % 5 == 0 ? uint8_t(rng() % uint32_t(chunks))
                                         : uint8_t(i % r.tiles_per_frame() % chunks));
  for (int f = 1; f < frames; f += 2)  // some frames equal to the previous one
    std::copy_n(r.chunk_ids.begin() + (f - 1) * r.tiles_per_frame(), r.tiles_per_frame(),
                r.chunk_ids.begin() + f * r.tiles_per_frame());
  return r;
}

void write(const std::filesystem::path& p, uint8_t mode, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.put(char(mode));
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_both(const std::filesystem::path& dir, const std::string& name,
                const blob::EnvelopeKind& kind, const std::vector<uint8_t>& sealed) {
  write(dir / (name + ".blob"), 0, sealed);
  auto opened = blob::open_envelope(kind, sealed.data(), sealed.size());
  if (opened) write(dir / (name + ".payload"), 1, opened->payload);
}

// The model with int8 activation scales (blob and update version 2).
Model with_act(Model m) {
  for (const PathSpec& p : m.arch.paths) {
    std::vector<float> a;
    for (int i = 0; p.width > 0 && i < 1 + 2 * p.depth; ++i) a.push_back(0.01f * float(i + 1));
    m.act.path.push_back(a);
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
    return 2;
  }
  namespace fs = std::filesystem;
  const fs::path dir = argv[1];
  for (const char* sub : {"model", "model_delta", "routing", "segments", "demux"}) fs::create_directories(dir / sub);
  const blob::EnvelopeKind model_kind{"DYDCAMDL", "model blob", kModelBlobVersion,
                                      kMaxModelPayloadBytes};
  const blob::EnvelopeKind routing_kind{"DYDCARTG", "routing blob", kRoutingBlobVersion,
                                        kMaxRoutingPayloadBytes};
  const Model model = small_model(2, 4, 4, 1);
  for (auto f : {WeightFormat::kFp32, WeightFormat::kFp16, WeightFormat::kInt8})
    write_both(dir / "model", std::string("m_") + weight_format_name(f), model_kind,
               *serialize_model(model, {f, 3}));
  write_both(dir / "model", "m_x3", model_kind, *serialize_model(small_model(3, 2, 4, 2), {}));
  write_both(dir / "model", "m_act_int8", model_kind,
             *serialize_model(with_act(model), {WeightFormat::kInt8, 3}));
  const blob::EnvelopeKind delta_kind{"DYDCADLT", "model update", kModelDeltaVersion,
                                      kMaxModelPayloadBytes};
  const Model& ref = fuzz::delta_reference();
  const Model moved = small_model(2, 4, 4, 1, 7);  // every tensor changes
  Model one = ref;                                  // one weight and one bias change
  one.tensors[0].data[1] += 0.25f;
  one.tensors[1].data[0] = -1.0f;
  write_both(dir / "model_delta", "d_all", delta_kind, *serialize_model_delta(ref, moved, {3}));
  write_both(dir / "model_delta", "d_one", delta_kind, *serialize_model_delta(ref, one, {3}));
  write_both(dir / "model_delta", "d_none", delta_kind, *serialize_model_delta(ref, ref, {3}));
  write_both(dir / "model_delta", "d_act", delta_kind,
             *serialize_model_delta(ref, with_act(moved), {3}));
  write_both(dir / "routing", "r_small", routing_kind,
             *serialize_routing(small_routing(64, 48, 6, 3)));
  write_both(dir / "routing", "r_wide", routing_kind,
             *serialize_routing(small_routing(200, 40, 3, 9)));

  const blob::EnvelopeKind segments_kind{"DYDCASEG", "segment table", kSegmentsBlobVersion,
                                         kMaxSegmentsPayloadBytes};
  // Segment table: a full model with routing, an update without, a full model.
  std::vector<SegmentRecord> segs(3);
  segs[0] = {0, 2, false, *serialize_model(ref, {WeightFormat::kInt8, 3}),
             *serialize_routing(small_routing(32, 32, 2, 2))};
  segs[1] = {2, 2, true, *serialize_model_delta(*parse_model(segs[0].model), moved, {3}), {}};
  segs[2] = {4, 1, false, *serialize_model(moved, {WeightFormat::kFp16, 3}), {}};
  write_both(dir / "segments", "s_three", segments_kind, *serialize_segments(segs));
  write_both(dir / "segments", "s_one", segments_kind,
             *serialize_segments({{0, 1, false, {1, 2, 3}, {}}}));

  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 40;
  cfg.gop = 2;  // keyframes at 0, 2, 4: the format-2 seed's segment starts
  auto video = encode_h264(synthetic_clip(32, 32, 5), {25, 1}, cfg);
  if (!video) return 1;
  DydcaPayload payload;
  payload.models.push_back(small_model(2, 4, 4, 1));
  payload.routing = small_routing(32, 32, 5, 2);
  DydcaWriteParams params;
  params.hr_width = 64;
  params.hr_height = 62;
  params.model_blob.weights = WeightFormat::kInt8;
  Status s = write_dydca_file((dir / "demux" / "dydca.mkv").string(), *video, payload, params);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  DydcaV2WriteParams v2;
  v2.hr_width = 64;
  v2.hr_height = 62;
  s = write_dydca_file_v2((dir / "demux" / "dydca_v2.mkv").string(), *video, segs, v2);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  s = write_video_file((dir / "demux" / "plain.mkv").string(), *video);
  return s ? 0 : 1;
}
