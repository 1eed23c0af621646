// The SR runtime: model validation, the static plan (packed per-path weights,
// kernel choice, arenas), tiling with exact halos, and scheduling of tile jobs
// over the worker pool. The arithmetic is in the kernels (kernels*.cpp).
//
// Geometry of one job (a rectangle R = [x0,x1) x [y0,y1) of LR pixels that all
// run path p with L = 2 + 2*depth 3x3 convolutions):
//   - every buffer covers R grown by the path's halo H = L (H = 2 for the
//     global path: only the 5x5 skip), origin (x0 - H, y0 - H);
//   - X (the input plane) is filled from the LR plane with coordinates
//     clamped to the frame (edge replicate, as in model.h);
//   - conv j (0 = head, 1..2d = blocks, L-1 = tail) writes R grown by
//     L-1-j, inside the frame or not; it reads one pixel further.
// A layer's value outside the frame is then exactly what a whole-frame run
// over the edge-replicated input computes there (valid convolutions), so
// a pixel's value is the same whatever rectangle it is computed in.
// int8 (Precision::kInt8) runs the same geometry on byte buffers: X8 holds
// the luma codes, H8/T8 the quantised features (model.h's ActScales), and the
// float X plane is kept for the fp32 5x5 skip of the tail.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "dydca/runtime.h"
#include "kernels.h"
#include "thread_pool.h"

namespace dydca {
namespace rt {
namespace {

constexpr int kMaxFrameDim = 8192;
constexpr int kMaxTileSize = 1024;
constexpr int kMaxThreads = 256;
// Floats of slack after every buffer: masked blocks read up to kMaxOverread
// pixels past a row; with 64 channels that is kMaxOverread * 64 floats.
constexpr size_t kSlackFloats = size_t(kMaxOverread + 4) * kMaxChannels;

// Aligned float storage (64 bytes), zero-initialised so that lanes computed
// past a row end only ever see finite values.
class FloatBuffer {
 public:
  void resize(size_t n) {
    storage_.assign(n + 16, 0.0f);
    auto addr = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = storage_.data() + ((64 - addr % 64) % 64) / sizeof(float);
    size_ = n;
  }
  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::vector<float> storage_;
  float* data_ = nullptr;
  size_t size_ = 0;
};

// Aligned byte storage (64 bytes), zero-initialised.
template <class T>
class AlignedBuffer {
 public:
  void resize(size_t n) {
    storage_.assign(n * sizeof(T) + 64, 0);
    auto addr = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = reinterpret_cast<T*>(storage_.data() + (64 - addr % 64) % 64);
    size_ = n;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return storage_.size(); }

 private:
  std::vector<uint8_t> storage_;
  T* data_ = nullptr;
  size_t size_ = 0;
};

struct ConvLayer {
  ConvFn fn = nullptr;
  FloatBuffer weight;  // [9][cin][cout_pad]
  FloatBuffer bias;    // [cout_pad]
  int cin = 0, cin_cs = 0, cout = 0, cout_pad = 0;
  Epilogue epilogue = Epilogue::kNone;
};

struct PathPlan {
  PathSpec spec;
  int convs = 0;  // 3x3 convolutions incl. head and tail (0 for the global path)
  int halo = 2;
  int width_pad = 0, inner_pad = 0;  // channel strides of the H and T buffers
  std::vector<ConvLayer> layers;     // head, then conv1/conv2 per block
  TailFn tail_fn = nullptr;
  FloatBuffer tail_weight;  // [9][w][kTailChannels]
  FloatBuffer skip_weight;  // [25][kTailChannels]
  FloatBuffer tail_bias;    // [kTailChannels]
  int64_t macs_per_pixel = 0;
};

// int8 plan of one 3x3 conv of a path (kernels.h, ConvI8Args).
struct ConvLayerI8 {
  ConvI8Fn fn = nullptr;
  AlignedBuffer<int8_t> weight;  // [groups][cout_pad][4]
  AlignedBuffer<int32_t> init_raw, init_off;
  AlignedBuffer<float> mul, add;  // [cout_pad]
  float res_mul = 0;
  int cin4 = 0, cin_cs = 0, cout_pad = 0;
  bool signed_input = false;
  OutI8 out = OutI8::kSigned;
};

struct PathPlanI8 {
  std::vector<ConvLayerI8> layers;  // head, then conv1/conv2 per block
  TailI8Fn tail_fn = nullptr;
  AlignedBuffer<int8_t> tail_weight;  // [9 * cin4][kTailChannels][4]
  AlignedBuffer<int32_t> tail_init_raw, tail_init_off;
  AlignedBuffer<float> tail_mul;  // [kTailChannels]
  int tail_cin4 = 0;
};

struct Arena {
  FloatBuffer x, h, t;  // input plane, body features (C wide), inner features (E wide)
  // int8: luma codes, body features, inner features (bytes); x above stays
  // the float plane of the skip.
  AlignedBuffer<uint8_t> x8, h8, t8;
};

// Per-output-channel int8 weights of a whole tensor by model.h's rule:
// s_o = max|W[o]| / 127 (1 when W[o] is 0), q = clamp(rne(W / s_o), -127, 127).
// A tensor parsed from an int8 blob keeps its stored codes when they are the
// rule's (largest |code| 127 per channel, or all 0) and still give its values
// exactly: then the codes are used as they are (no second rounding).
void quantize_weights(const Tensor& t, std::vector<int8_t>* q, std::vector<float>* scale) {
  const size_t outs = size_t(t.shape[0]), per = t.data.size() / outs;
  bool stored = t.int8.size() == t.data.size() && t.int8_scale.size() == outs;
  for (size_t o = 0; stored && o < outs; ++o) {
    int max_q = 0;
    for (size_t i = o * per; i < (o + 1) * per; ++i) {
      max_q = std::max(max_q, std::abs(int(t.int8[i])));
      if (t.data[i] != float(t.int8[i]) * t.int8_scale[o]) stored = false;
    }
    if (max_q != 127 && max_q != 0) stored = false;
    if (!(t.int8_scale[o] > 0) && max_q != 0) stored = false;
  }
  q->resize(t.data.size());
  scale->resize(outs);
  for (size_t o = 0; o < outs; ++o) {
    if (stored) {
      std::copy_n(t.int8.begin() + std::ptrdiff_t(o * per), per, q->begin() + std::ptrdiff_t(o * per));
      (*scale)[o] = t.int8_scale[o] > 0 ? t.int8_scale[o] : 1.0f;
      continue;
    }
    float max_abs = 0;
    for (size_t i = o * per; i < (o + 1) * per; ++i) max_abs = std::max(max_abs, std::fabs(t.data[i]));
    const float s = max_abs > 0 ? max_abs / 127.0f : 1.0f;
    (*scale)[o] = s;
    for (size_t i = o * per; i < (o + 1) * per; ++i)
      (*q)[i] = int8_t(std::clamp(std::nearbyint(t.data[i] / s), -127.0f, 127.0f));
  }
}

// weight[:cout, :cin] of a [O][I][3][3] int8 tensor -> [groups][cout_pad][4]
// (kernels.h); wsum[o] = sum of the packed weights of output o.
void pack_conv_i8(const std::vector<int8_t>& q, const Tensor& t, int cout, int cin, int cin_cs,
                  int cout_pad, AlignedBuffer<int8_t>* out, std::vector<int32_t>* wsum) {
  const int in_full = t.shape[1];
  const int cin4 = (cin + 3) / 4;
  const int groups = cin_cs == 1 ? 3 : 9 * cin4;
  out->resize(size_t(groups) * cout_pad * 4);
  std::fill(out->data(), out->data() + out->size(), int8_t(0));
  wsum->assign(size_t(cout_pad), 0);
  for (int co = 0; co < cout; ++co)
    for (int ci = 0; ci < cin; ++ci)
      for (int tap = 0; tap < 9; ++tap) {
        const int8_t w = q[(size_t(co) * in_full + ci) * 9 + tap];
        const int ky = tap / 3, kx = tap % 3;
        const int g = cin_cs == 1 ? ky : tap * cin4 + ci / 4;
        const int k = cin_cs == 1 ? kx : ci % 4;
        out->data()[(size_t(g) * cout_pad + co) * 4 + k] = w;
        (*wsum)[size_t(co)] += w;
      }
}

struct Job {
  int x0, y0, x1, y1;
  int path;
  int64_t cost;
};

const Tensor* find_tensor(const Model& m, const std::string& name, std::vector<int> shape,
                          Status* err) {
  const Tensor* t = m.find(name);
  auto shape_str = [](const std::vector<int>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) {
      if (i) r += ',';
      r += std::to_string(s[i]);
    }
    return r + "]";
  };
  if (!t) {
    *err = Status::error("model: tensor '" + name + "' missing");
    return nullptr;
  }
  if (t->shape != shape) {
    *err = Status::error("model: tensor '" + name + "' has shape " + shape_str(t->shape) +
                         ", the architecture needs " + shape_str(shape));
    return nullptr;
  }
  size_t n = 1;
  for (int d : shape) n *= size_t(d);
  if (t->data.size() != n) {
    *err = Status::error("model: tensor '" + name + "' holds " + std::to_string(t->data.size()) +
                         " values, its shape needs " + std::to_string(n));
    return nullptr;
  }
  return t;
}

// weight[:cout, :cin] of a [O][I][k][k] tensor -> [k*k][cin][cout_pad].
void pack_conv(const Tensor& t, int cout, int cin, int cout_pad, FloatBuffer* out) {
  const int in_full = t.shape[1], k = t.shape[2], taps = k * k;
  out->resize(size_t(taps) * cin * cout_pad);
  std::fill(out->data(), out->data() + out->size(), 0.0f);
  for (int co = 0; co < cout; ++co)
    for (int ci = 0; ci < cin; ++ci)
      for (int tap = 0; tap < taps; ++tap)
        out->data()[(size_t(tap) * cin + ci) * cout_pad + co] =
            t.data[(size_t(co) * in_full + ci) * taps + tap];
}

}  // namespace
}  // namespace rt

