// Container format 2: the model update blob (DYDCADLT), the segment table
// (DYDCASEG), format-2 .mkv files (batch and streaming writer/reader), and
// format-1 files read through the streaming reader. Hostile inputs give one
// clear error each.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "../container/src/byte_io.h"  // white-box: craft updates and tables with bad fields
#include "../container/src/envelope.h"
#include "dydca/container.h"
#include "dydca/synthetic.h"
#include "test_util.h"

using namespace dydca;
namespace fs = std::filesystem;

namespace {

const blob::EnvelopeKind kDeltaKind{"DYDCADLT", "model update", kModelDeltaVersion,
                                    kMaxModelPayloadBytes};
const blob::EnvelopeKind kDeltaKindV1{"DYDCADLT", "model update", 1, kMaxModelPayloadBytes};
const blob::EnvelopeKind kSegmentsKind{"DYDCASEG", "segment table", kSegmentsBlobVersion,
                                       kMaxSegmentsPayloadBytes};

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

Model base_model(uint32_t seed = 1, int scale = 2) {
  return test::random_model(scale, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, seed);
}

Model updated(const Model& m, uint32_t seed, float rel = 0.05f) {
  return test::perturbed_model(m, seed, rel);
}

void check_bit_identical(const Model& a, const Model& b) {
  CHECK(a.arch.paths == b.arch.paths);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].shape == b.tensors[i].shape);
    CHECK(std::memcmp(a.tensors[i].data.data(), b.tensors[i].data.data(),
                      a.tensors[i].data.size() * 4) == 0);
  }
}

// Payload of an update or a table (white-box).
std::vector<uint8_t> payload_of(const blob::EnvelopeKind& kind, const std::vector<uint8_t>& b) {
  auto opened = blob::open_envelope(kind, b.data(), b.size());
  REQUIRE(opened);
  return opened->payload;
}
std::vector<uint8_t> seal(const blob::EnvelopeKind& kind, const std::vector<uint8_t>& payload) {
  auto s = blob::seal_envelope(kind, payload, 3);
  REQUIRE(s);
  return *s;
}

std::string delta_error(const Model& ref, const std::vector<uint8_t>& blob) {
  auto m = apply_model_delta(ref, blob);
  CHECK_FALSE(m);
  if (m) return {};
  CHECK(m.error_message().find('\n') == std::string::npos);
  return m.error_message();
}

// One hand-made update tensor entry.
void put_entry(blob::ByteWriter& w, const std::string& name, const std::vector<int>& shape,
               uint8_t coding, const std::vector<uint8_t>& data) {
  w.u8(uint8_t(name.size()));
  w.bytes(name.data(), name.size());
  w.u8(uint8_t(shape.size()));
  for (int d : shape) w.u32(uint32_t(d));
  w.u8(coding);
  w.bytes(data.data(), data.size());
}

RoutingMap routing_for(int lr_w, int lr_h, int frames, int chunks, uint32_t seed) {
  RoutingMap r;
  r.tile_size = 16;
  r.lr_width = lr_w;
  r.lr_height = lr_h;
  r.frames = frames;
  r.num_chunks = chunks;
  r.chunk_path = {{}, {}};
  for (int c = 0; c < chunks; ++c) {
    r.chunk_path[0].push_back(uint8_t(1 + c % 2));
    r.chunk_path[1].push_back(0);
  }
  std::mt19937 rng(seed);
  r.chunk_ids.resize(size_t(frames) * size_t(r.tiles_per_frame()));
  for (auto& id : r.chunk_ids) id = uint8_t(rng() % uint32_t(chunks));
  return r;
}

using test::read_bytes;
using test::write_bytes;

// A small LR stream with an IDR every `gop` frames (the segment starts).
EncodedVideo small_video(int width, int height, int frames, int gop) {
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 30;
  cfg.gop = gop;
  auto enc = encode_h264(synthetic_clip(width, height, frames), {25, 1}, cfg);
  REQUIRE(enc);
  return *enc;
}

// Segments at every keyframe of `video`: segment 0 a full model, the others
// updates of the previous reconstructed model (as the encoder does), routing
// on every other segment. `models` receives what the client must rebuild.
std::vector<SegmentRecord> make_segments(const EncodedVideo& video, std::vector<Model>* models,
                                         std::vector<std::optional<RoutingMap>>* routings) {
  std::vector<int> starts;
  for (size_t i = 0; i < video.packets.size(); ++i)
    if (video.packets[i].keyframe) starts.push_back(int(i));
  REQUIRE(!starts.empty());
  REQUIRE(starts[0] == 0);
  std::vector<SegmentRecord> segs;
  Model current = base_model(3);
  for (size_t k = 0; k < starts.size(); ++k) {
    SegmentRecord s;
    s.first_frame = starts[k];
    s.frames = (k + 1 < starts.size() ? starts[k + 1] : int(video.packets.size())) - starts[k];
    if (k == 0) {
      auto b = serialize_model(current, {WeightFormat::kFp16, 3});
      REQUIRE(b);
      s.model = *b;
      current = *parse_model(*b);  // what the client has
    } else {
      const Model target = updated(current, uint32_t(100 + k));
      auto d = serialize_model_delta(current, target, {3});
      REQUIRE(d);
      s.model_is_delta = true;
      s.model = *d;
      current = *apply_model_delta(current, *d);
    }
    std::optional<RoutingMap> r;
    if (k % 2 == 0) {
      r = routing_for(video.width, video.height, s.frames, 3, uint32_t(k));
      s.routing = *serialize_routing(*r, 3);
    }
    if (models) models->push_back(current);
    if (routings) routings->push_back(r);
    segs.push_back(std::move(s));
  }
  return segs;
}

}  // namespace

// ---- model update blob --------------------------------------------------------------

