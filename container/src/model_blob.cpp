// Model blob: envelope "DYDCAMDL" around the architecture and the tensors.
// Layout in docs/formats.md.
#include <algorithm>
#include <cmath>
#include <set>

#include "byte_io.h"
#include "dydca/container.h"
#include "envelope.h"
#include "half.h"
#include "model_internal.h"

namespace dydca {

namespace {

constexpr blob::EnvelopeKind kModelEnvelope{"DYDCAMDL", "model blob", kModelBlobVersion,
                                            kMaxModelPayloadBytes};
using blob::kMaxNameBytes;
using blob::kMaxRank;
using blob::shape_string;
using blob::printable;
using blob::valid_name_char;

struct ExpectedTensor {
  std::string name;
  std::vector<int> shape;
};

std::vector<ExpectedTensor> required_tensors(const ModelArch& a) {
  const int C = a.channels, E = a.inner, s2 = a.scale * a.scale;
  std::vector<ExpectedTensor> t = {{"head.weight", {C, 1, 3, 3}}, {"head.bias", {C}}};
  for (int i = 0; i < a.blocks; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    t.push_back({b + ".conv1.weight", {E, C, 3, 3}});
    t.push_back({b + ".conv1.bias", {E}});
    t.push_back({b + ".conv2.weight", {C, E, 3, 3}});
    t.push_back({b + ".conv2.bias", {C}});
  }
  t.push_back({"tail.weight", {s2, C, 3, 3}});
  t.push_back({"tail.bias", {s2}});
  t.push_back({"skip.weight", {s2, 1, 5, 5}});
  t.push_back({"skip.bias", {s2}});
  return t;
}

Status validate_arch(const ModelArch& a) {
  if (a.scale < 1 || a.scale > 4)
    return Status::error("model scale " + std::to_string(a.scale) + " is not 1, 2, 3 or 4");
  if (a.channels < 1 || a.channels > kMaxChannels)
    return Status::error("model channels C=" + std::to_string(a.channels) + " outside 1.." +
                         std::to_string(kMaxChannels));
  if (a.inner < 1 || a.inner > kMaxInner)
    return Status::error("model inner width E=" + std::to_string(a.inner) + " outside 1.." +
                         std::to_string(kMaxInner));
  if (a.blocks < 0 || a.blocks > kMaxBlocks)
    return Status::error("model blocks N=" + std::to_string(a.blocks) + " outside 0.." +
                         std::to_string(kMaxBlocks));
  if (a.paths.empty() || a.paths.size() > size_t(kMaxPaths))
    return Status::error("model has " + std::to_string(a.paths.size()) + " paths (1.." +
                         std::to_string(kMaxPaths) + " allowed)");
  for (size_t p = 0; p < a.paths.size(); ++p) {
    const PathSpec& ps = a.paths[p];
    const std::string where = "model path " + std::to_string(p) + " (depth " +
                              std::to_string(ps.depth) + ", width " + std::to_string(ps.width) +
                              ")";
    if (ps.depth < 0 || ps.depth > a.blocks || ps.width < 0 || ps.width > a.channels)
      return Status::error(where + " exceeds the network (N=" + std::to_string(a.blocks) +
                           ", C=" + std::to_string(a.channels) + ")");
    if (ps.width == 0 && ps.depth != 0)
      return Status::error(where + ": width 0 is only the global path (depth 0)");
    // As the runtime plans it: every path with features has e >= 1, blocks or not.
    if (ps.width > 0 && a.inner_width(ps.width) < 1)
      return Status::error(where + ": inner width E*w/C is 0");
  }
  return Status::ok();
}

}  // namespace

namespace blob {

Status validate_act_scales(const ActScales& act, const ModelArch& a) {
  if (act.empty()) return Status::ok();
  if (act.path.size() != a.paths.size())
    return Status::error("int8 activation scales for " + std::to_string(act.path.size()) +
                         " paths, the model has " + std::to_string(a.paths.size()));
  for (size_t p = 0; p < a.paths.size(); ++p) {
    const PathSpec& ps = a.paths[p];
    const size_t want = ps.width > 0 ? size_t(1 + 2 * ps.depth) : 0;
    if (act.path[p].size() != want)
      return Status::error("int8 activation scales: path " + std::to_string(p) + " has " +
                           std::to_string(act.path[p].size()) + ", its depth " +
                           std::to_string(ps.depth) + " needs " + std::to_string(want));
    for (float v : act.path[p])
      if (!std::isfinite(v) || v < kMinActScale || v > kMaxActScale)
        return Status::error("int8 activation scale of path " + std::to_string(p) +
                             " is not finite or not in [1e-10, 1e10]");
  }
  return Status::ok();
}

void write_act_scales(ByteWriter& w, const ActScales& act) {
  w.u8(uint8_t(act.path.size()));
  for (const auto& p : act.path) {
    w.u8(uint8_t(p.size()));
    for (float v : p) w.f32(v);
  }
}

Status read_act_scales(ByteReader& r, const ModelArch& a, ActScales* act, const char* what) {
  const std::string w = what;
  const size_t paths = r.u8();
  if (!r.ok()) return Status::error(w + " payload is truncated");
  if (paths == 0) return Status::ok();
  if (paths != a.paths.size())
    return Status::error(w + " has int8 activation scales for " + std::to_string(paths) +
                         " paths, the model has " + std::to_string(a.paths.size()));
  act->path.resize(paths);
  for (size_t p = 0; p < paths; ++p) {
    const size_t n = r.u8();
    if (!r.ok()) return Status::error(w + " payload is truncated");
    const size_t want = a.paths[p].width > 0 ? size_t(1 + 2 * a.paths[p].depth) : 0;
    if (n != want)  // checked before allocating
      return Status::error(w + " path " + std::to_string(p) + " has " + std::to_string(n) +
                           " int8 activation scales, its depth needs " + std::to_string(want));
    if (n * 4 > r.remaining()) return Status::error(w + " payload is truncated");
    act->path[p].resize(n);
    for (float& v : act->path[p]) v = r.f32();
  }
  return validate_act_scales(*act, a).with_context(what);
}

}  // namespace blob

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::kFp32:
      return "fp32";
    case WeightFormat::kFp16:
      return "fp16";
    case WeightFormat::kInt8:
      return "int8";
  }
  return "unknown";
}