// ---- SIMD levels -------------------------------------------------------------

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kNone: return "none";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
  }
  return "?";
}

Expected<std::optional<SimdLevel>> parse_simd_level(std::string_view name) {
  if (name == "auto") return std::optional<SimdLevel>();
  if (name == "none") return std::optional<SimdLevel>(SimdLevel::kNone);
  if (name == "avx2") return std::optional<SimdLevel>(SimdLevel::kAvx2);
  if (name == "avx512") return std::optional<SimdLevel>(SimdLevel::kAvx512);
  return Status::error("unknown SIMD level '" + std::string(name) +
                       "' (expected none, avx2, avx512 or auto)");
}

bool simd_level_supported(SimdLevel level) { return rt::cpu_supports(level); }

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kAuto: return "auto";
    case Precision::kFp32: return "fp32";
    case Precision::kInt8: return "int8";
  }
  return "?";
}

Expected<Precision> parse_precision(std::string_view name) {
  if (name == "auto") return Precision::kAuto;
  if (name == "fp32") return Precision::kFp32;
  if (name == "int8") return Precision::kInt8;
  return Status::error("unknown precision '" + std::string(name) +
                       "' (expected fp32, int8 or auto)");
}

SimdLevel best_simd_level() {
  if (rt::cpu_supports(SimdLevel::kAvx512)) return SimdLevel::kAvx512;
  if (rt::cpu_supports(SimdLevel::kAvx2)) return SimdLevel::kAvx2;
  return SimdLevel::kNone;
}

namespace rt {

bool cpu_supports(SimdLevel level) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // needed if this runs before libgcc's constructor (static init)
#endif
  switch (level) {
    case SimdLevel::kNone: return true;
#if defined(__x86_64__) || defined(__i386__)
    case SimdLevel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdLevel::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#else
    default: return false;
#endif
  }
  return false;
}

bool cpu_has_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return cpu_supports(SimdLevel::kAvx512) && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const KernelTableI8& kernels_i8_for(SimdLevel level) {
  static const KernelTableI8 ref = [] {
    KernelTableI8 t;
    init_kernels_i8_ref(t);
    return t;
  }();
  static const KernelTableI8 avx2 = [] {
    KernelTableI8 t;
    init_kernels_i8_avx2(t);
    return t;
  }();
  switch (level) {
    case SimdLevel::kNone: return ref;
    case SimdLevel::kAvx2: return avx2;
    case SimdLevel::kAvx512: {
      if (!cpu_has_vnni()) return avx2;  // AVX-512 without VNNI: the exact AVX2 scheme
      static const KernelTableI8 t = [] {
        KernelTableI8 k;
        init_kernels_i8_avx512(k);
        return k;
      }();
      return t;
    }
  }
  return ref;
}

const KernelTable& kernels_for(SimdLevel level) {
  static const KernelTable ref = [] {
    KernelTable t;
    init_kernels_ref(t);
    return t;
  }();
  switch (level) {
    case SimdLevel::kNone: return ref;
    case SimdLevel::kAvx2: {
      static const KernelTable t = [] {
        KernelTable k;
        init_kernels_avx2(k);
        return k;
      }();
      return t;
    }
    case SimdLevel::kAvx512: {
      static const KernelTable t = [] {
        KernelTable k;
        init_kernels_avx512(k);
        return k;
      }();
      return t;
    }
  }
  return ref;
}

}  // namespace rt

// ---- the model ------------------------------------------------------------------

struct SrModel::Impl {
  ModelArch arch;
  SimdLevel level = SimdLevel::kNone;
  Precision precision = Precision::kFp32;  // resolved: kFp32 or kInt8
  std::vector<rt::PathPlan> paths;
  std::vector<rt::PathPlanI8> paths8;  // int8 only; the fp32 plan keeps the skip and biases
  int max_halo = 2;
  int max_width_pad = 0, max_inner_pad = 0;
  float lut[256];  // Y -> Y / 255.f (exactly as x = Y/255)

  Status validate_and_plan(const Model& model);
  void plan_int8(const Model& model);
  void run_job(const rt::Job& job, rt::Arena& arena, const uint8_t* lr, int w, int h,
               ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride, float* hr_float,
               ptrdiff_t hr_float_stride) const;
  void run_job_i8(const rt::Job& job, rt::Arena& arena, const uint8_t* lr, int w, int h,
                  ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride, float* hr_float,
                  ptrdiff_t hr_float_stride) const;
};

struct WorkerPool::Impl {
  explicit Impl(int threads) : pool(threads) {}
  rt::ThreadPool pool;
};

struct SrSession::Impl {
  SessionOptions options;
  std::shared_ptr<WorkerPool> pool;  // null: the caller's thread alone
  std::vector<rt::Arena> arenas;     // one per worker, grown to the largest need seen
  std::vector<rt::Job> jobs;
  std::vector<uint8_t> tile_paths;   // scratch for the single-path and routing overloads

  void size_arenas(const SrModel::Impl& m, int job_w, int job_h);
  Status check_call(const SrModel::Impl& m, const void* lr, int w, int h, ptrdiff_t lr_stride,
                    const void* hr, ptrdiff_t hr_stride,
                    const std::vector<uint8_t>& tile_paths) const;
  void build_jobs(const SrModel::Impl& m, int w, int h, const std::vector<uint8_t>& tile_paths);
  Status run(const SrModel::Impl& m, const uint8_t* lr, int w, int h, ptrdiff_t lr_stride,
             uint8_t* hr, ptrdiff_t hr_stride, float* hr_float, ptrdiff_t hr_float_stride,
             const std::vector<uint8_t>& tile_paths);
};