TEST_CASE("model update: within scale/2 of the target, bit-identical when applied twice") {
  const Model ref = base_model(1);
  const Model target = updated(ref, 2);
  auto delta = serialize_model_delta(ref, target);
  REQUIRE(delta);
  CHECK(*delta == *serialize_model_delta(ref, target));  // deterministic
  ModelBlobInfo info;
  auto got = apply_model_delta(ref, *delta, &info);
  REQUIRE(got);
  CHECK(info.version == 1);  // the target has no int8 activation scales
  CHECK(info.blob_bytes == delta->size());
  CHECK(info.weights == WeightFormat::kInt8);
  check_bit_identical(*got, *apply_model_delta(ref, *delta));
  REQUIRE(got->tensors.size() == target.tensors.size());
  for (size_t ti = 0; ti < target.tensors.size(); ++ti) {
    const Tensor& t = target.tensors[ti];
    const Tensor& g = got->tensors[ti];
    const Tensor& r = ref.tensors[ti];
    if (t.shape.size() == 1) {
      CHECK(g.data == t.data);  // biases: fp32 values, exact
      continue;
    }
    const size_t outs = size_t(t.shape[0]), per = t.data.size() / outs;
    for (size_t o = 0; o < outs; ++o) {
      float max_abs = 0;
      for (size_t i = o * per; i < (o + 1) * per; ++i)
        max_abs = std::max(max_abs, std::fabs(t.data[i] - r.data[i]));
      const float scale = max_abs / 127.0f;
      for (size_t i = o * per; i < (o + 1) * per; ++i) {
        const float err = std::fabs(g.data[i] - t.data[i]);
        CHECK_MESSAGE(err <= scale / 2 * 1.0001f + 1e-6f * std::fabs(t.data[i]),
                      t.name << "[" << i << "] err " << err << " scale " << scale);
      }
    }
  }

  // A chain of updates, each against the previous reconstruction, stays
  // close to the chain of targets (no drift: the error does not accumulate).
  Model client = *got, server_target = target;
  for (uint32_t k = 0; k < 5; ++k) {
    server_target = updated(server_target, 10 + k);
    auto d = serialize_model_delta(client, server_target);
    REQUIRE(d);
    auto next = apply_model_delta(client, *d);
    REQUIRE(next);
    client = std::move(*next);
  }
  double max_err = 0, max_w = 0;
  for (size_t ti = 0; ti < client.tensors.size(); ++ti)
    for (size_t i = 0; i < client.tensors[ti].data.size(); ++i) {
      max_err = std::max(max_err, double(std::fabs(client.tensors[ti].data[i] -
                                                   server_target.tensors[ti].data[i])));
      max_w = std::max(max_w, double(std::fabs(server_target.tensors[ti].data[i])));
    }
  CHECK(max_err < 0.01 * max_w);

  // Sizes next to a full model (the default network C16 E16 N2 x2, and the
  // C32 E32 N4 of docs/formats.md), for the record.
  for (auto [C, N] : {std::pair{16, 2}, std::pair{32, 4}}) {
    const Model a = test::random_model(2, C, C, N, {{0, 0}, {N, C}}, 5);
    const Model b = updated(a, 6);
    const size_t full16 = serialize_model(b, {WeightFormat::kFp16, 19})->size();
    const size_t full8 = serialize_model(b, {WeightFormat::kInt8, 19})->size();
    const size_t upd = serialize_model_delta(a, b)->size();
    MESSAGE("C" << C << " N" << N << ": full fp16 " << full16 << " B, full int8 " << full8
                << " B, update (every tensor changed) " << upd << " B");
    CHECK(upd < full16);
  }
}

TEST_CASE("model update at the model's step: a full int8 model's precision, small codes") {
  // updated() moves every weight by 5 % of its layer's spread: the codes at
  // the target's int8 step are small integers, far cheaper than a dense
  // update, and the error stays within half the target's int8 step.
  const Model ref = test::random_model(2, 16, 16, 2, {{0, 0}, {2, 16}}, 5);
  const Model target = updated(ref, 6);
  ModelDeltaOptions coarse;
  coarse.model_step = true;
  auto d = serialize_model_delta(ref, target, coarse);
  REQUIRE(d);
  auto got = apply_model_delta(ref, *d);
  REQUIRE(got);
  const size_t full8 = serialize_model(target, {WeightFormat::kInt8, 19})->size();
  const size_t dense = serialize_model_delta(ref, target)->size();
  MESSAGE("C16 N2: full int8 " << full8 << " B, dense update " << dense << " B, update at the "
          "model's step " << d->size() << " B");
  CHECK(d->size() < full8 * 3 / 4);
  for (size_t ti = 0; ti < target.tensors.size(); ++ti) {
    const Tensor& t = target.tensors[ti];
    if (t.shape.size() == 1) continue;
    const size_t outs = size_t(t.shape[0]), per = t.data.size() / outs;
    for (size_t o = 0; o < outs; ++o) {
      float max_abs = 0;
      for (size_t i = o * per; i < (o + 1) * per; ++i)
        max_abs = std::max({max_abs, std::fabs(t.data[i]),
                            std::fabs(t.data[i] - ref.tensors[ti].data[i])});
      const float step = max_abs / 127.0f;
      for (size_t i = o * per; i < (o + 1) * per; ++i)
        CHECK(std::fabs(got->tensors[ti].data[i] - t.data[i]) <= step / 2 * 1.0001f + 1e-6f);
    }
  }
}

TEST_CASE("model update: unchanged tensors are omitted; an empty update is the reference") {
  const Model ref = base_model(1);
  Model target = ref;
  target.tensors[0].data[3] += 0.01f;        // head.weight: one weight
  target.tensors[1].data[0] = 0.5f;          // head.bias
  target.tensors.back().data[0] += 1e-30f;   // skip.bias: below fp32 resolution -> same bits
  auto delta = serialize_model_delta(ref, target);
  REQUIRE(delta);
  const std::vector<uint8_t> p = payload_of(kDeltaKind, *delta);
  CHECK((p[4] | p[5] << 8) == 2);  // tensor count after the u32 fingerprint
  auto got = apply_model_delta(ref, *delta);
  REQUIRE(got);
  CHECK(got->tensors[0].data[3] == doctest::Approx(target.tensors[0].data[3]).epsilon(1e-6));
  CHECK(got->tensors[1].data == target.tensors[1].data);
  for (size_t i = 2; i < ref.tensors.size(); ++i) CHECK(got->tensors[i].data == ref.tensors[i].data);

  auto same = serialize_model_delta(ref, ref);
  REQUIRE(same);
  CHECK(same->size() < 40);
  auto back = apply_model_delta(ref, *same);
  REQUIRE(back);
  check_bit_identical(*back, ref);

  // Tensor order in the target does not matter; the result keeps the reference's.
  Model shuffled = target;
  std::reverse(shuffled.tensors.begin(), shuffled.tensors.end());
  CHECK(*serialize_model_delta(ref, shuffled) == *delta);
}

