// Writes seed corpora for the fuzzers into
// DIR/{model,model_delta,routing,segments,demux,decoder}: small valid blobs
// (as stored, first byte 0) and their payloads (first byte 1), small dydca
// .mkv files (format 1 and 2) and a plain one, and the decoder's whole files.
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

// `paths` QoS levels; chunk c runs path paths-1-l at level l (every third chunk the global path).
RoutingMap small_routing(int w, int h, int frames, int chunks, int paths = 2) {
  RoutingMap r;
  r.tile_size = 16;
  r.lr_width = w;
  r.lr_height = h;
  r.frames = frames;
  r.num_chunks = chunks;
  for (int l = 0; l < paths; ++l) {
    r.chunk_path.emplace_back();
    for (int c = 0; c < chunks; ++c) r.chunk_path.back().push_back(uint8_t(c % 3 == 2 ? 0 : paths - 1 - l));
  }
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


// The decoder fuzzer's seeds (DIR/decoder): small whole dydca files, format 1
// and 2, at every scale and weight format (int8 with activation scales runs
// the int8 runtime), a multi-model file, a static model, a stream with B-frames.
Status write_decoder_seeds(const std::filesystem::path& dir) {
  constexpr int kLr = 32, kFrames = 6;
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 40;
  cfg.gop = 2;  // keyframes at 0, 2, 4: the segment starts
  auto video = encode_h264(synthetic_clip(kLr, kLr, kFrames), {25, 1}, cfg);
  if (!video) return video.status();
  struct Weights {
    const char* name;
    WeightFormat format;
    bool act;
  };
  const Weights weights[] = {{"fp32", WeightFormat::kFp32, false},
                             {"fp16", WeightFormat::kFp16, false},
                             {"int8", WeightFormat::kInt8, false},
                             {"int8act", WeightFormat::kInt8, true}};
  auto three_paths = [](Model m, bool act) {
    m.arch.paths = {{0, 0}, {1, 2}, {2, 4}};
    return act ? with_act(std::move(m)) : m;
  };
  for (int scale = 1; scale <= 4; ++scale) {
    const int hr_w = kLr * scale - (scale > 1 ? 1 : 0), hr_h = kLr * scale;
    for (const Weights& w : weights) {
      const std::string name = "x" + std::to_string(scale) + "_" + w.name;
      const Model m = three_paths(small_model(scale, 4, 4, 2, uint32_t(scale)), w.act);
      DydcaPayload payload;
      payload.models.push_back(m);
      payload.routing = small_routing(kLr, kLr, kFrames, 3, 3);
      DydcaWriteParams p1;
      p1.hr_width = hr_w;
      p1.hr_height = hr_h;
      p1.model_blob = {w.format, 3};
      DYDCA_TRY(write_dydca_file((dir / ("f1_" + name + ".mkv")).string(), *video, payload, p1));

      // Format 2: a full model, an update of it, a full model without routing.
      std::vector<SegmentRecord> segs(3);
      auto first = serialize_model(m, {w.format, 3});
      if (!first) return first.status();
      auto first_parsed = parse_model(*first);
      if (!first_parsed) return first_parsed.status();
      const Model moved = three_paths(small_model(scale, 4, 4, 2, uint32_t(scale) + 10), w.act);
      auto update = serialize_model_delta(*first_parsed, moved, {3});
      if (!update) return update.status();
      auto last = serialize_model(moved, {w.format, 3});
      if (!last) return last.status();
      auto r0 = serialize_routing(small_routing(kLr, kLr, 2, 3, 3));
      auto r1 = serialize_routing(small_routing(kLr, kLr, 2, 2, 3));
      if (!r0 || !r1) return Status::error("routing");
      segs[0] = {0, 2, false, std::move(*first), std::move(*r0)};
      segs[1] = {2, 2, true, std::move(*update), std::move(*r1)};
      segs[2] = {4, 2, false, std::move(*last), {}};
      DydcaV2WriteParams p2;
      p2.hr_width = hr_w;
      p2.hr_height = hr_h;
      DYDCA_TRY(write_dydca_file_v2((dir / ("f2_" + name + ".mkv")).string(), *video, segs, p2));
    }
  }
  // Format 2 with one segment (its model's architecture may change: the
  // mutator's architecture moves keep such a file valid).
  {
    const Model m = three_paths(small_model(2, 4, 4, 2, 7), true);
    auto blob = serialize_model(m, {WeightFormat::kInt8, 3});
    auto routing = serialize_routing(small_routing(kLr, kLr, kFrames, 3, 3));
    if (!blob || !routing) return Status::error("one-segment seed");
    DydcaV2WriteParams p2;
    p2.hr_width = 2 * kLr;
    p2.hr_height = 2 * kLr;
    DYDCA_TRY(write_dydca_file_v2((dir / "f2_one_segment.mkv").string(), *video,
                                  {{0, kFrames, false, std::move(*blob), std::move(*routing)}}, p2));
  }
  // Two models side by side (the routing's path ids name models); a static
  // model (no routing); B-frames (reordered packets).
  DydcaPayload multi;
  multi.models = {small_model(2, 4, 4, 1, 3), small_model(2, 2, 4, 1, 4)};
  multi.routing = small_routing(kLr, kLr, kFrames, 2, 2);
  DydcaWriteParams p;
  p.hr_width = 2 * kLr;
  p.hr_height = 2 * kLr - 1;
  DYDCA_TRY(write_dydca_file((dir / "f1_multi.mkv").string(), *video, multi, p));
  DydcaPayload still;
  still.models.push_back(small_model(2, 4, 4, 1, 5));
  DYDCA_TRY(write_dydca_file((dir / "f1_static.mkv").string(), *video, still, p));
  X264Config bcfg = cfg;
  bcfg.preset = "veryfast";
  bcfg.gop = 250;
  auto bvideo = encode_h264(synthetic_clip(kLr, kLr, kFrames, 3), {25, 1}, bcfg);
  if (!bvideo) return bvideo.status();
  DydcaPayload bpayload;
  bpayload.models.push_back(three_paths(small_model(2, 4, 4, 2, 6), true));
  bpayload.routing = small_routing(kLr, kLr, kFrames, 3, 3);
  return write_dydca_file((dir / "f1_bframes.mkv").string(), *bvideo, bpayload, p);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
    return 2;
  }
  namespace fs = std::filesystem;
  const fs::path dir = argv[1];
  for (const char* sub : {"model", "model_delta", "routing", "segments", "demux", "decoder"}) fs::create_directories(dir / sub);
  const Model model = small_model(2, 4, 4, 1);
  for (auto f : {WeightFormat::kFp32, WeightFormat::kFp16, WeightFormat::kInt8})
    write_both(dir / "model", std::string("m_") + weight_format_name(f), fuzz::kModelKind,
               *serialize_model(model, {f, 3}));
  write_both(dir / "model", "m_x3", fuzz::kModelKind, *serialize_model(small_model(3, 2, 4, 2), {}));
  write_both(dir / "model", "m_act_int8", fuzz::kModelKind,
             *serialize_model(with_act(model), {WeightFormat::kInt8, 3}));
  const Model& ref = fuzz::delta_reference();
  const Model moved = small_model(2, 4, 4, 1, 7);  // every tensor changes
  Model one = ref;                                  // one weight and one bias change
  one.tensors[0].data[1] += 0.25f;
  one.tensors[1].data[0] = -1.0f;
  write_both(dir / "model_delta", "d_all", fuzz::kDeltaKind, *serialize_model_delta(ref, moved, {3}));
  write_both(dir / "model_delta", "d_one", fuzz::kDeltaKind, *serialize_model_delta(ref, one, {3}));
  write_both(dir / "model_delta", "d_none", fuzz::kDeltaKind, *serialize_model_delta(ref, ref, {3}));
  write_both(dir / "model_delta", "d_act", fuzz::kDeltaKind,
             *serialize_model_delta(ref, with_act(moved), {3}));
  write_both(dir / "routing", "r_small", fuzz::kRoutingKind,
             *serialize_routing(small_routing(64, 48, 6, 3)));
  write_both(dir / "routing", "r_wide", fuzz::kRoutingKind,
             *serialize_routing(small_routing(200, 40, 3, 9)));

  // Segment table: a full model with routing, an update without, a full model.
  std::vector<SegmentRecord> segs(3);
  segs[0] = {0, 2, false, *serialize_model(ref, {WeightFormat::kInt8, 3}),
             *serialize_routing(small_routing(32, 32, 2, 2))};
  segs[1] = {2, 2, true, *serialize_model_delta(*parse_model(segs[0].model), moved, {3}), {}};
  segs[2] = {4, 1, false, *serialize_model(moved, {WeightFormat::kFp16, 3}), {}};
  write_both(dir / "segments", "s_three", fuzz::kSegmentsKind, *serialize_segments(segs));
  write_both(dir / "segments", "s_one", fuzz::kSegmentsKind,
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
  if (s) s = write_decoder_seeds(dir / "decoder");
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  return 0;
}