Status SrModel::Impl::validate_and_plan(const Model& model) {
  using namespace rt;
  const ModelArch& a = model.arch;
  // The limits of model.h, which the container and training check too.
  static_assert(dydca::kMaxChannels <= rt::kMaxChannels && dydca::kMaxInner <= rt::kMaxChannels,
                "the kernel tables must cover every channel count model.h allows");
  if (a.scale < dydca::kMinScale || a.scale > dydca::kMaxScale)
    return Status::error("model: scale " + std::to_string(a.scale) + " not in 1..4");
  if (a.channels < 1 || a.channels > dydca::kMaxChannels || a.inner < 1 ||
      a.inner > dydca::kMaxInner)
    return Status::error("model: channels C=" + std::to_string(a.channels) + ", E=" +
                         std::to_string(a.inner) + " must be in 1.." +
                         std::to_string(dydca::kMaxChannels));
  if (a.blocks < 0 || a.blocks > dydca::kMaxBlocks)
    return Status::error("model: " + std::to_string(a.blocks) + " blocks not in 0.." +
                         std::to_string(dydca::kMaxBlocks));
  if (a.paths.empty() || a.paths.size() > size_t(dydca::kMaxPaths))
    return Status::error("model: " + std::to_string(a.paths.size()) + " paths (need 1.." +
                         std::to_string(dydca::kMaxPaths) + ")");
  const int C = a.channels, E = a.inner, N = a.blocks, s2 = a.scale * a.scale;

  Status err;
  const Tensor* head_w = find_tensor(model, "head.weight", {C, 1, 3, 3}, &err);
  const Tensor* head_b = head_w ? find_tensor(model, "head.bias", {C}, &err) : nullptr;
  const Tensor* tail_w = head_b ? find_tensor(model, "tail.weight", {s2, C, 3, 3}, &err) : nullptr;
  const Tensor* tail_b = tail_w ? find_tensor(model, "tail.bias", {s2}, &err) : nullptr;
  const Tensor* skip_w = tail_b ? find_tensor(model, "skip.weight", {s2, 1, 5, 5}, &err) : nullptr;
  const Tensor* skip_b = skip_w ? find_tensor(model, "skip.bias", {s2}, &err) : nullptr;
  if (!skip_b) return err;
  std::vector<const Tensor*> c1w(N), c1b(N), c2w(N), c2b(N);
  for (int i = 0; i < N; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    if (!(c1w[i] = find_tensor(model, p + "conv1.weight", {E, C, 3, 3}, &err))) return err;
    if (!(c1b[i] = find_tensor(model, p + "conv1.bias", {E}, &err))) return err;
    if (!(c2w[i] = find_tensor(model, p + "conv2.weight", {C, E, 3, 3}, &err))) return err;
    if (!(c2b[i] = find_tensor(model, p + "conv2.bias", {C}, &err))) return err;
  }

  const KernelTable& k = kernels_for(level);
  paths.clear();
  paths.reserve(a.paths.size());
  for (size_t pi = 0; pi < a.paths.size(); ++pi) {
    const PathSpec ps = a.paths[pi];
    const std::string name = "model: path " + std::to_string(pi) + " (depth " +
                             std::to_string(ps.depth) + ", width " + std::to_string(ps.width) + ")";
    if (ps.depth < 0 || ps.depth > N || ps.width < 0 || ps.width > C)
      return Status::error(name + " exceeds the architecture (N=" + std::to_string(N) +
                           ", C=" + std::to_string(C) + ")");
    if (ps.width == 0 && ps.depth != 0)
      return Status::error(name + ": width 0 is only allowed with depth 0 (global path)");
    const int w = ps.width, e = a.inner_width(w);
    if (w > 0 && e < 1) return Status::error(name + ": inner width E*w/C is 0");

    PathPlan& plan = paths.emplace_back();
    plan.spec = ps;
    plan.macs_per_pixel = a.macs_per_lr_pixel(int(pi));
    plan.convs = w > 0 ? 2 + 2 * ps.depth : 0;
    plan.halo = std::max(plan.convs, 2);
    plan.width_pad = w > 0 ? round_up_channels(w) : 0;
    plan.inner_pad = w > 0 && ps.depth > 0 ? round_up_channels(e) : 0;
    if (w > 0) {
      auto add = [&](const Tensor& wt, const Tensor& b, int cout, int cin, int cin_cs,
                     Epilogue epi) {
        ConvLayer& L = plan.layers.emplace_back();
        L.cin = cin;
        L.cin_cs = cin_cs;
        L.cout = cout;
        L.cout_pad = round_up_channels(cout);
        L.epilogue = epi;
        pack_conv(wt, cout, cin, L.cout_pad, &L.weight);
        L.bias.resize(size_t(L.cout_pad));
        for (int c = 0; c < L.cout_pad; ++c) L.bias.data()[c] = c < cout ? b.data[size_t(c)] : 0.f;
        L.fn = k.conv3x3[cs_index(cin_cs)][L.cout_pad / kChannelAlign - 1];
      };
      add(*head_w, *head_b, w, 1, 1, Epilogue::kNone);
      for (int i = 0; i < ps.depth; ++i) {
        add(*c1w[i], *c1b[i], e, w, plan.width_pad, Epilogue::kRelu);
        add(*c2w[i], *c2b[i], w, e, plan.inner_pad, Epilogue::kResidual);
      }
      pack_conv(*tail_w, s2, w, kTailChannels, &plan.tail_weight);
    }
    pack_conv(*skip_w, s2, 1, kTailChannels, &plan.skip_weight);
    plan.tail_bias.resize(kTailChannels);
    for (int c = 0; c < kTailChannels; ++c)
      plan.tail_bias.data()[c] =
          c < s2 ? (w > 0 ? tail_b->data[size_t(c)] + skip_b->data[size_t(c)]
                          : skip_b->data[size_t(c)])
                 : 0.f;
    plan.tail_fn = k.tail[w > 0 ? cs_index(plan.width_pad) : 0];
    max_halo = std::max(max_halo, plan.halo);
    max_width_pad = std::max(max_width_pad, plan.width_pad);
    max_inner_pad = std::max(max_inner_pad, plan.inner_pad);
  }
  return Status::ok();
}