TEST_CASE("model update: refused inputs, one clear error each") {
  const Model ref = base_model(1);
  const Model target = updated(ref, 2);
  auto good = serialize_model_delta(ref, target);
  REQUIRE(good);

  // Writer: different architecture, missing or reshaped tensors.
  CHECK(contains(serialize_model_delta(ref, base_model(1, 3)).error_message(), "architecture"));
  Model missing = target;
  missing.tensors.pop_back();
  CHECK_FALSE(serialize_model_delta(ref, missing));
  Model extra = target;
  extra.tensors.push_back({"extra.weight", {2, 2}, {1, 2, 3, 4}, {}, {}});
  CHECK_FALSE(serialize_model_delta(ref, extra));
  Model inf = target;
  inf.tensors[0].data[0] = INFINITY;
  CHECK(contains(serialize_model_delta(ref, inf).error_message(), "not finite"));

  // Applied to another model: the fingerprint says so.
  CHECK(contains(delta_error(base_model(9), *good), "another reference model"));
  CHECK(contains(delta_error(target, *good), "another reference model"));

  // Damaged bytes: truncation anywhere, flipped bits, wrong magic, newer version.
  for (size_t cut : {size_t(0), size_t(7), size_t(20), good->size() / 2, good->size() - 1})
    delta_error(ref, std::vector<uint8_t>(good->begin(), good->begin() + std::ptrdiff_t(cut)));
  std::vector<uint8_t> flipped = *good;
  flipped[30] ^= 0x10;
  CHECK(contains(delta_error(ref, flipped), "checksum"));
  CHECK(contains(delta_error(ref, *serialize_model(target)), "bad magic"));
  std::vector<uint8_t> newer = *good;
  newer[8] = 3;
  CHECK(contains(delta_error(ref, newer), "not supported"));

  // Crafted payloads with a valid envelope and fingerprint.
  const uint32_t fp = model_fingerprint(ref);
  auto craft = [&](uint16_t count, const std::function<void(blob::ByteWriter&)>& body) {
    blob::ByteWriter w;
    w.u32(fp);
    w.u16(count);
    body(w);
    return seal(kDeltaKindV1, w.take());  // version-1 payloads: no scale section
  };
  const std::vector<int> bias_shape = ref.tensors[1].shape;  // head.bias [16]
  const std::vector<uint8_t> bias(size_t(bias_shape[0]) * 4, 0);
  const std::vector<int> w_shape = ref.tensors[0].shape;  // head.weight [16,1,3,3]
  std::vector<uint8_t> w_data(size_t(w_shape[0]) * 4, 0);  // scales 0
  w_data.resize(w_data.size() + ref.tensors[0].data.size(), 1);
  CHECK(apply_model_delta(ref, craft(1, [&](auto& w) {
    put_entry(w, "head.bias", bias_shape, 0, bias);
  })));
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "nope.bias", bias_shape, 0, bias);
                 })),
                 "reference lacks"));
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.bias", {8}, 0, std::vector<uint8_t>(32, 0));
                 })),
                 "has shape [8], the reference has [16]"));
  CHECK(contains(delta_error(ref, craft(2, [&](auto& w) {
                   put_entry(w, "head.bias", bias_shape, 0, bias);
                   put_entry(w, "head.bias", bias_shape, 0, bias);
                 })),
                 "appears twice"));
  CHECK(contains(delta_error(ref, craft(2, [&](auto& w) {
                   put_entry(w, "head.bias", bias_shape, 0, bias);
                   put_entry(w, "head.weight", w_shape, 1, w_data);
                 })),
                 "out of the reference's order"));
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.bias", bias_shape, 1, bias);
                 })),
                 "coding"));
  std::vector<uint8_t> nan_bias = bias;
  nan_bias[2] = 0xc0;
  nan_bias[3] = 0x7f;
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.bias", bias_shape, 0, nan_bias);
                 })),
                 "not finite"));
  std::vector<uint8_t> minus128 = w_data;
  minus128.back() = 0x80;
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.weight", w_shape, 1, minus128);
                 })),
                 "-128"));
  std::vector<uint8_t> neg_scale = w_data;
  neg_scale[3] = 0xbf;  // scale 0 -> -0.5
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.weight", w_shape, 1, neg_scale);
                 })),
                 "invalid scale"));
  std::vector<uint8_t> huge = w_data;
  for (int i = 0; i < 4; ++i) huge[size_t(i)] = i >= 2 ? 0x7f : 0xff;  // scale 3.4e38
  std::fill(huge.begin() + 4 * w_shape[0], huge.end(), uint8_t(127));
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.weight", w_shape, 1, huge);
                 })),
                 "overflows"));
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.bias", bias_shape, 0, {1, 2, 3});
                 })),
                 "truncated"));
  CHECK(contains(delta_error(ref, craft(1, [&](auto& w) {
                   put_entry(w, "head.bias", bias_shape, 0, bias);
                   w.u8(0);
                 })),
                 "trailing"));
  CHECK(contains(delta_error(ref, craft(2000, [](auto&) {})), "changes 2000 tensors"));
  CHECK_FALSE(apply_model_delta(ref, nullptr, 0));
}

// ---- segment table --------------------------------------------------------------------

