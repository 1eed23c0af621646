// Model update blob: envelope "DYDCADLT" around the reference's fingerprint
// and the changed tensors (int8 per-channel differences for weights, fp32
// values for biases). Layout in docs/formats.md §5.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "byte_io.h"
#include "dydca/container.h"
#include "envelope.h"
#include "model_internal.h"

namespace dydca {

namespace {

constexpr blob::EnvelopeKind kDeltaEnvelope{"DYDCADLT", "model update", kModelDeltaVersion,
                                            kMaxModelPayloadBytes};

// How a tensor of the update is stored; tied to the tensor's rank.
enum DeltaCoding : uint8_t {
  kValuesFp32 = 0,      // rank 1: the new values, fp32
  kDifferenceInt8 = 1,  // rank >= 2: per-output-channel f32 scales, then int8 differences
};

void put_tensor_head(blob::ByteWriter& w, const Tensor& t) {
  w.u8(uint8_t(t.name.size()));
  w.bytes(t.name.data(), t.name.size());
  w.u8(uint8_t(t.shape.size()));
  for (int d : t.shape) w.u32(uint32_t(d));
}

// The one definition of applying a difference (see container.h): exact
// product in binary64, one rounding to binary64, one to binary32.
inline float add_difference(float w, int q, float scale) {
  return float(double(w) + double(q) * double(scale));
}

}  // namespace

uint32_t model_fingerprint(const Model& m) {
  blob::ByteWriter w;
  w.u16(uint16_t(m.arch.scale));
  w.u16(uint16_t(m.arch.channels));
  w.u16(uint16_t(m.arch.inner));
  w.u16(uint16_t(m.arch.blocks));
  w.u8(uint8_t(m.arch.paths.size()));
  for (const PathSpec& p : m.arch.paths) {
    w.u16(uint16_t(p.depth));
    w.u16(uint16_t(p.width));
  }
  w.u16(uint16_t(m.tensors.size()));
  uint32_t crc = blob::crc32_update(0, w.buffer().data(), w.size());
  for (const Tensor& t : m.tensors) {
    blob::ByteWriter tw;
    put_tensor_head(tw, t);
    for (float v : t.data) tw.f32(v);
    crc = blob::crc32_update(crc, tw.buffer().data(), tw.size());
  }
  return crc;
}

Expected<std::vector<uint8_t>> serialize_model_delta(const Model& reference, const Model& target,
                                                     const ModelDeltaOptions& options) {
  const std::string what = "cannot write model update";
  DYDCA_TRY(validate_model(reference).with_context(what + ": reference"));
  DYDCA_TRY(validate_model(target).with_context(what + ": target"));
  if (!blob::same_arch(reference.arch, target.arch))
    return Status::error(what + ": the target's architecture (" + blob::arch_string(target.arch) +
                         ") differs from the reference's (" + blob::arch_string(reference.arch) +
                         ")");
  if (target.tensors.size() != reference.tensors.size())
    return Status::error(what + ": the target has " + std::to_string(target.tensors.size()) +
                         " tensors, the reference " + std::to_string(reference.tensors.size()));

  blob::ByteWriter body;
  uint16_t changed = 0;
  for (const Tensor& r : reference.tensors) {
    const Tensor* t = target.find(r.name);
    if (!t) return Status::error(what + ": the target lacks tensor " + r.name);
    if (t->shape != r.shape)
      return Status::error(what + ": tensor " + r.name + " has shape " +
                           blob::shape_string(t->shape) + " in the target, " +
                           blob::shape_string(r.shape) + " in the reference");
    if (r.shape.size() == 1) {
      if (std::memcmp(t->data.data(), r.data.data(), r.data.size() * sizeof(float)) == 0) continue;
      put_tensor_head(body, r);
      body.u8(kValuesFp32);
      for (float v : t->data) body.f32(v);
      ++changed;
      continue;
    }
    const size_t outs = size_t(r.shape[0]), per_out = r.data.size() / outs;
    std::vector<float> diff(r.data.size()), scales(outs);
    std::vector<int8_t> q(r.data.size());
    bool any = false;
    for (size_t o = 0; o < outs; ++o) {
      float max_abs = 0;
      for (size_t i = o * per_out; i < (o + 1) * per_out; ++i) {
        diff[i] = t->data[i] - r.data[i];
        if (!std::isfinite(diff[i]))
          return Status::error(what + ": tensor " + r.name +
                               " changes by more than fp32 can hold");
        max_abs = std::max(max_abs, std::fabs(diff[i]));
        if (options.model_step) max_abs = std::max(max_abs, std::fabs(t->data[i]));
      }
      scales[o] = max_abs / 127.0f;
      for (size_t i = o * per_out; i < (o + 1) * per_out; ++i) {
        // nearbyint rounds half to even in the default rounding mode.
        const float v = scales[o] > 0 ? std::nearbyint(diff[i] / scales[o]) : 0.0f;
        q[i] = int8_t(std::clamp(v, -127.0f, 127.0f));
        any = any || q[i] != 0;
      }
    }
    if (!any) continue;
    put_tensor_head(body, r);
    body.u8(kDifferenceInt8);
    for (float s : scales) body.f32(s);
    body.bytes(q.data(), q.size());
    ++changed;
  }

  blob::ByteWriter w;
  w.u32(model_fingerprint(reference));
  w.u16(changed);
  w.bytes(body.buffer().data(), body.size());
  // The target's int8 activation scales ship with the update (version 2); an
  // update of a model without them stays version 1 for older readers.
  blob::EnvelopeKind kind = kDeltaEnvelope;
  if (target.act.empty())
    kind.version = 1;
  else
    blob::write_act_scales(w, target.act);
  return blob::seal_envelope(kind, w.buffer(), options.zstd_level);
}

Expected<Model> apply_model_delta(const Model& reference, const uint8_t* data, size_t size,
                                  ModelBlobInfo* info) {
  DYDCA_ASSIGN_OR_RETURN(auto opened, blob::open_envelope(kDeltaEnvelope, data, size));
  DYDCA_TRY(validate_model(reference).with_context("model update: the reference model"));
  const std::vector<uint8_t>& payload = opened.payload;
  blob::ByteReader r(payload.data(), payload.size());
  auto truncated = [] { return Status::error("model update payload is truncated"); };

  const uint32_t fingerprint = r.u32();
  const int count = r.u16();
  if (!r.ok()) return truncated();
  const uint32_t expected = model_fingerprint(reference);
  if (fingerprint != expected) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " (fingerprint %08x, the reference's is %08x)", fingerprint,
                  expected);
    return Status::error(std::string("model update was made for another reference model") + buf);
  }
  if (count > int(reference.tensors.size()))
    return Status::error("model update changes " + std::to_string(count) +
                         " tensors, the reference has " +
                         std::to_string(reference.tensors.size()));

  Model out = reference;
  // The result's int8 scales are the update's own (none in version 1): the
  // reference's were calibrated for the reference's weights.
  out.act = {};
  size_t next = 0;  // tensors appear in the reference's order: index >= next
  for (int ti = 0; ti < count; ++ti) {
    const size_t name_len = r.u8();
    const uint8_t* name_bytes = r.bytes(name_len);
    if (!name_bytes) return truncated();
    const std::string name(reinterpret_cast<const char*>(name_bytes), name_len);
    if (name_len == 0 || !std::all_of(name.begin(), name.end(), blob::valid_name_char))
      return Status::error("model update tensor " + std::to_string(ti) + " has an invalid name");
    size_t index = 0;
    while (index < reference.tensors.size() && reference.tensors[index].name != name) ++index;
    if (index == reference.tensors.size())
      return Status::error("model update names tensor " + name + ", which the reference lacks");
    if (index < next)
      return Status::error("model update tensor " + name +
                           " appears twice or out of the reference's order");
    next = index + 1;
    Tensor& t = out.tensors[index];

    const int rank = r.u8();
    if (!r.ok()) return truncated();
    if (rank < 1 || rank > blob::kMaxRank)
      return Status::error("model update tensor " + name + " has rank " + std::to_string(rank));
    std::vector<int> shape;
    for (int d = 0; d < rank; ++d) {
      const uint32_t dim = r.u32();
      if (!r.ok()) return truncated();
      if (dim < 1 || dim > uint32_t(kMaxTensorElements))
        return Status::error("model update tensor " + name + " has dimension " +
                             std::to_string(dim));
      shape.push_back(int(dim));
    }
    if (shape != t.shape)
      return Status::error("model update tensor " + name + " has shape " +
                           blob::shape_string(shape) + ", the reference has " +
                           blob::shape_string(t.shape));
    const uint8_t coding = r.u8();
    if (!r.ok()) return truncated();
    const uint8_t want = rank == 1 ? kValuesFp32 : kDifferenceInt8;
    if (coding != want)
      return Status::error("model update tensor " + name + " has coding " +
                           std::to_string(coding) + " (rank " + std::to_string(rank) +
                           " needs " + std::to_string(want) + ")");
    const size_t n = t.data.size(), outs = size_t(t.shape[0]);
    const size_t needed = coding == kValuesFp32 ? n * 4 : outs * 4 + n;
    if (needed > r.remaining()) return truncated();
    if (coding == kValuesFp32) {
      for (float& v : t.data) {
        v = r.f32();
        if (!std::isfinite(v))
          return Status::error("model update tensor " + name + " is not finite");
      }
      continue;
    }
    std::vector<float> scales(outs);
    for (float& s : scales) {
      s = r.f32();
      if (!std::isfinite(s) || s < 0)
        return Status::error("model update tensor " + name + " has an invalid scale");
    }
    const size_t per_out = n / outs;
    t.int8.clear();  // the reference's stored int8 codes no longer describe t.data
    t.int8_scale.clear();
    for (size_t i = 0; i < n; ++i) {
      const int q = int8_t(r.u8());
      if (q == -128)
        return Status::error("model update tensor " + name + " has int8 value -128");
      t.data[i] = add_difference(t.data[i], q, scales[i / per_out]);
      if (!std::isfinite(t.data[i]))
        return Status::error("model update tensor " + name + " overflows fp32");
    }
  }
  if (opened.version >= 2) DYDCA_TRY(blob::read_act_scales(r, out.arch, &out.act, "model update"));
  if (!r.at_end())
    return Status::error("model update payload has " + std::to_string(r.remaining()) +
                         " unexpected trailing bytes");
  DYDCA_TRY(validate_model(out).with_context("model update"));
  if (info) {
    info->version = opened.version;
    info->blob_bytes = size;
    info->payload_bytes = payload.size();
    info->weights = WeightFormat::kInt8;
  }
  return out;
}

}  // namespace dydca