// The int8 plan (model.h's rules): per path, weights quantised per output
// channel of the full tensor and sliced, the byte-offset inits, and the
// requantisation multipliers folded in binary64 and rounded once to fp32.
// Then the fp32 convolution weights are dropped (the global path and the
// skip stay fp32).
void SrModel::Impl::plan_int8(const Model& model) {
  using namespace rt;
  const ModelArch& a = model.arch;
  const int N = a.blocks, s2 = a.scale * a.scale;
  struct Q {
    std::vector<int8_t> q;
    std::vector<float> s;
  };
  auto quant = [&](const std::string& name) {
    Q r;
    quantize_weights(*model.find(name), &r.q, &r.s);
    return r;
  };
  const Q head = quant("head.weight"), tail = quant("tail.weight");
  std::vector<Q> c1(static_cast<size_t>(N)), c2(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) {
    c1[size_t(i)] = quant("blocks." + std::to_string(i) + ".conv1.weight");
    c2[size_t(i)] = quant("blocks." + std::to_string(i) + ".conv2.weight");
  }
  const KernelTableI8& k = kernels_i8_for(level);
  paths8.clear();
  paths8.resize(paths.size());
  std::vector<int32_t> wsum;
  for (size_t pi = 0; pi < paths.size(); ++pi) {
    PathPlan& plan = paths[pi];
    PathPlanI8& p8 = paths8[pi];
    const int w = plan.spec.width;
    if (w == 0) continue;  // global path: the fp32 tail with no features
    const std::vector<float>& act = model.act.path[pi];
    auto add = [&](const Q& qw, const Tensor& wt, const Tensor& b, int cout, int cin, int cin_cs,
                   bool signed_in, double a_in, double a_out, OutI8 out, double a_res) {
      ConvLayerI8& L = p8.layers.emplace_back();
      L.cin4 = (cin + 3) / 4;
      L.cin_cs = cin_cs;
      L.cout_pad = round_up_channels(cout);
      L.signed_input = signed_in;
      L.out = out;
      pack_conv_i8(qw.q, wt, cout, cin, cin_cs, L.cout_pad, &L.weight, &wsum);
      for (auto* buf : {&L.init_raw, &L.init_off}) buf->resize(size_t(L.cout_pad));
      for (auto* buf : {&L.mul, &L.add}) buf->resize(size_t(L.cout_pad));
      for (int c = 0; c < L.cout_pad; ++c) {
        const int32_t ws = wsum[size_t(c)];
        L.init_raw.data()[c] = signed_in ? -128 * ws : 0;
        L.init_off.data()[c] = signed_in ? 0 : 128 * ws;
        L.mul.data()[c] = c < cout ? float(double(qw.s[size_t(c)]) * a_in / a_out) : 0.f;
        L.add.data()[c] = c < cout ? float(double(b.data[size_t(c)]) / a_out) : 0.f;
      }
      L.res_mul = float(a_res / a_out);
      L.fn = k.conv3x3[cs_index(cin_cs)][L.cout_pad / kChannelAlign - 1];
    };
    const int e = a.inner_width(w);
    add(head, *model.find("head.weight"), *model.find("head.bias"), w, 1, 1, false, 1.0 / 255.0,
        act[0], OutI8::kSigned, 0.0);
    for (int i = 0; i < plan.spec.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      const double a_h = act[size_t(2 * i)], a_r = act[size_t(1 + 2 * i)],
                   a_h1 = act[size_t(2 + 2 * i)];
      add(c1[size_t(i)], *model.find(b + "conv1.weight"), *model.find(b + "conv1.bias"), e, w,
          plan.width_pad, true, a_h, a_r, OutI8::kUnsigned, 0.0);
      add(c2[size_t(i)], *model.find(b + "conv2.weight"), *model.find(b + "conv2.bias"), w, e,
          plan.inner_pad, false, a_r, a_h1, OutI8::kResidualSigned, a_h);
    }
    const double a_hd = act[size_t(2 * plan.spec.depth)];
    p8.tail_cin4 = (w + 3) / 4;
    pack_conv_i8(tail.q, *model.find("tail.weight"), s2, w, plan.width_pad, kTailChannels,
                 &p8.tail_weight, &wsum);
    p8.tail_init_raw.resize(kTailChannels);
    p8.tail_init_off.resize(kTailChannels);
    p8.tail_mul.resize(kTailChannels);
    for (int c = 0; c < kTailChannels; ++c) {
      p8.tail_init_raw.data()[c] = -128 * wsum[size_t(c)];
      p8.tail_init_off.data()[c] = 0;
      p8.tail_mul.data()[c] = c < s2 ? float(double(tail.s[size_t(c)]) * a_hd) : 0.f;
    }
    p8.tail_fn = k.tail[cs_index(plan.width_pad)];
    // The fp32 convolutions are not needed any more.
    plan.layers.clear();
    plan.layers.shrink_to_fit();
    plan.tail_weight = FloatBuffer();
  }
}

// Grow-only: a session keeps what the largest model and job it ran needed.
void SrSession::Impl::size_arenas(const SrModel::Impl& m, int job_w, int job_h) {
  const size_t px = size_t(job_w + 2 * m.max_halo) * size_t(job_h + 2 * m.max_halo);
  const size_t x = px + rt::kSlackFloats;
  const size_t feat = m.max_width_pad ? px * size_t(m.max_width_pad) + rt::kSlackFloats : 0;
  const size_t inner = m.max_inner_pad ? px * size_t(m.max_inner_pad) + rt::kSlackFloats : 0;
  auto grow = [](auto& buf, size_t n) {
    if (buf.size() < n) buf.resize(n);
  };
  for (auto& ar : arenas) {
    grow(ar.x, x);
    if (m.precision == Precision::kInt8) {
      grow(ar.x8, x);
      grow(ar.h8, feat);
      grow(ar.t8, inner);
    } else {
      grow(ar.h, feat);
      grow(ar.t, inner);
    }
  }
}

Status SrSession::Impl::check_call(const SrModel::Impl& m, const void* lr, int w, int h,
                                   ptrdiff_t lr_stride, const void* hr, ptrdiff_t hr_stride,
                                   const std::vector<uint8_t>& tile_paths) const {
  const int s = m.arch.scale;
  if (!lr || !hr) return Status::error("upscale: null plane");
  if (w < 1 || h < 1 || w > rt::kMaxFrameDim || h > rt::kMaxFrameDim)
    return Status::error("upscale: LR size " + std::to_string(w) + "x" + std::to_string(h) +
                         " not in 1..8192");
  if (lr_stride < w) return Status::error("upscale: LR stride smaller than the width");
  if (hr_stride < ptrdiff_t(w) * s) return Status::error("upscale: HR stride smaller than w*scale");
  const int ts = options.tile_size;
  const size_t tiles = size_t((w + ts - 1) / ts) * size_t((h + ts - 1) / ts);
  if (tile_paths.size() != tiles)
    return Status::error("upscale: " + std::to_string(tile_paths.size()) + " tile paths for " +
                         std::to_string(tiles) + " tiles");
  for (uint8_t p : tile_paths)
    if (p >= m.paths.size())
      return Status::error("upscale: tile path " + std::to_string(p) + " but the model has " +
                           std::to_string(m.paths.size()) + " paths");
  return Status::ok();
}

// Blocks of group_x x group_y tiles; a block that runs one path is one job,
// else it is halved (along its longer side) until the parts are uniform or
// one tile row, whose horizontal runs of equal paths become jobs. Larger jobs
// share more halo (see README: 4x4 tiles of 32 recompute ~12 % for N=4).
void SrSession::Impl::build_jobs(const SrModel::Impl& m, int w, int h,
                                 const std::vector<uint8_t>& tile_paths) {
  const int ts = options.tile_size, gx = options.group_x, gy = options.group_y;
  const int ntx = (w + ts - 1) / ts, nty = (h + ts - 1) / ts;
  jobs.clear();
  auto path_at = [&](int tx, int ty) { return tile_paths[size_t(ty) * ntx + tx]; };
  auto add = [&](int tx0, int ty0, int tx1, int ty1, int path) {
    rt::Job j;
    j.x0 = tx0 * ts;
    j.y0 = ty0 * ts;
    j.x1 = std::min(tx1 * ts, w);
    j.y1 = std::min(ty1 * ts, h);
    j.path = path;
    const rt::PathPlan& plan = m.paths[size_t(path)];
    j.cost = int64_t(j.x1 - j.x0 + plan.halo) * (j.y1 - j.y0 + plan.halo) * plan.macs_per_pixel;
    jobs.push_back(j);
  };
  // Recursion depth is log2(group area): no allocation.
  auto split = [&](auto&& self, int tx0, int ty0, int tx1, int ty1) -> void {
    const uint8_t first = path_at(tx0, ty0);
    bool uniform = true;
    for (int ty = ty0; ty < ty1 && uniform; ++ty)
      for (int tx = tx0; tx < tx1; ++tx)
        if (path_at(tx, ty) != first) {
          uniform = false;
          break;
        }
    if (uniform) {
      add(tx0, ty0, tx1, ty1, first);
    } else if (ty1 - ty0 == 1) {
      int run = tx0;
      for (int tx = tx0 + 1; tx <= tx1; ++tx)
        if (tx == tx1 || path_at(tx, ty0) != path_at(run, ty0)) {
          add(run, ty0, tx, ty1, path_at(run, ty0));
          run = tx;
        }
    } else if (tx1 - tx0 > ty1 - ty0) {
      const int mid = (tx0 + tx1) / 2;
      self(self, tx0, ty0, mid, ty1);
      self(self, mid, ty0, tx1, ty1);
    } else {
      const int mid = (ty0 + ty1) / 2;
      self(self, tx0, ty0, tx1, mid);
      self(self, tx0, mid, tx1, ty1);
    }
  };
  for (int by = 0; by < nty; by += gy)
    for (int bx = 0; bx < ntx; bx += gx)
      split(split, bx, by, std::min(bx + gx, ntx), std::min(by + gy, nty));
  // Most expensive first, so that the last jobs to start are short ones.
  // (Any order gives the same output.)
  std::sort(jobs.begin(), jobs.end(), [](const rt::Job& a, const rt::Job& b) {
    if (a.cost != b.cost) return a.cost > b.cost;
    return a.y0 != b.y0 ? a.y0 < b.y0 : a.x0 < b.x0;
  });
}