TEST_CASE("segment table: round trip, and hostile tables refused") {
  const Model m = base_model(1);
  const std::vector<uint8_t> full = *serialize_model(m);
  const std::vector<uint8_t> upd = *serialize_model_delta(m, updated(m, 2));
  std::vector<SegmentRecord> segs(3);
  segs[0] = {0, 10, false, full, *serialize_routing(routing_for(64, 48, 10, 2, 1))};
  segs[1] = {10, 1, true, upd, {}};
  segs[2] = {11, 5, false, full, *serialize_routing(routing_for(64, 48, 5, 2, 2))};
  auto blob = serialize_segments(segs);
  REQUIRE(blob);
  auto back = parse_segments(*blob);
  REQUIRE(back);
  REQUIRE(back->size() == 3);
  for (size_t k = 0; k < 3; ++k) {
    CHECK((*back)[k].first_frame == segs[k].first_frame);
    CHECK((*back)[k].frames == segs[k].frames);
    CHECK((*back)[k].model_is_delta == segs[k].model_is_delta);
    CHECK((*back)[k].model == segs[k].model);
    CHECK((*back)[k].routing == segs[k].routing);
  }

  auto refused = [&](std::vector<SegmentRecord> s, const std::string& what) {
    auto b = serialize_segments(s);
    CHECK_FALSE(b);
    if (!b) CHECK_MESSAGE(contains(b.error_message(), what), b.error_message());
  };
  auto bad = segs;
  bad[1].first_frame = 12;
  refused(bad, "contiguous");
  bad = segs;
  bad[0].first_frame = 1;
  refused(bad, "contiguous");
  bad = segs;
  bad[1].frames = 0;
  refused(bad, "0 frames");
  bad = segs;
  bad[0].model_is_delta = true;
  refused(bad, "segment 0 has a model update");
  bad = segs;
  bad[2].model.clear();
  refused(bad, "no model");
  refused({}, "0 segments");
  std::vector<SegmentRecord> many(size_t(kMaxSegments) + 1);
  for (size_t k = 0; k < many.size(); ++k) many[k] = {int(k), 1, false, {1}, {}};
  refused(many, "65537 segments");

  // The parser checks the same structure on crafted payloads.
  const std::vector<uint8_t> payload = payload_of(kSegmentsKind, *blob);
  auto parse_error = [&](const std::vector<uint8_t>& p) {
    auto r = parse_segments(seal(kSegmentsKind, p));
    CHECK_FALSE(r);
    return r ? std::string() : r.error_message();
  };
  auto with_u32 = [&](size_t at, uint32_t v) {
    std::vector<uint8_t> p = payload;
    for (int i = 0; i < 4; ++i) p[at + size_t(i)] = uint8_t(v >> (8 * i));
    return p;
  };
  CHECK(contains(parse_error(with_u32(0, 0)), "0 segments"));
  CHECK(contains(parse_error(with_u32(0, kMaxSegments + 1)), "65537 segments"));
  CHECK(contains(parse_error(with_u32(0, 1000)), "truncated"));  // more records than bytes
  CHECK(contains(parse_error(with_u32(4, 3)), "contiguous"));    // segment 0 first frame
  CHECK(contains(parse_error(with_u32(8, 0)), "0 frames"));
  CHECK(contains(parse_error(with_u32(8, 0xffffffff)), "invalid frame range"));
  std::vector<uint8_t> p = payload;
  p[12] = 1;  // segment 0 flagged as an update
  CHECK(contains(parse_error(p), "segment 0 has a model update"));
  p[12] = 4;
  CHECK(contains(parse_error(p), "flags"));
  CHECK(contains(parse_error(with_u32(13, 0xfffffff0)), "truncated"));  // model size
  p = payload;
  p.push_back(0);
  CHECK(contains(parse_error(p), "trailing"));
  p = payload;
  p.resize(p.size() - 1);
  CHECK(contains(parse_error(p), "truncated"));
  std::vector<uint8_t> flipped = *blob;
  flipped[flipped.size() / 2] ^= 1;
  CHECK(contains(parse_segments(flipped).error_message(), "checksum"));
  CHECK(contains(parse_segments(full).error_message(), "bad magic"));
  CHECK_FALSE(parse_segments(nullptr, 0));
}

// ---- format-2 files ---------------------------------------------------------------------

TEST_CASE("format 2 .mkv (batch): segments, updates and routing read back; ffprobe is happy") {
  const std::string dir = test::temp_dir("container_v2_batch");
  const EncodedVideo enc = small_video(64, 48, 14, 4);
  std::vector<Model> models;
  std::vector<std::optional<RoutingMap>> routings;
  const std::vector<SegmentRecord> segs = make_segments(enc, &models, &routings);
  REQUIRE(segs.size() >= 3);
  DydcaV2WriteParams params;
  params.hr_width = 126;
  params.hr_height = 96;
  const std::string path = dir + "/v2.mkv";
  REQUIRE(write_dydca_file_v2(path, enc, segs, params));

  auto f = read_dydca_file(path);
  REQUIRE(f);
  CHECK(f->has_dydca);
  CHECK(f->format_version == 2);
  CHECK(f->tags.at(kTagFormat) == "2");
  CHECK(f->hr_width == 126);
  CHECK(f->scale == 2);
  CHECK(f->video.packets.size() == enc.packets.size());
  REQUIRE(f->segments.size() == segs.size());
  REQUIRE(f->segment_models.size() == segs.size());
  int64_t model_bytes = 0, routing_bytes = 0;
  for (size_t k = 0; k < segs.size(); ++k) {
    CHECK(f->segments[k].model == segs[k].model);
    CHECK(f->segments[k].routing == segs[k].routing);
    check_bit_identical(f->segment_models[k], models[k]);
    CHECK(f->segment_routing[k].has_value() == routings[k].has_value());
    if (routings[k]) CHECK(f->segment_routing[k]->chunk_ids == routings[k]->chunk_ids);
    model_bytes += int64_t(segs[k].model.size());
    routing_bytes += int64_t(segs[k].routing.size());
  }
  CHECK(f->model_bytes() == model_bytes);
  CHECK(f->routing_bytes() == routing_bytes);
  REQUIRE(f->models.size() == 1);  // segment 0's: the file's architecture for v1 callers
  CHECK_FALSE(f->routing);

  std::string out, err;
  CHECK(test::run("ffprobe -v error -show_streams '" + path + "'", &out) == 0);
  CHECK(contains(out, "codec_name=h264"));
  CHECK(contains(out, "TAG:filename=segments.dydca"));
  CHECK(contains(out, "TAG:mimetype=application/x-dydca-segments"));
  CHECK(test::run("ffprobe -v error -show_streams '" + path + "' 2>&1 >/dev/null", &err) == 0);
  CHECK_MESSAGE(err.empty(), err);

  // The table sits in front of the first cluster: libavformat reads it at open.
  const std::vector<uint8_t> bytes = read_bytes(path);
  const uint8_t cluster[4] = {0x1f, 0x43, 0xb6, 0x75};
  const char* magic = "DYDCASEG";
  const auto table_at = std::search(bytes.begin(), bytes.end(), magic, magic + 8);
  const auto cluster_at = std::search(bytes.begin(), bytes.end(), cluster, cluster + 4);
  REQUIRE(table_at != bytes.end());
  CHECK(table_at < cluster_at);
}