Status validate_model(const Model& model) {
  DYDCA_TRY(validate_arch(model.arch));
  if (model.tensors.size() > size_t(kMaxTensors))
    return Status::error("model has " + std::to_string(model.tensors.size()) + " tensors (max " +
                         std::to_string(kMaxTensors) + ")");
  std::set<std::string> names;
  for (const Tensor& t : model.tensors) {
    if (t.name.empty() || t.name.size() > size_t(kMaxNameBytes) ||
        !std::all_of(t.name.begin(), t.name.end(), valid_name_char))
      return Status::error("model tensor name \"" + printable(t.name) + "\" is invalid");
    if (!names.insert(t.name).second)
      return Status::error("model tensor " + t.name + " appears twice");
    if (t.shape.empty() || t.shape.size() > size_t(kMaxRank))
      return Status::error("model tensor " + t.name + " has rank " +
                           std::to_string(t.shape.size()) + " (1..4 allowed)");
    int64_t n = 1;
    for (int d : t.shape) {
      if (d < 1 || d > kMaxTensorElements)
        return Status::error("model tensor " + t.name + " has dimension " + std::to_string(d));
      n *= d;
      if (n > kMaxTensorElements)
        return Status::error("model tensor " + t.name + " has more than " +
                             std::to_string(kMaxTensorElements) + " elements");
    }
    if (int64_t(t.data.size()) != n)
      return Status::error("model tensor " + t.name + " has " + std::to_string(t.data.size()) +
                           " values for shape " + shape_string(t.shape));
    for (float v : t.data)
      if (!std::isfinite(v)) return Status::error("model tensor " + t.name + " is not finite");
  }
  for (const ExpectedTensor& e : required_tensors(model.arch)) {
    const Tensor* t = model.find(e.name);
    if (!t) return Status::error("model lacks tensor " + e.name);
    if (t->shape != e.shape)
      return Status::error("model tensor " + e.name + " has shape " + shape_string(t->shape) +
                           ", the architecture needs " + shape_string(e.shape));
  }
  return blob::validate_act_scales(model.act, model.arch).with_context("model");
}