namespace {
// What the fp32 and the int8 tail arguments share: the job's LR rectangle,
// its input window (2 pixels of halo for the 5x5 skip) and where its HR
// pixels go.
template <class Args>
void set_tail_window(Args& t, const rt::Job& job, const float* x, ptrdiff_t x_row,
                     const float* skip_weight, int s, uint8_t* hr, ptrdiff_t hr_stride,
                     float* hr_float, ptrdiff_t hr_float_stride) {
  t.x = x;
  t.x_row = x_row;
  t.skip_weight = skip_weight;
  t.scale = s;
  t.width = job.x1 - job.x0;
  t.height = job.y1 - job.y0;
  if (hr_float) {
    t.hr_float = hr_float + ptrdiff_t(job.y0) * s * hr_float_stride + ptrdiff_t(job.x0) * s;
    t.hr_float_stride = hr_float_stride;
  } else {
    t.hr = hr + ptrdiff_t(job.y0) * s * hr_stride + ptrdiff_t(job.x0) * s;
    t.hr_stride = hr_stride;
  }
}
}  // namespace

void SrModel::Impl::run_job(const rt::Job& job, rt::Arena& arena, const uint8_t* lr, int w,
                              int h, ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride,
                              float* hr_float, ptrdiff_t hr_float_stride) const {
  using namespace rt;
  const PathPlan& plan = paths[size_t(job.path)];
  const int H = plan.halo;
  const int bx0 = job.x0 - H, by0 = job.y0 - H;
  const int bw = job.x1 - job.x0 + 2 * H, bh = job.y1 - job.y0 + 2 * H;

  // Input plane x = Y / 255, coordinates clamped to the frame.
  float* X = arena.x.data();
  const int in_x0 = std::clamp(-bx0, 0, bw), in_x1 = std::clamp(w - bx0, 0, bw);
  for (int y = 0; y < bh; ++y) {
    float* r = X + ptrdiff_t(y) * bw;
    const uint8_t* src = lr + std::clamp(by0 + y, 0, h - 1) * lr_stride;
    const float left = lut[src[0]], right = lut[src[w - 1]];
    for (int x = 0; x < in_x0; ++x) r[x] = left;
    for (int x = in_x0; x < in_x1; ++x) r[x] = lut[src[bx0 + x]];
    for (int x = in_x1; x < bw; ++x) r[x] = right;
  }

  // Output rectangle of conv j: the job grown by convs-1-j.
  struct Rect { int x0, y0, x1, y1; };
  auto out_rect = [&](int grow) {
    return Rect{job.x0 - grow, job.y0 - grow, job.x1 + grow, job.y1 + grow};
  };
  float* Hb = arena.h.data();
  float* Tb = arena.t.data();
  const ptrdiff_t x_row = bw;
  const ptrdiff_t h_row = ptrdiff_t(bw) * plan.width_pad;
  const ptrdiff_t t_row = ptrdiff_t(bw) * plan.inner_pad;

  for (size_t j = 0; j < plan.layers.size(); ++j) {
    const ConvLayer& L = plan.layers[j];
    const Rect r = out_rect(plan.convs - 1 - int(j));
    const bool from_x = j == 0, to_t = j % 2 == 1;  // head; conv1 writes T, conv2 writes H
    const float* sbuf = from_x ? X : (to_t ? Hb : Tb);
    const ptrdiff_t srow = from_x ? x_row : (to_t ? h_row : t_row);
    float* dbuf = to_t ? Tb : Hb;
    const ptrdiff_t drow = to_t ? t_row : h_row;
    ConvArgs a;
    a.src = sbuf + (r.y0 - 1 - by0) * srow + ptrdiff_t(r.x0 - 1 - bx0) * L.cin_cs;
    a.src_row = srow;
    a.src_cs = L.cin_cs;
    a.cin = L.cin;
    a.dst = dbuf + (r.y0 - by0) * drow + ptrdiff_t(r.x0 - bx0) * L.cout_pad;
    a.dst_row = drow;
    a.cout_pad = L.cout_pad;
    a.weight = L.weight.data();
    a.bias = L.bias.data();
    a.width = r.x1 - r.x0;
    a.height = r.y1 - r.y0;
    a.epilogue = L.epilogue;
    L.fn(a);
  }

  TailArgs t;
  if (plan.convs > 0) {
    t.feat = Hb + (job.y0 - 1 - by0) * h_row + ptrdiff_t(job.x0 - 1 - bx0) * plan.width_pad;
    t.feat_row = h_row;
    t.feat_cs = plan.width_pad;
    t.cin = plan.spec.width;
    t.tail_weight = plan.tail_weight.data();
  }
  t.bias = plan.tail_bias.data();
  set_tail_window(t, job, X + (job.y0 - 2 - by0) * x_row + (job.x0 - 2 - bx0), x_row,
                  plan.skip_weight.data(), arch.scale, hr, hr_stride, hr_float, hr_float_stride);
  plan.tail_fn(t);
}