TEST_CASE("format 2 .mkv: the writer refuses inconsistent segments; damaged files are errors") {
  const std::string dir = test::temp_dir("container_v2_bad");
  const EncodedVideo enc = small_video(64, 48, 12, 4);
  const std::vector<SegmentRecord> segs = make_segments(enc, nullptr, nullptr);
  REQUIRE(segs.size() == 3);
  DydcaV2WriteParams params;
  params.hr_width = 128;
  params.hr_height = 96;
  const std::string bad = dir + "/bad.mkv";
  auto refused = [&](const std::vector<SegmentRecord>& s, const std::string& what,
                     const DydcaV2WriteParams& p) {
    Status st = write_dydca_file_v2(bad, enc, s, p);
    CHECK_FALSE(st);
    CHECK_MESSAGE(contains(st.message(), what), st.message());
    CHECK_FALSE(fs::exists(bad));
  };
  auto s = segs;
  s.pop_back();
  refused(s, "cover 8 frames but the video has 12", params);
  s = segs;
  s[1].frames = 3;
  s[2].first_frame = 7;
  s[2].frames = 5;
  refused(s, "routing covers", params);  // segment 2's routing has 4 frames
  s = segs;
  s[2].routing.clear();
  s[1].frames = 3;
  s[2].first_frame = 7;
  s[2].frames = 5;
  refused(s, "does not start on a keyframe", params);
  s = segs;
  {  // segment 2's routing with a third QoS level: one set of levels per file
    auto r = *parse_routing(s[2].routing);
    r.chunk_path.push_back(r.chunk_path.back());
    s[2].routing = *serialize_routing(r, 3);
  }
  refused(s, "QoS levels", params);
  s = segs;
  s[2].model = *serialize_model(base_model(4, 3));
  s[2].model_is_delta = false;
  refused(s, "architecture (x3", params);
  s = segs;
  s[2].model = *serialize_model(test::random_model(2, 8, 8, 1, {{0, 0}, {1, 8}}, 1));
  s[2].model_is_delta = false;
  refused(s, "architecture", params);
  s = segs;
  std::swap(s[1].model, s[2].model);  // updates applied to the wrong reference
  refused(s, "another reference model", params);
  s = segs;
  s[0].routing = *serialize_routing(routing_for(32, 48, 4, 2, 1));
  refused(s, "routing is for 32x48", params);
  DydcaV2WriteParams wrong = params;
  wrong.hr_width = 100;
  refused(segs, "HR width", wrong);

  // Damaged files.
  const std::string good = dir + "/good.mkv";
  REQUIRE(write_dydca_file_v2(good, enc, segs, params));
  const std::vector<uint8_t> bytes = read_bytes(good);
  auto read_error = [&](const std::vector<uint8_t>& content, const std::string& name) {
    write_bytes(dir + "/" + name, content);
    auto r = read_dydca_file(dir + "/" + name);
    CHECK_FALSE(r);
    if (r) return std::string();
    CHECK(r.error_message().find('\n') == std::string::npos);
    return r.error_message();
  };
  const char* magic = "DYDCASEG";
  const size_t at = size_t(std::search(bytes.begin(), bytes.end(), magic, magic + 8) - bytes.begin());
  std::vector<uint8_t> flipped = bytes;
  flipped[at + 200] ^= 0x04;
  std::string msg = read_error(flipped, "flipped.mkv");
  CHECK(contains(msg, "segments.dydca"));
  CHECK(contains(msg, "checksum"));
  CHECK(contains(read_error({bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() * 3 / 4)},
                            "cut.mkv"),
                 "truncated"));

  // Tags and attachments that do not fit together.
  const std::vector<uint8_t> table = *serialize_segments(segs);
  auto mux_with = [&](const std::map<std::string, std::string>& changes,
                      std::vector<Attachment> attachments) {
    MuxOptions mux;
    mux.tags = {{kTagVersion, "0.2.0"}, {kTagFormat, "2"},        {kTagHrWidth, "128"},
                {kTagHrHeight, "96"},   {kTagScale, "2"},          {kTagFrames, "12"},
                {kTagBlobs, kSegmentsFilename}};
    for (const auto& [k, v] : changes) {
      if (v.empty())
        mux.tags.erase(k);
      else
        mux.tags[k] = v;
    }
    mux.attachments = std::move(attachments);
    const std::string p = dir + "/crafted.mkv";
    REQUIRE(write_video_file(p, enc, mux));
    auto r = read_dydca_file(p);
    CHECK_FALSE(r);
    return r ? std::string() : r.error_message();
  };
  const Attachment seg_att{kSegmentsFilename, kSegmentsMimetype, table};
  const Attachment model_att{"model.dydca", kModelMimetype, *serialize_model(base_model(1))};
  CHECK(contains(mux_with({{kTagFormat, "3"}}, {seg_att}), "format 3 is not supported"));
  CHECK(contains(mux_with({{kTagFormat, "x"}}, {seg_att}), "DYDCA_FORMAT has an invalid value"));
  CHECK(contains(mux_with({}, {}), "missing attachment segments.dydca"));
  CHECK(contains(mux_with({{kTagBlobs, ""}}, {}), "missing attachment segments.dydca"));
  CHECK(contains(mux_with({}, {seg_att, model_att}), "format-2 file carries model"));
  CHECK(contains(mux_with({{kTagFormat, ""}}, {seg_att}), "segments.dydca in a format-1 file"));
  CHECK(contains(mux_with({{kTagFrames, "13"}}, {seg_att}), "12 of 13 frames"));
  CHECK(contains(mux_with({{kTagScale, "3"}}, {seg_att}), "scale"));
  CHECK(contains(mux_with({}, {{kSegmentsFilename, kSegmentsMimetype, {1, 2, 3}}}), "bad magic"));
}

// ---- streaming reader and writer ----------------------------------------------------------

namespace {

// Reads every packet; returns them, or the error at the end.
Expected<std::vector<EncodedPacket>> read_all_packets(DydcaReader& r) {
  std::vector<EncodedPacket> out;
  while (true) {
    EncodedPacket p;
    auto got = r.read_packet(p);
    if (!got) return got.status();
    if (!*got) return out;
    out.push_back(std::move(p));
  }
}

}  // namespace