Expected<std::vector<uint8_t>> serialize_model(const Model& model,
                                               const ModelBlobOptions& options) {
  DYDCA_TRY(validate_model(model).with_context("cannot write model blob"));
  const ModelArch& a = model.arch;
  blob::ByteWriter w;
  w.u16(uint16_t(a.scale));
  w.u16(uint16_t(a.channels));
  w.u16(uint16_t(a.inner));
  w.u16(uint16_t(a.blocks));
  w.u8(uint8_t(a.paths.size()));
  for (size_t p = 0; p < a.paths.size(); ++p) {
    w.u16(uint16_t(a.paths[p].depth));
    w.u16(uint16_t(a.paths[p].width));
    w.u32(uint32_t(a.macs_per_lr_pixel(int(p))));
  }
  w.u16(uint16_t(model.tensors.size()));
  for (const Tensor& t : model.tensors) {
    w.u8(uint8_t(t.name.size()));
    w.bytes(t.name.data(), t.name.size());
    w.u8(uint8_t(t.shape.size()));
    for (int d : t.shape) w.u32(uint32_t(d));
    const WeightFormat f = t.shape.size() >= 2 ? options.weights : WeightFormat::kFp32;
    w.u8(uint8_t(f));
    switch (f) {
      case WeightFormat::kFp32:
        for (float v : t.data) w.f32(v);
        break;
      case WeightFormat::kFp16:
        for (float v : t.data) {
          if (std::fabs(v) > 65504.0f)
            return Status::error("cannot write model blob: tensor " + t.name +
                                 " has values beyond the fp16 range (use fp32)");
          w.u16(blob::float_to_half(v));
        }
        break;
      case WeightFormat::kInt8: {
        const size_t outs = size_t(t.shape[0]), per_out = t.data.size() / outs;
        std::vector<float> scales(outs);
        for (size_t o = 0; o < outs; ++o) {
          float max_abs = 0;
          for (size_t i = 0; i < per_out; ++i)
            max_abs = std::max(max_abs, std::fabs(t.data[o * per_out + i]));
          scales[o] = max_abs / 127.0f;
          w.f32(scales[o]);
        }
        for (size_t o = 0; o < outs; ++o)
          for (size_t i = 0; i < per_out; ++i) {
            const float q = scales[o] > 0 ? std::nearbyint(t.data[o * per_out + i] / scales[o]) : 0;
            w.u8(uint8_t(int8_t(std::clamp(q, -127.0f, 127.0f))));
          }
        break;
      }
      default:
        return Status::error("cannot write model blob: unknown weight format");
    }
  }
  // Version 1 when there are no int8 scales (older readers still load the
  // blob); version 2 appends the ActScales section.
  blob::EnvelopeKind kind = kModelEnvelope;
  if (model.act.empty())
    kind.version = 1;
  else
    blob::write_act_scales(w, model.act);
  return blob::seal_envelope(kind, w.buffer(), options.zstd_level);
}