// The int8 twin of run_job: same rectangles, byte buffers, int8 kernels.
void SrModel::Impl::run_job_i8(const rt::Job& job, rt::Arena& arena, const uint8_t* lr, int w,
                                 int h, ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride,
                                 float* hr_float, ptrdiff_t hr_float_stride) const {
  using namespace rt;
  const PathPlan& plan = paths[size_t(job.path)];
  const PathPlanI8& p8 = paths8[size_t(job.path)];
  const int H = plan.halo;
  const int bx0 = job.x0 - H, by0 = job.y0 - H;
  const int bw = job.x1 - job.x0 + 2 * H, bh = job.y1 - job.y0 + 2 * H;

  // Luma codes (and x = Y / 255 for the skip), coordinates clamped to the frame.
  float* X = arena.x.data();
  uint8_t* X8 = arena.x8.data();
  const int in_x0 = std::clamp(-bx0, 0, bw), in_x1 = std::clamp(w - bx0, 0, bw);
  for (int y = 0; y < bh; ++y) {
    float* r = X + ptrdiff_t(y) * bw;
    uint8_t* r8 = X8 + ptrdiff_t(y) * bw;
    const uint8_t* src = lr + std::clamp(by0 + y, 0, h - 1) * lr_stride;
    std::memset(r8, src[0], size_t(in_x0));
    std::memcpy(r8 + in_x0, src + bx0 + in_x0, size_t(in_x1 - in_x0));
    std::memset(r8 + in_x1, src[w - 1], size_t(bw - in_x1));
    for (int x = 0; x < bw; ++x) r[x] = lut[r8[x]];
  }

  uint8_t* Hb = arena.h8.data();
  uint8_t* Tb = arena.t8.data();
  const ptrdiff_t x_row = bw;
  const ptrdiff_t h_row = ptrdiff_t(bw) * plan.width_pad;
  const ptrdiff_t t_row = ptrdiff_t(bw) * plan.inner_pad;
  for (size_t j = 0; j < p8.layers.size(); ++j) {
    const ConvLayerI8& L = p8.layers[j];
    const int grow = plan.convs - 1 - int(j);
    const int rx0 = job.x0 - grow, ry0 = job.y0 - grow;
    const bool from_x = j == 0, to_t = j % 2 == 1;  // head; conv1 writes T, conv2 writes H
    const uint8_t* sbuf = from_x ? X8 : (to_t ? Hb : Tb);
    const ptrdiff_t srow = from_x ? x_row : (to_t ? h_row : t_row);
    uint8_t* dbuf = to_t ? Tb : Hb;
    const ptrdiff_t drow = to_t ? t_row : h_row;
    ConvI8Args a;
    a.src = sbuf + (ry0 - 1 - by0) * srow + ptrdiff_t(rx0 - 1 - bx0) * L.cin_cs;
    a.src_row = srow;
    a.src_cs = L.cin_cs;
    a.cin4 = L.cin4;
    a.signed_input = L.signed_input;
    a.dst = dbuf + (ry0 - by0) * drow + ptrdiff_t(rx0 - bx0) * L.cout_pad;
    a.dst_row = drow;
    a.cout_pad = L.cout_pad;
    a.weight = L.weight.data();
    a.init_raw = L.init_raw.data();
    a.init_off = L.init_off.data();
    a.mul = L.mul.data();
    a.add = L.add.data();
    a.res_mul = L.res_mul;
    a.width = job.x1 - job.x0 + 2 * grow;
    a.height = job.y1 - job.y0 + 2 * grow;
    a.out = L.out;
    L.fn(a);
  }

  TailI8Args t;
  t.feat = Hb + (job.y0 - 1 - by0) * h_row + ptrdiff_t(job.x0 - 1 - bx0) * plan.width_pad;
  t.feat_row = h_row;
  t.feat_cs = plan.width_pad;
  t.cin4 = p8.tail_cin4;
  t.tail_weight = p8.tail_weight.data();
  t.init_raw = p8.tail_init_raw.data();
  t.init_off = p8.tail_init_off.data();
  t.mul = p8.tail_mul.data();
  t.bias = plan.tail_bias.data();
  set_tail_window(t, job, X + (job.y0 - 2 - by0) * x_row + (job.x0 - 2 - bx0), x_row,
                  plan.skip_weight.data(), arch.scale, hr, hr_stride, hr_float, hr_float_stride);
  p8.tail_fn(t);
}

Status SrSession::Impl::run(const SrModel::Impl& m, const uint8_t* lr, int w, int h,
                            ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride, float* hr_float,
                            ptrdiff_t hr_float_stride, const std::vector<uint8_t>& tile_paths) {
  const ptrdiff_t out_stride = hr_float ? hr_float_stride : hr_stride;
  const void* out = hr_float ? static_cast<const void*>(hr_float) : hr;
  DYDCA_TRY(check_call(m, lr, w, h, lr_stride, out, out_stride, tile_paths));
  const int ts = options.tile_size;
  size_arenas(m, std::min(w, ts * options.group_x), std::min(h, ts * options.group_y));
  build_jobs(m, w, h, tile_paths);
  auto fn = [&](int job, int worker) {
    const rt::Job& j = jobs[size_t(job)];
    // The global path (width 0) has no convolution to quantise: fp32 in both.
    if (m.precision == Precision::kInt8 && m.paths[size_t(j.path)].convs > 0)
      m.run_job_i8(j, arenas[size_t(worker)], lr, w, h, lr_stride, hr, hr_stride, hr_float,
                   hr_float_stride);
    else
      m.run_job(j, arenas[size_t(worker)], lr, w, h, lr_stride, hr, hr_stride, hr_float,
                hr_float_stride);
  };
  if (pool) {
    pool->impl().pool.run(int(jobs.size()), fn);
  } else {
    for (int j = 0; j < int(jobs.size()); ++j) fn(j, 0);
  }
  return Status::ok();
}

Expected<std::shared_ptr<const SrModel>> SrModel::create(const Model& model,
                                                         const ModelOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->arch = model.arch;
  impl->level = options.simd ? *options.simd : best_simd_level();
  if (!rt::cpu_supports(impl->level))
    return Status::error(std::string("runtime: this CPU does not support SIMD level ") +
                         simd_level_name(impl->level));
  DYDCA_TRY(impl->validate_and_plan(model));
  bool scales_ok = !model.act.empty();
  if (scales_ok) {  // the container validated them; a Model built in memory may not be
    if (model.act.path.size() != model.arch.paths.size())
      return Status::error("model: int8 activation scales for " +
                           std::to_string(model.act.path.size()) + " paths, the model has " +
                           std::to_string(model.arch.paths.size()));
    for (size_t p = 0; p < model.arch.paths.size(); ++p) {
      const PathSpec& ps = model.arch.paths[p];
      const size_t want = ps.width > 0 ? size_t(1 + 2 * ps.depth) : 0;
      if (model.act.path[p].size() != want)
        return Status::error("model: path " + std::to_string(p) + " has " +
                             std::to_string(model.act.path[p].size()) +
                             " int8 activation scales, its depth needs " + std::to_string(want));
      for (float v : model.act.path[p])
        if (!std::isfinite(v) || !(v > 0))
          return Status::error("model: int8 activation scale of path " + std::to_string(p) +
                               " is not finite and positive");
    }
  }
  switch (options.precision) {
    case Precision::kFp32: impl->precision = Precision::kFp32; break;
    case Precision::kInt8:
      if (!scales_ok)
        return Status::error(
            "runtime: int8 needs the model's int8 activation scales and this model has none "
            "(use precision fp32 or auto)",
            StatusCode::kUnsupported);
      impl->precision = Precision::kInt8;
      break;
    case Precision::kAuto:
      impl->precision = scales_ok && impl->level != SimdLevel::kNone ? Precision::kInt8
                                                                     : Precision::kFp32;
      break;
  }
  if (impl->precision == Precision::kInt8) impl->plan_int8(model);
  for (int i = 0; i < 256; ++i) impl->lut[i] = float(i) / 255.0f;
  return std::shared_ptr<const SrModel>(new SrModel(std::move(impl)));
}

SrModel::SrModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SrModel::~SrModel() = default;

const ModelArch& SrModel::arch() const { return impl_->arch; }
int SrModel::scale() const { return impl_->arch.scale; }
int SrModel::num_paths() const { return int(impl_->paths.size()); }
SimdLevel SrModel::simd_level() const { return impl_->level; }
Precision SrModel::precision() const { return impl_->precision; }
int SrModel::halo(int path) const { return impl_->paths.at(size_t(path)).halo; }

size_t SrModel::memory_bytes() const {
  size_t n = 0;
  for (const auto& p : impl_->paths) {
    for (const auto& l : p.layers) n += (l.weight.size() + l.bias.size()) * sizeof(float);
    n += (p.tail_weight.size() + p.skip_weight.size() + p.tail_bias.size()) * sizeof(float);
  }
  for (const auto& p : impl_->paths8) {
    for (const auto& l : p.layers)
      n += l.weight.bytes() + l.init_raw.bytes() + l.init_off.bytes() + l.mul.bytes() +
           l.add.bytes();
    n += p.tail_weight.bytes() + p.tail_init_raw.bytes() + p.tail_init_off.bytes() +
         p.tail_mul.bytes();
  }
  return n;
}