TEST_CASE("format 2 .mkv (streaming): DydcaFileWriter -> DydcaReader, any segment order") {
  const std::string dir = test::temp_dir("container_v2_stream");
  const EncodedVideo enc = small_video(64, 48, 18, 4);
  std::vector<Model> models;
  std::vector<std::optional<RoutingMap>> routings;
  const std::vector<SegmentRecord> segs = make_segments(enc, &models, &routings);
  REQUIRE(segs.size() >= 4);
  DydcaV2WriteParams params;
  params.hr_width = 128;
  params.hr_height = 96;
  params.extra_tags["DYDCA_TEST_NOTE"] = "streamed";
  const std::string path = dir + "/stream.mkv";
  {
    EncodedVideo video_params = enc;
    video_params.packets.clear();
    auto w = DydcaFileWriter::open(path, video_params, segs, params);
    REQUIRE(w);
    for (const EncodedPacket& p : enc.packets) REQUIRE(w->write_packet(p));
    CHECK_FALSE(fs::exists(path));  // appears only when finished
    CHECK(w->packets_written() == int64_t(enc.packets.size()));
    REQUIRE(w->finish());
  }
  REQUIRE(fs::exists(path));

  auto r = DydcaReader::open(path);
  REQUIRE(r);
  CHECK(r->format_version() == 2);
  CHECK(r->has_dydca());
  CHECK(r->video().packets.empty());
  CHECK(r->video().width == 64);
  CHECK(r->hr_width() == 128);
  CHECK(r->scale() == 2);
  CHECK(r->frames() == int64_t(enc.packets.size()));
  CHECK(r->tags().count("DYDCA_TEST_NOTE") == 1);
  CHECK_FALSE(r->writer_version().empty());
  CHECK(r->arch().paths == models[0].arch.paths);
  REQUIRE(r->segments().size() == segs.size());
  int64_t model_bytes = 0;
  for (size_t k = 0; k < segs.size(); ++k) {
    const DydcaSegment& s = r->segments()[k];
    CHECK(s.first_frame == segs[k].first_frame);
    CHECK(s.frames == segs[k].frames);
    CHECK(s.model_is_delta == segs[k].model_is_delta);
    CHECK(s.model_bytes == int64_t(segs[k].model.size()));
    CHECK(s.routing_bytes == int64_t(segs[k].routing.size()));
    model_bytes += s.model_bytes;
    for (int f = s.first_frame; f < s.first_frame + s.frames; ++f)
      CHECK(r->segment_of_frame(f) == int(k));
  }
  CHECK(r->segment_of_frame(-1) == -1);
  CHECK(r->segment_of_frame(r->frames()) == -1);
  CHECK(r->model_bytes() == model_bytes);
  CHECK(r->model_count() == 1);

  // Models: in order, backwards, and jumping; always the encoder's bits.
  std::vector<int> order;
  for (int k = 0; k < int(segs.size()); ++k) order.push_back(k);
  for (int k = int(segs.size()) - 1; k >= 0; --k) order.push_back(k);
  order.insert(order.end(), {2, 0, 3, 3, 1});
  for (int k : order) {
    auto m = r->segment_model(k);
    REQUIRE(m);
    check_bit_identical(*m, models[size_t(k)]);
    auto rt = r->segment_routing(k);
    REQUIRE(rt);
    CHECK(rt->has_value() == routings[size_t(k)].has_value());
    if (*rt) CHECK((*rt)->chunk_ids == routings[size_t(k)]->chunk_ids);
  }
  CHECK_FALSE(r->segment_model(int(segs.size())));
  CHECK_FALSE(r->segment_routing(-1));

  // Packets as the batch reader sees them; models prepared on another thread
  // meanwhile (the decoder's pattern).
  auto batch = read_dydca_file(path);
  REQUIRE(batch);
  bool models_ok = true;
  std::thread prepare([&] {
    for (int k = 0; k < int(segs.size()); ++k) {
      auto m = r->segment_model(k);
      models_ok = models_ok && m && m->tensors[0].data == models[size_t(k)].tensors[0].data;
    }
  });
  auto packets = read_all_packets(*r);
  prepare.join();
  CHECK(models_ok);
  REQUIRE(packets);
  REQUIRE(packets->size() == batch->video.packets.size());
  for (size_t i = 0; i < packets->size(); ++i) {
    CHECK((*packets)[i].data == batch->video.packets[i].data);
    CHECK((*packets)[i].pts == batch->video.packets[i].pts);
    CHECK((*packets)[i].keyframe == batch->video.packets[i].keyframe);
  }
  CHECK(r->packets_read() == int64_t(enc.packets.size()));
  EncodedPacket p;
  auto again = r->read_packet(p);
  REQUIRE(again);
  CHECK_FALSE(*again);  // the end stays the end

  std::string out, err;
  CHECK(test::run("ffprobe -v error -show_streams '" + path + "' 2>&1 >/dev/null", &err) == 0);
  CHECK_MESSAGE(err.empty(), err);
  std::string nframes;
  CHECK(test::run("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                  "stream=nb_read_frames -of csv=p=0 '" + path + "'",
                  &nframes) == 0);
  CHECK(std::atoi(nframes.c_str()) == int(enc.packets.size()));
}

TEST_CASE("DydcaFileWriter refuses wrong packet streams and leaves no file") {
  const std::string dir = test::temp_dir("container_v2_writer");
  const EncodedVideo enc = small_video(64, 48, 12, 4);
  const std::vector<SegmentRecord> segs = make_segments(enc, nullptr, nullptr);
  DydcaV2WriteParams params;
  params.hr_width = 128;
  params.hr_height = 96;
  const std::string path = dir + "/w.mkv";
  EncodedVideo video_params = enc;
  video_params.packets.clear();

  {  // too few packets
    auto w = DydcaFileWriter::open(path, video_params, segs, params);
    REQUIRE(w);
    for (size_t i = 0; i + 1 < enc.packets.size(); ++i) REQUIRE(w->write_packet(enc.packets[i]));
    Status s = w->finish();
    CHECK(contains(s.message(), "11 packets for segments of 12 frames"));
    CHECK_FALSE(fs::exists(path));
  }
  {  // too many
    auto w = DydcaFileWriter::open(path, video_params, segs, params);
    REQUIRE(w);
    for (const EncodedPacket& p : enc.packets) REQUIRE(w->write_packet(p));
    CHECK(contains(w->write_packet(enc.packets[0]).message(), "more packets"));
    w->abort();
    w->abort();
    CHECK_FALSE(fs::exists(path));
  }
  {  // a segment that does not start on a keyframe
    auto w = DydcaFileWriter::open(path, video_params, segs, params);
    REQUIRE(w);
    REQUIRE(w->write_packet(enc.packets[0]));
    for (size_t i = 2; i < 6; ++i) {
      Status s = w->write_packet(enc.packets[i]);
      if (!s) {
        CHECK(contains(s.message(), "segment 1 (frame 4) does not start on a keyframe"));
        break;
      }
    }
  }
  CHECK_FALSE(fs::exists(path));
  {  // destroyed without finish
    auto w = DydcaFileWriter::open(path, video_params, segs, params);
    REQUIRE(w);
    REQUIRE(w->write_packet(enc.packets[0]));
  }
  CHECK_FALSE(fs::exists(path));
  CHECK(contains(DydcaFileWriter::open(dir + "/w.mp4", video_params, segs, params)
                     .error_message(),
                 "w.mp4"));
  CHECK_FALSE(DydcaFileWriter::open(path, video_params, {}, params));
}