Expected<Model> parse_model(const uint8_t* data, size_t size, ModelBlobInfo* info) {
  DYDCA_ASSIGN_OR_RETURN(auto opened, blob::open_envelope(kModelEnvelope, data, size));
  const std::vector<uint8_t>& payload = opened.payload;
  blob::ByteReader r(payload.data(), payload.size());
  auto truncated = [] { return Status::error("model blob payload is truncated"); };

  Model m;
  ModelArch& a = m.arch;
  a.scale = r.u16();
  a.channels = r.u16();
  a.inner = r.u16();
  a.blocks = r.u16();
  const int num_paths = r.u8();
  if (!r.ok()) return truncated();
  if (num_paths < 1 || num_paths > kMaxPaths)
    return Status::error("model blob declares " + std::to_string(num_paths) + " paths (1.." +
                         std::to_string(kMaxPaths) + " allowed)");
  std::vector<uint32_t> stored_macs;
  for (int p = 0; p < num_paths; ++p) {
    PathSpec ps;
    ps.depth = r.u16();
    ps.width = r.u16();
    stored_macs.push_back(r.u32());
    a.paths.push_back(ps);
  }
  if (!r.ok()) return truncated();
  DYDCA_TRY(validate_arch(a).with_context("model blob"));
  for (int p = 0; p < num_paths; ++p)
    if (int64_t(stored_macs[size_t(p)]) != a.macs_per_lr_pixel(p))
      return Status::error("model blob path " + std::to_string(p) + " says " +
                           std::to_string(stored_macs[size_t(p)]) +
                           " MACs/pixel, the network has " +
                           std::to_string(a.macs_per_lr_pixel(p)));

  const int num_tensors = r.u16();
  if (!r.ok()) return truncated();
  if (num_tensors > kMaxTensors)
    return Status::error("model blob declares " + std::to_string(num_tensors) + " tensors (max " +
                         std::to_string(kMaxTensors) + ")");
  m.tensors.reserve(size_t(num_tensors));
  bool weight_format_seen = false;
  WeightFormat weights = WeightFormat::kFp32;
  for (int ti = 0; ti < num_tensors; ++ti) {
    Tensor t;
    const size_t name_len = r.u8();
    const uint8_t* name = r.bytes(name_len);
    if (!name) return truncated();
    t.name.assign(reinterpret_cast<const char*>(name), name_len);
    if (name_len == 0 || !std::all_of(t.name.begin(), t.name.end(), valid_name_char))
      return Status::error("model blob tensor " + std::to_string(ti) + " has an invalid name");
    const int rank = r.u8();
    if (!r.ok()) return truncated();
    if (rank < 1 || rank > kMaxRank)
      return Status::error("model blob tensor " + t.name + " has rank " + std::to_string(rank));
    int64_t count = 1;
    for (int d = 0; d < rank; ++d) {
      const uint32_t dim = r.u32();
      if (!r.ok()) return truncated();
      if (dim < 1 || dim > uint32_t(kMaxTensorElements) ||
          (count *= int64_t(dim)) > kMaxTensorElements)
        return Status::error("model blob tensor " + t.name + " is too large");
      t.shape.push_back(int(dim));
    }
    const uint8_t format_code = r.u8();
    if (!r.ok()) return truncated();
    if (format_code > uint8_t(WeightFormat::kInt8))
      return Status::error("model blob tensor " + t.name + " has unknown weight format " +
                           std::to_string(format_code));
    const auto format = WeightFormat(format_code);
    const size_t outs = size_t(t.shape[0]);
    const size_t needed = format == WeightFormat::kFp32   ? size_t(count) * 4
                          : format == WeightFormat::kFp16 ? size_t(count) * 2
                                                          : outs * 4 + size_t(count);
    if (needed > r.remaining()) return truncated();  // checked before allocating
    t.data.resize(size_t(count));
    switch (format) {
      case WeightFormat::kFp32:
        for (float& v : t.data) v = r.f32();
        break;
      case WeightFormat::kFp16:
        for (float& v : t.data) v = blob::half_to_float(r.u16());
        break;
      case WeightFormat::kInt8: {
        std::vector<float> scales(outs);
        for (float& s : scales) {
          s = r.f32();
          if (!std::isfinite(s) || s < 0)
            return Status::error("model blob tensor " + t.name + " has an invalid int8 scale");
        }
        const size_t per_out = size_t(count) / outs;
        t.int8.resize(size_t(count));
        for (size_t i = 0; i < size_t(count); ++i) {
          const int q = int8_t(r.u8());
          if (q == -128)
            return Status::error("model blob tensor " + t.name + " has int8 value -128");
          t.int8[i] = int8_t(q);
          t.data[i] = float(q) * scales[i / per_out];
        }
        t.int8_scale = std::move(scales);
        break;
      }
    }
    if (!r.ok()) return truncated();
    if (rank >= 2 && !weight_format_seen) {
      weights = format;
      weight_format_seen = true;
    }
    m.tensors.push_back(std::move(t));
  }
  if (opened.version >= 2) DYDCA_TRY(blob::read_act_scales(r, a, &m.act, "model blob"));
  if (!r.at_end())
    return Status::error("model blob payload has " + std::to_string(r.remaining()) +
                         " unexpected trailing bytes");
  DYDCA_TRY(validate_model(m).with_context("model blob"));
  if (info) {
    info->version = opened.version;
    info->blob_bytes = size;
    info->payload_bytes = payload.size();
    info->weights = weights;
  }
  return m;
}

}  // namespace dydca