// ---- the workers -----------------------------------------------------------------------

Expected<std::shared_ptr<WorkerPool>> WorkerPool::create(int threads) {
  if (threads < 0 || threads > rt::kMaxThreads)
    return Status::error("runtime: threads " + std::to_string(threads) + " not in 0..256",
                         StatusCode::kInvalidArgument);
  if (threads == 0) threads = std::clamp(int(std::thread::hardware_concurrency()), 1, rt::kMaxThreads);
  try {
    return std::shared_ptr<WorkerPool>(new WorkerPool(std::make_unique<Impl>(threads)));
  } catch (const std::exception& e) {  // std::system_error: no thread
    return Status::error(std::string("runtime: cannot start the worker threads: ") + e.what());
  }
}

WorkerPool::WorkerPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WorkerPool::~WorkerPool() = default;
int WorkerPool::threads() const { return impl_->pool.workers(); }

// ---- sessions ----------------------------------------------------------------------------

Status routing_tile_paths(const RoutingMap& routing, int frame, int level, int num_paths,
                          std::vector<uint8_t>* tile_paths) {
  if (frame < 0 || frame >= routing.frames)
    return Status::error("routing: frame " + std::to_string(frame) + " not in 0.." +
                         std::to_string(routing.frames - 1));
  if (level < 0 || level >= routing.levels())
    return Status::error("routing: QoS level " + std::to_string(level) + " not in 0.." +
                         std::to_string(routing.levels() - 1));
  const size_t n = size_t(routing.tiles_per_frame());
  if (routing.chunk_ids.size() < (size_t(frame) + 1) * n)
    return Status::error("routing: chunk map shorter than its frame count says");
  const auto& table = routing.chunk_path[size_t(level)];
  tile_paths->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t chunk = routing.chunk_ids[size_t(frame) * n + i];
    if (chunk >= table.size())
      return Status::error("routing: chunk " + std::to_string(chunk) + " has no path at level " +
                           std::to_string(level));
    if (table[chunk] >= num_paths)
      return Status::error("routing: chunk " + std::to_string(chunk) + " maps to path " +
                           std::to_string(table[chunk]) + ", the model has " +
                           std::to_string(num_paths));
    (*tile_paths)[i] = table[chunk];
  }
  return Status::ok();
}

Expected<SrSession> SrSession::create(std::shared_ptr<WorkerPool> pool,
                                      const SessionOptions& options) {
  auto impl = std::make_unique<Impl>();
  SessionOptions& o = impl->options;
  o = options;
  if (o.tile_size < 1 || o.tile_size > rt::kMaxTileSize)
    return Status::error("runtime: tile size " + std::to_string(o.tile_size) + " not in 1..1024");
  if (o.group_x < 1 || o.group_y < 1 || o.group_x * o.tile_size > 4096 ||
      o.group_y * o.tile_size > 4096)
    return Status::error("runtime: tile groups must be >= 1 and at most 4096 LR pixels");
  o.max_lr_width = std::clamp(o.max_lr_width, 1, rt::kMaxFrameDim);
  o.max_lr_height = std::clamp(o.max_lr_height, 1, rt::kMaxFrameDim);
  impl->arenas.resize(size_t(pool ? pool->threads() : 1));
  impl->pool = std::move(pool);
  const int ts = o.tile_size;
  const size_t max_tiles =
      size_t((o.max_lr_width + ts - 1) / ts) * size_t((o.max_lr_height + ts - 1) / ts);
  impl->jobs.reserve(max_tiles);  // a job covers at least one tile
  impl->tile_paths.reserve(max_tiles);
  return SrSession(std::move(impl));
}

SrSession::SrSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SrSession::SrSession(SrSession&&) noexcept = default;
SrSession& SrSession::operator=(SrSession&&) noexcept = default;
SrSession::~SrSession() = default;

const SessionOptions& SrSession::options() const { return impl_->options; }
int SrSession::tile_size() const { return impl_->options.tile_size; }
int SrSession::tiles_x(int lr_width) const {
  return (lr_width + impl_->options.tile_size - 1) / impl_->options.tile_size;
}
int SrSession::tiles_y(int lr_height) const {
  return (lr_height + impl_->options.tile_size - 1) / impl_->options.tile_size;
}
int SrSession::threads() const { return impl_->pool ? impl_->pool->threads() : 1; }
const std::shared_ptr<WorkerPool>& SrSession::pool() const { return impl_->pool; }

void SrSession::reserve(const SrModel& model) {
  const SessionOptions& o = impl_->options;
  impl_->size_arenas(model.impl(), std::min(o.max_lr_width, o.tile_size * o.group_x),
                     std::min(o.max_lr_height, o.tile_size * o.group_y));
}

Status SrSession::upscale_luma(const SrModel& model, const uint8_t* lr, int w, int h,
                               ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride,
                               const std::vector<uint8_t>& tile_paths) {
  return impl_->run(model.impl(), lr, w, h, lr_stride, hr, hr_stride, nullptr, 0, tile_paths);
}

Status SrSession::upscale_luma(const SrModel& model, const uint8_t* lr, int w, int h,
                               ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride, int path) {
  if (path < 0 || path >= model.num_paths())
    return Status::error("upscale: path " + std::to_string(path) + " but the model has " +
                         std::to_string(model.num_paths()) + " paths");
  if (w < 1 || h < 1 || w > rt::kMaxFrameDim || h > rt::kMaxFrameDim)
    return Status::error("upscale: LR size " + std::to_string(w) + "x" + std::to_string(h) +
                         " not in 1..8192");
  // assign() reuses the capacity: no allocation once the largest frame was seen.
  impl_->tile_paths.assign(size_t(tiles_x(w)) * size_t(tiles_y(h)), uint8_t(path));
  return impl_->run(model.impl(), lr, w, h, lr_stride, hr, hr_stride, nullptr, 0,
                    impl_->tile_paths);
}

Status SrSession::upscale_luma(const SrModel& model, const uint8_t* lr, int w, int h,
                               ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride,
                               const RoutingMap& routing, int frame, int level) {
  if (routing.lr_width != w || routing.lr_height != h)
    return Status::error("routing: map is for " + std::to_string(routing.lr_width) + "x" +
                         std::to_string(routing.lr_height) + ", the frame is " +
                         std::to_string(w) + "x" + std::to_string(h));
  DYDCA_TRY(level_tile_paths(model, &routing, frame, level, w, h, &impl_->tile_paths));
  return impl_->run(model.impl(), lr, w, h, lr_stride, hr, hr_stride, nullptr, 0,
                    impl_->tile_paths);
}

Status SrSession::upscale_luma_float(const SrModel& model, const uint8_t* lr, int w, int h,
                                     ptrdiff_t lr_stride, float* hr, ptrdiff_t hr_stride,
                                     const std::vector<uint8_t>& tile_paths) {
  return impl_->run(model.impl(), lr, w, h, lr_stride, nullptr, 0, hr, hr_stride, tile_paths);
}