TEST_CASE("DydcaReader: format-1 files are one segment; plain videos; truncated files") {
  const std::string dir = test::temp_dir("container_v2_reader");
  const EncodedVideo enc = small_video(64, 48, 12, 4);

  // Format 1, one dynamic model with routing.
  DydcaPayload payload;
  payload.models.push_back(base_model(5));
  payload.routing = routing_for(64, 48, 12, 3, 1);
  DydcaWriteParams params;
  params.hr_width = 128;
  params.hr_height = 96;
  REQUIRE(write_dydca_file(dir + "/v1.mkv", enc, payload, params));
  auto r = DydcaReader::open(dir + "/v1.mkv");
  REQUIRE(r);
  CHECK(r->format_version() == 1);
  REQUIRE(r->segments().size() == 1);
  CHECK(r->segments()[0].first_frame == 0);
  CHECK(r->segments()[0].frames == 12);
  CHECK(r->segment_of_frame(11) == 0);
  auto m = r->segment_model(0);
  REQUIRE(m);
  auto expected = parse_model(*serialize_model(payload.models[0], params.model_blob));
  check_bit_identical(*m, *expected);
  auto rt = r->segment_routing(0);
  REQUIRE(rt);
  REQUIRE(*rt);
  CHECK((*rt)->chunk_ids == payload.routing->chunk_ids);
  REQUIRE(r->v1_routing());
  CHECK(r->model_count() == 1);
  CHECK(r->routing_bytes() == int64_t(serialize_routing(*payload.routing)->size()));
  auto packets = read_all_packets(*r);
  REQUIRE(packets);
  CHECK(packets->size() == 12);

  // Format 1, several models (baselines), no routing.
  payload.models.push_back(base_model(6));
  payload.routing.reset();
  REQUIRE(write_dydca_file(dir + "/multi.mkv", enc, payload, params));
  r = DydcaReader::open(dir + "/multi.mkv");
  REQUIRE(r);
  CHECK(r->model_count() == 2);
  REQUIRE(r->model(1));
  CHECK(r->model(1)->tensors[0].data != r->model(0)->tensors[0].data);
  CHECK_FALSE(r->model(2));
  CHECK_FALSE(r->v1_routing());

  // Plain video.
  REQUIRE(write_video_file(dir + "/plain.mkv", enc));
  r = DydcaReader::open(dir + "/plain.mkv");
  REQUIRE(r);
  CHECK(r->format_version() == 0);
  CHECK_FALSE(r->has_dydca());
  CHECK(r->segments().empty());
  CHECK(r->model_count() == 0);
  packets = read_all_packets(*r);
  REQUIRE(packets);
  CHECK(packets->size() == 12);

  // A truncated format-2 file: the header is intact, the end of the packets
  // says what happened.
  const std::vector<SegmentRecord> segs = make_segments(enc, nullptr, nullptr);
  DydcaV2WriteParams p2;
  p2.hr_width = 128;
  p2.hr_height = 96;
  REQUIRE(write_dydca_file_v2(dir + "/v2.mkv", enc, segs, p2));
  const std::vector<uint8_t> bytes = read_bytes(dir + "/v2.mkv");
  const uint8_t cluster[4] = {0x1f, 0x43, 0xb6, 0x75};
  const auto first_cluster = std::search(bytes.begin(), bytes.end(), cluster, cluster + 4);
  REQUIRE(first_cluster != bytes.end());
  write_bytes(dir + "/cut.mkv", {bytes.begin(), first_cluster + (bytes.end() - first_cluster) / 2});
  r = DydcaReader::open(dir + "/cut.mkv");
  REQUIRE(r);
  packets = read_all_packets(*r);
  REQUIRE_FALSE(packets);
  CHECK(contains(packets.error_message(), "of 12 frames (truncated or damaged file)"));
  CHECK(contains(packets.error_message(), "cut.mkv"));
  // Cut inside the header: an error at open.
  write_bytes(dir + "/head.mkv", {bytes.begin(), bytes.begin() + 200});
  CHECK_FALSE(DydcaReader::open(dir + "/head.mkv"));
  CHECK_FALSE(DydcaReader::open(dir + "/missing.mkv"));
}

// ---- int8 activation scales (model blob v2, model update v2; issue 16) -------------

namespace {

const blob::EnvelopeKind kModelKindV2{"DYDCAMDL", "model blob", kModelBlobVersion,
                                      kMaxModelPayloadBytes};

Model with_act(Model m, float base = 0.01f) {
  m.act.path.clear();
  for (const PathSpec& p : m.arch.paths) {
    std::vector<float> a;
    for (int i = 0; p.width > 0 && i < 1 + 2 * p.depth; ++i) a.push_back(base * float(i + 1));
    m.act.path.push_back(a);
  }
  return m;
}

}  // namespace

