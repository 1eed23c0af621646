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
#include <algorithm>
#include <cstring>
#include <string>
#include <thread>

#include "dydca/runtime.h"
#include "kernels.h"
#include "thread_pool.h"

namespace dydca {
namespace rt {
namespace {

constexpr int kMaxScale = 4;
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

struct Arena {
  FloatBuffer x, h, t;  // input plane, body features (C wide), inner features (E wide)
};

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

// ---- the runtime ---------------------------------------------------------------

struct SrRuntime::Impl {
  ModelArch arch;
  RuntimeOptions options;
  SimdLevel level = SimdLevel::kNone;
  std::vector<rt::PathPlan> paths;
  std::vector<rt::Arena> arenas;  // one per worker
  int arena_w = 0, arena_h = 0;   // largest job rectangle the arenas hold (LR pixels)
  int max_halo = 2;
  int max_width_pad = 0, max_inner_pad = 0;
  std::unique_ptr<rt::ThreadPool> pool;
  std::vector<rt::Job> jobs;
  std::vector<uint8_t> uniform_paths;  // scratch for the single-path overload
  float lut[256];                      // Y -> Y / 255.f (exactly as x = Y/255)

  Status validate_and_plan(const Model& model);
  void size_arenas(int job_w, int job_h);
  Status check_call(const void* lr, int w, int h, ptrdiff_t lr_stride, const void* hr,
                    ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths) const;
  void build_jobs(int w, int h, const std::vector<uint8_t>& tile_paths);
  void run_job(const rt::Job& job, rt::Arena& arena, const uint8_t* lr, int w, int h,
               ptrdiff_t lr_stride, uint8_t* hr, ptrdiff_t hr_stride, float* hr_float,
               ptrdiff_t hr_float_stride) const;
  Status run(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
             ptrdiff_t hr_stride, float* hr_float, ptrdiff_t hr_float_stride,
             const std::vector<uint8_t>& tile_paths);
};

Status SrRuntime::Impl::validate_and_plan(const Model& model) {
  using namespace rt;
  const ModelArch& a = model.arch;
  if (a.scale < 1 || a.scale > kMaxScale)
    return Status::error("model: scale " + std::to_string(a.scale) + " not in 1..4");
  if (a.channels < 1 || a.channels > kMaxChannels || a.inner < 1 || a.inner > kMaxChannels)
    return Status::error("model: channels C=" + std::to_string(a.channels) + ", E=" +
                         std::to_string(a.inner) + " must be in 1..64");
  if (a.blocks < 0 || a.blocks > 64)
    return Status::error("model: " + std::to_string(a.blocks) + " blocks not in 0..64");
  if (a.paths.empty() || a.paths.size() > 255)
    return Status::error("model: " + std::to_string(a.paths.size()) + " paths (need 1..255)");
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

void SrRuntime::Impl::size_arenas(int job_w, int job_h) {
  if (job_w <= arena_w && job_h <= arena_h) return;
  arena_w = std::max(arena_w, job_w);
  arena_h = std::max(arena_h, job_h);
  const size_t px = size_t(arena_w + 2 * max_halo) * size_t(arena_h + 2 * max_halo);
  for (auto& ar : arenas) {
    ar.x.resize(px + rt::kSlackFloats);
    ar.h.resize(max_width_pad ? px * max_width_pad + rt::kSlackFloats : 0);
    ar.t.resize(max_inner_pad ? px * max_inner_pad + rt::kSlackFloats : 0);
  }
}

Status SrRuntime::Impl::check_call(const void* lr, int w, int h, ptrdiff_t lr_stride,
                                   const void* hr, ptrdiff_t hr_stride,
                                   const std::vector<uint8_t>& tile_paths) const {
  const int s = arch.scale;
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
    if (p >= paths.size())
      return Status::error("upscale: tile path " + std::to_string(p) + " but the model has " +
                           std::to_string(paths.size()) + " paths");
  return Status::ok();
}

// Blocks of group_x x group_y tiles; a block that runs one path is one job,
// else it is halved (along its longer side) until the parts are uniform or
// one tile row, whose horizontal runs of equal paths become jobs. Larger jobs
// share more halo (see README: 4x4 tiles of 32 recompute ~12 % for N=4).
void SrRuntime::Impl::build_jobs(int w, int h, const std::vector<uint8_t>& tile_paths) {
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
    const int hl = paths[size_t(path)].halo;
    j.cost = int64_t(j.x1 - j.x0 + hl) * (j.y1 - j.y0 + hl) * paths[size_t(path)].macs_per_pixel;
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


void SrRuntime::Impl::run_job(const rt::Job& job, rt::Arena& arena, const uint8_t* lr, int w,
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
  t.x = X + (job.y0 - 2 - by0) * x_row + (job.x0 - 2 - bx0);
  t.x_row = x_row;
  t.skip_weight = plan.skip_weight.data();
  t.bias = plan.tail_bias.data();
  t.scale = arch.scale;
  t.width = job.x1 - job.x0;
  t.height = job.y1 - job.y0;
  const int s = arch.scale;
  if (hr_float) {
    t.hr_float = hr_float + ptrdiff_t(job.y0) * s * hr_float_stride + ptrdiff_t(job.x0) * s;
    t.hr_float_stride = hr_float_stride;
  } else {
    t.hr = hr + ptrdiff_t(job.y0) * s * hr_stride + ptrdiff_t(job.x0) * s;
    t.hr_stride = hr_stride;
  }
  plan.tail_fn(t);
}

Status SrRuntime::Impl::run(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                            ptrdiff_t hr_stride, float* hr_float, ptrdiff_t hr_float_stride,
                            const std::vector<uint8_t>& tile_paths) {
  const ptrdiff_t out_stride = hr_float ? hr_float_stride : hr_stride;
  const void* out = hr_float ? static_cast<const void*>(hr_float) : hr;
  DYDCA_TRY(check_call(lr, w, h, lr_stride, out, out_stride, tile_paths));
  const int ts = options.tile_size;
  size_arenas(std::min(w, ts * options.group_x), std::min(h, ts * options.group_y));
  build_jobs(w, h, tile_paths);
  auto fn = [&](int job, int worker) {
    run_job(jobs[size_t(job)], arenas[size_t(worker)], lr, w, h, lr_stride, hr, hr_stride,
            hr_float, hr_float_stride);
  };
  pool->run(int(jobs.size()), fn);
  return Status::ok();
}

Expected<SrRuntime> SrRuntime::create(const Model& model, const RuntimeOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->arch = model.arch;
  impl->options = options;
  RuntimeOptions& o = impl->options;
  if (o.tile_size < 1 || o.tile_size > rt::kMaxTileSize)
    return Status::error("runtime: tile size " + std::to_string(o.tile_size) + " not in 1..1024");
  if (o.group_x < 1 || o.group_y < 1 || o.group_x * o.tile_size > 4096 ||
      o.group_y * o.tile_size > 4096)
    return Status::error("runtime: tile groups must be >= 1 and at most 4096 LR pixels");
  if (o.threads < 0 || o.threads > rt::kMaxThreads)
    return Status::error("runtime: threads " + std::to_string(o.threads) + " not in 0..256");
  if (o.threads == 0) o.threads = std::max(1, int(std::thread::hardware_concurrency()));
  o.max_lr_width = std::clamp(o.max_lr_width, 1, rt::kMaxFrameDim);
  o.max_lr_height = std::clamp(o.max_lr_height, 1, rt::kMaxFrameDim);
  impl->level = o.simd ? *o.simd : best_simd_level();
  if (!rt::cpu_supports(impl->level))
    return Status::error(std::string("runtime: this CPU does not support SIMD level ") +
                         simd_level_name(impl->level));
  DYDCA_TRY(impl->validate_and_plan(model));
  for (int i = 0; i < 256; ++i) impl->lut[i] = float(i) / 255.0f;
  impl->arenas.resize(size_t(o.threads));
  impl->size_arenas(std::min(o.max_lr_width, o.tile_size * o.group_x),
                    std::min(o.max_lr_height, o.tile_size * o.group_y));
  const int ts = o.tile_size;
  const size_t max_tiles = size_t((o.max_lr_width + ts - 1) / ts) * size_t((o.max_lr_height + ts - 1) / ts);
  impl->jobs.reserve(max_tiles);  // a job covers at least one tile
  impl->uniform_paths.reserve(max_tiles);
  impl->pool = std::make_unique<rt::ThreadPool>(o.threads);
  return SrRuntime(std::move(impl));
}

SrRuntime::SrRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SrRuntime::SrRuntime(SrRuntime&&) noexcept = default;
SrRuntime& SrRuntime::operator=(SrRuntime&&) noexcept = default;
SrRuntime::~SrRuntime() = default;

const ModelArch& SrRuntime::arch() const { return impl_->arch; }
int SrRuntime::scale() const { return impl_->arch.scale; }
int SrRuntime::num_paths() const { return int(impl_->paths.size()); }
SimdLevel SrRuntime::simd_level() const { return impl_->level; }
int SrRuntime::threads() const { return impl_->options.threads; }
int SrRuntime::tile_size() const { return impl_->options.tile_size; }
int SrRuntime::tiles_x(int lr_width) const {
  return (lr_width + impl_->options.tile_size - 1) / impl_->options.tile_size;
}
int SrRuntime::tiles_y(int lr_height) const {
  return (lr_height + impl_->options.tile_size - 1) / impl_->options.tile_size;
}
int SrRuntime::halo(int path) const { return impl_->paths.at(size_t(path)).halo; }

Status SrRuntime::upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                               ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths) {
  return impl_->run(lr, w, h, lr_stride, hr, hr_stride, nullptr, 0, tile_paths);
}

Status SrRuntime::upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                               ptrdiff_t hr_stride, int path) {
  if (path < 0 || path >= num_paths())
    return Status::error("upscale: path " + std::to_string(path) + " but the model has " +
                         std::to_string(num_paths()) + " paths");
  if (w < 1 || h < 1 || w > rt::kMaxFrameDim || h > rt::kMaxFrameDim)
    return Status::error("upscale: LR size " + std::to_string(w) + "x" + std::to_string(h) +
                         " not in 1..8192");
  // assign() reuses the capacity: no allocation once the largest frame was seen.
  impl_->uniform_paths.assign(size_t(tiles_x(w)) * size_t(tiles_y(h)), uint8_t(path));
  return impl_->run(lr, w, h, lr_stride, hr, hr_stride, nullptr, 0, impl_->uniform_paths);
}

Status SrRuntime::routing_tile_paths(const RoutingMap& routing, int frame, int level,
                                     std::vector<uint8_t>* tile_paths) const {
  if (routing.tile_size != tile_size())
    return Status::error("routing: tile size " + std::to_string(routing.tile_size) +
                         " but the runtime was planned for " + std::to_string(tile_size()));
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
    if (table[chunk] >= impl_->paths.size())
      return Status::error("routing: chunk " + std::to_string(chunk) + " maps to path " +
                           std::to_string(table[chunk]) + ", the model has " +
                           std::to_string(impl_->paths.size()));
    (*tile_paths)[i] = table[chunk];
  }
  return Status::ok();
}

Status SrRuntime::upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                               ptrdiff_t hr_stride, const RoutingMap& routing, int frame,
                               int level) {
  if (routing.lr_width != w || routing.lr_height != h)
    return Status::error("routing: map is for " + std::to_string(routing.lr_width) + "x" +
                         std::to_string(routing.lr_height) + ", the frame is " +
                         std::to_string(w) + "x" + std::to_string(h));
  DYDCA_TRY(routing_tile_paths(routing, frame, level, &impl_->uniform_paths));
  return impl_->run(lr, w, h, lr_stride, hr, hr_stride, nullptr, 0, impl_->uniform_paths);
}

Status SrRuntime::upscale_luma_float(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride,
                                     float* hr, ptrdiff_t hr_stride,
                                     const std::vector<uint8_t>& tile_paths) {
  return impl_->run(lr, w, h, lr_stride, nullptr, 0, hr, hr_stride, tile_paths);
}

int64_t SrRuntime::frame_macs(int w, int h, const std::vector<uint8_t>& tile_paths) const {
  const int ts = tile_size(), ntx = tiles_x(w), nty = tiles_y(h);
  int64_t macs = 0;
  for (int ty = 0; ty < nty; ++ty)
    for (int tx = 0; tx < ntx; ++tx) {
      const size_t i = size_t(ty) * ntx + tx;
      if (i >= tile_paths.size() || tile_paths[i] >= impl_->paths.size()) continue;
      const int64_t area = int64_t(std::min(ts, w - tx * ts)) * std::min(ts, h - ty * ts);
      macs += area * impl_->paths[tile_paths[i]].macs_per_pixel;
    }
  return macs;
}

size_t SrRuntime::memory_bytes() const {
  size_t n = 0;
  for (const auto& a : impl_->arenas) n += (a.x.size() + a.h.size() + a.t.size()) * sizeof(float);
  for (const auto& p : impl_->paths) {
    for (const auto& l : p.layers) n += (l.weight.size() + l.bias.size()) * sizeof(float);
    n += (p.tail_weight.size() + p.skip_weight.size() + p.tail_bias.size()) * sizeof(float);
  }
  return n;
}

}  // namespace dydca