Status SrSession::level_tile_paths(const SrModel& model, const RoutingMap* routing, int frame,
                                   int level, int w, int h,
                                   std::vector<uint8_t>* tile_paths) const {
  if (routing) {
    if (routing->tile_size != tile_size())
      return Status::error("routing: tile size " + std::to_string(routing->tile_size) +
                           " but the runtime was planned for " + std::to_string(tile_size()));
    return routing_tile_paths(*routing, frame, level, model.num_paths(), tile_paths);
  }
  if (level < 0) return Status::error("QoS level " + std::to_string(level) + " is negative");
  if (w < 1 || h < 1 || w > rt::kMaxFrameDim || h > rt::kMaxFrameDim)
    return Status::error("upscale: LR size " + std::to_string(w) + "x" + std::to_string(h) +
                         " not in 1..8192");
  const int path = static_level_path(model.num_paths(), level);  // a static model
  tile_paths->assign(size_t(tiles_x(w)) * size_t(tiles_y(h)), uint8_t(path));
  return Status::ok();
}

size_t SrSession::memory_bytes() const {
  size_t n = 0;
  for (const auto& a : impl_->arenas)
    n += (a.x.size() + a.h.size() + a.t.size()) * sizeof(float) + a.x8.bytes() + a.h8.bytes() +
         a.t8.bytes();
  return n;
}

// ---- the one-caller convenience ------------------------------------------------------------

Expected<SrRuntime> SrRuntime::create(const Model& model, const RuntimeOptions& options,
                                      std::shared_ptr<WorkerPool> pool) {
  if (!pool) {
    DYDCA_ASSIGN_OR_RETURN(pool, WorkerPool::create(options.threads));
  }
  DYDCA_ASSIGN_OR_RETURN(auto m, SrModel::create(model, options.model()));
  DYDCA_ASSIGN_OR_RETURN(auto session, SrSession::create(std::move(pool), options.session()));
  session.reserve(*m);
  return SrRuntime(std::move(m), std::move(session));
}

SrRuntime::SrRuntime(std::shared_ptr<const SrModel> model, SrSession session)
    : model_(std::move(model)), session_(std::move(session)) {}
SrRuntime::SrRuntime(SrRuntime&&) noexcept = default;
SrRuntime& SrRuntime::operator=(SrRuntime&&) noexcept = default;
SrRuntime::~SrRuntime() = default;

Status SrRuntime::routing_tile_paths(const RoutingMap& routing, int frame, int level,
                                     std::vector<uint8_t>* tile_paths) const {
  return session_.level_tile_paths(*model_, &routing, frame, level, routing.lr_width,
                                   routing.lr_height, tile_paths);
}

int64_t SrRuntime::frame_macs(int w, int h, const std::vector<uint8_t>& tile_paths) const {
  const int ts = tile_size(), ntx = tiles_x(w), nty = tiles_y(h);
  const auto& paths = model_->impl().paths;
  int64_t macs = 0;
  for (int ty = 0; ty < nty; ++ty)
    for (int tx = 0; tx < ntx; ++tx) {
      const size_t i = size_t(ty) * ntx + tx;
      if (i >= tile_paths.size() || tile_paths[i] >= paths.size()) continue;
      const int64_t area = int64_t(std::min(ts, w - tx * ts)) * std::min(ts, h - ty * ts);
      macs += area * paths[tile_paths[i]].macs_per_pixel;
    }
  return macs;
}

// ---- calibration ----------------------------------------------------------------

Expected<ActScales> calibrate_act_scales(const Model& model, const std::vector<LumaView>& frames,
                                         const CalibrationOptions& options) {
  using namespace rt;
  if (frames.empty()) return Status::error("calibrate: no frames");
  if (!(options.percentile > 0 && options.percentile <= 100))
    return Status::error("calibrate: percentile must be in (0, 100]");
  for (const LumaView& f : frames)
    if (!f.data || f.width < 1 || f.height < 1 || f.width > kMaxFrameDim ||
        f.height > kMaxFrameDim || f.stride < f.width)
      return Status::error("calibrate: bad frame (null, size not in 1..8192, or stride < width)");
  SrModel::Impl impl;
  impl.arch = model.arch;
  impl.level = options.simd ? *options.simd : best_simd_level();
  if (!cpu_supports(impl.level))
    return Status::error(std::string("calibrate: this CPU does not support SIMD level ") +
                         simd_level_name(impl.level));
  DYDCA_TRY(impl.validate_and_plan(model));

  ActScales out;
  out.path.resize(impl.paths.size());
  std::vector<float> vals;
  for (size_t pi = 0; pi < impl.paths.size(); ++pi) {
    const PathPlan& plan = impl.paths[pi];
    if (plan.convs == 0) continue;
    std::vector<float> peak(plan.layers.size(), 0.0f);
    for (const LumaView& f : frames) {
      const int H = plan.halo, w = f.width, h = f.height;
      const int bw = w + 2 * H, bh = h + 2 * H;
      const size_t px = size_t(bw) * size_t(bh);
      FloatBuffer X, Hb, Tb;
      X.resize(px + kSlackFloats);
      Hb.resize(px * size_t(plan.width_pad) + kSlackFloats);
      Tb.resize(px * size_t(std::max(plan.inner_pad, 1)) + kSlackFloats);
      for (int y = 0; y < bh; ++y)
        for (int x = 0; x < bw; ++x)
          X.data()[size_t(y) * bw + x] =
              float(f.data[std::clamp(y - H, 0, h - 1) * f.stride + std::clamp(x - H, 0, w - 1)]) /
              255.0f;
      const ptrdiff_t h_row = ptrdiff_t(bw) * plan.width_pad, t_row = ptrdiff_t(bw) * plan.inner_pad;
      for (size_t j = 0; j < plan.layers.size(); ++j) {
        const ConvLayer& L = plan.layers[j];
        const int grow = plan.convs - 1 - int(j);
        const bool from_x = j == 0, to_t = j % 2 == 1;
        const float* sbuf = from_x ? X.data() : (to_t ? Hb.data() : Tb.data());
        const ptrdiff_t srow = from_x ? bw : (to_t ? h_row : t_row);
        float* dbuf = to_t ? Tb.data() : Hb.data();
        const ptrdiff_t drow = to_t ? t_row : h_row;
        ConvArgs a;
        a.src = sbuf + (H - grow - 1) * srow + ptrdiff_t(H - grow - 1) * L.cin_cs;
        a.src_row = srow;
        a.src_cs = L.cin_cs;
        a.cin = L.cin;
        a.dst = dbuf + (H - grow) * drow + ptrdiff_t(H - grow) * L.cout_pad;
        a.dst_row = drow;
        a.cout_pad = L.cout_pad;
        a.weight = L.weight.data();
        a.bias = L.bias.data();
        a.width = w + 2 * grow;
        a.height = h + 2 * grow;
        a.epilogue = L.epilogue;
        L.fn(a);
        // |v| over the frame's interior, real channels only.
        vals.clear();
        vals.reserve(size_t(w) * h * size_t(L.cout));
        for (int y = 0; y < h; ++y) {
          const float* r = dbuf + (H + y) * drow + ptrdiff_t(H) * L.cout_pad;
          for (int x = 0; x < w; ++x)
            for (int c = 0; c < L.cout; ++c) vals.push_back(std::fabs(r[ptrdiff_t(x) * L.cout_pad + c]));
        }
        const size_t k = std::min(
            vals.size() - 1,
            size_t(std::max(0.0, std::ceil(options.percentile / 100.0 * double(vals.size())) - 1)));
        std::nth_element(vals.begin(), vals.begin() + std::ptrdiff_t(k), vals.end());
        peak[j] = std::max(peak[j], vals[k]);
      }
    }
    for (size_t j = 0; j < peak.size(); ++j) {
      const bool is_unsigned = j % 2 == 1;  // ReLU outputs
      const double a = std::max(double(peak[j]), 1e-6) / (is_unsigned ? 255.0 : 127.0);
      out.path[pi].push_back(float(std::clamp(a, 1e-10, 1e10)));
    }
  }
  return out;
}

}  // namespace dydca