TEST_CASE("model blob v2: int8 activation scales round trip; v1 blobs still load") {
  const Model plain = base_model(3);
  const Model m = with_act(plain);
  REQUIRE(validate_model(m));
  for (auto f : {WeightFormat::kFp32, WeightFormat::kFp16, WeightFormat::kInt8}) {
    CAPTURE(weight_format_name(f));
    auto blob = serialize_model(m, {f, 3});
    REQUIRE(blob);
    ModelBlobInfo info;
    auto back = parse_model(*blob, &info);
    REQUIRE(back);
    CHECK(info.version == 2);
    CHECK(back->act == m.act);
    // A model without scales is written as version 1 and reads back without them.
    auto v1 = serialize_model(plain, {f, 3});
    REQUIRE(v1);
    auto back1 = parse_model(*v1, &info);
    REQUIRE(back1);
    CHECK(info.version == 1);
    CHECK(back1->act.empty());
    // int8 tensors keep their codes next to the values, data == code * scale.
    for (const Tensor& t : back->tensors) {
      if (f != WeightFormat::kInt8 || t.shape.size() < 2) {
        CHECK(t.int8.empty());
        continue;
      }
      REQUIRE(t.int8.size() == t.data.size());
      REQUIRE(t.int8_scale.size() == size_t(t.shape[0]));
      const size_t per = t.data.size() / t.int8_scale.size();
      for (size_t i = 0; i < t.data.size(); ++i)
        REQUIRE(t.data[i] == float(t.int8[i]) * t.int8_scale[i / per]);
    }
  }
}

TEST_CASE("model blob v2: bad activation scales are refused, one clear error each") {
  const Model m = with_act(base_model(4));
  // validate_model / the writer.
  auto expect_bad = [](Model bad, const std::string& part) {
    CAPTURE(part);
    Status s = validate_model(bad);
    REQUIRE_FALSE(s);
    CHECK_MESSAGE(contains(s.message(), part), s.message());
    CHECK_FALSE(serialize_model(bad));
  };
  Model b = m;
  b.act.path.pop_back();
  expect_bad(b, "for 2 paths, the model has 3");
  b = m;
  b.act.path[2].push_back(1.0f);
  expect_bad(b, "path 2 has 6");
  b = m;
  b.act.path[0].push_back(1.0f);  // the global path has none
  expect_bad(b, "path 0 has 1");
  for (float v : {0.0f, -1.0f, NAN, INFINITY, 1e-12f, 1e11f}) {
    b = m;
    b.act.path[1][0] = v;
    expect_bad(b, "not finite or not in");
  }
  // The parser, on crafted payloads (valid CRC): scale values and counts.
  auto blob = serialize_model(m, {WeightFormat::kFp32, 3});
  REQUIRE(blob);
  const std::vector<uint8_t> payload = payload_of(kModelKindV2, *blob);
  // The section is at the end: u8 3, u8 0, u8 3 + 3 f32, u8 5 + 5 f32.
  const size_t sec = payload.size() - (1 + 1 + 1 + 12 + 1 + 20);
  REQUIRE(payload[sec] == 3);
  {
    std::vector<uint8_t> p = payload;
    const float nan = NAN;
    std::memcpy(&p[p.size() - 4], &nan, 4);
    Status s = parse_model(seal(kModelKindV2, p)).status();
    CHECK_MESSAGE(contains(s.message(), "not finite or not in"), s.message());
  }
  {
    std::vector<uint8_t> p = payload;
    p[sec + 2] = 200;  // path 1 claims 200 scales: refused before allocating
    Status s = parse_model(seal(kModelKindV2, p)).status();
    CHECK_MESSAGE(contains(s.message(), "path 1 has 200 int8 activation scales"), s.message());
  }
  {
    std::vector<uint8_t> p = payload;
    p[sec] = 2;
    Status s = parse_model(seal(kModelKindV2, p)).status();
    CHECK_MESSAGE(contains(s.message(), "for 2 paths"), s.message());
  }
  {
    std::vector<uint8_t> p(payload.begin(), payload.end() - 3);  // cut inside a scale
    Status s = parse_model(seal(kModelKindV2, p)).status();
    CHECK_MESSAGE(contains(s.message(), "truncated"), s.message());
  }
  {
    std::vector<uint8_t> p(payload.begin(), payload.begin() + std::ptrdiff_t(sec));  // no section
    Status s = parse_model(seal(kModelKindV2, p)).status();
    CHECK_MESSAGE(contains(s.message(), "truncated"), s.message());
  }
  {
    std::vector<uint8_t> p = payload;
    p.push_back(0);
    Status s = parse_model(seal(kModelKindV2, p)).status();
    CHECK_MESSAGE(contains(s.message(), "trailing"), s.message());
  }
}

TEST_CASE("model update v2: each update ships the target's scales; v1 updates give none") {
  const Model ref = with_act(base_model(5), 0.02f);
  const Model target = with_act(updated(ref, 6), 0.03f);
  auto delta = serialize_model_delta(ref, target, {3});
  REQUIRE(delta);
  ModelBlobInfo info;
  auto got = apply_model_delta(ref, *delta, &info);
  REQUIRE(got);
  CHECK(info.version == 2);
  CHECK(got->act == target.act);
  // Same weights, new scales only: still an update that carries them.
  auto same = serialize_model_delta(ref, with_act(ref, 0.05f), {3});
  REQUIRE(same);
  auto got_same = apply_model_delta(ref, *same);
  REQUIRE(got_same);
  CHECK(got_same->act == with_act(ref, 0.05f).act);
  check_bit_identical(*got_same, ref);
  // A target without scales: version 1, and the result has none (not the reference's).
  Model no_act = target;
  no_act.act = {};
  auto v1 = serialize_model_delta(ref, no_act, {3});
  REQUIRE(v1);
  auto got1 = apply_model_delta(ref, *v1, &info);
  REQUIRE(got1);
  CHECK(info.version == 1);
  CHECK(got1->act.empty());
  // Changed weights lose the reference's stored int8 codes; unchanged keep them.
  auto ref_blob = serialize_model(ref, {WeightFormat::kInt8, 3});
  REQUIRE(ref_blob);
  auto ref8 = parse_model(*ref_blob);
  REQUIRE(ref8);
  Model t2 = *ref8;
  for (float& v : t2.tensors[0].data) v *= 1.5f;  // head.weight changes, nothing else
  auto d2 = serialize_model_delta(*ref8, t2, {3});
  REQUIRE(d2);
  auto got2 = apply_model_delta(*ref8, *d2);
  REQUIRE(got2);
  CHECK(got2->tensors[0].int8.empty());
  CHECK(got2->tensors[2].int8 == ref8->tensors[2].int8);
  // A corrupt scale in an update.
  std::vector<uint8_t> p = payload_of(kDeltaKind, *delta);
  const float bad = -2.0f;
  std::memcpy(&p[p.size() - 4], &bad, 4);
  Status s = apply_model_delta(ref, seal(kDeltaKind, p)).status();
  CHECK_MESSAGE(contains(s.message(), "not finite or not in"), s.message());
}
