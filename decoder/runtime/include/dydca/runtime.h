// dydca SR runtime: upscales 8-bit luma with the dynamic network of a Model,
// per LR tile on the path its routing says, on the CPU, without LibTorch.
// Pure C++ (no libav, no torch types). Whole frames (chroma, several models
// stitched per tile) live in the thin wrapper dydca/runtime_frame.h (it needs
// swscale).
//
// Model apart from state (ncnn Net/Extractor, whisper.cpp context/state):
//   SrModel     immutable: the validated model, packed per-path weights and
//               kernel choice, made once; shared (std::shared_ptr<const>)
//               by any number of callers and threads.
//   WorkerPool  the worker threads; made once by the application and passed
//               to every session that should run on them.
//   SrSession   one caller's scratch: arenas, job list. Cheap to create, not
//               thread-safe (one per caller); runs any SrModel on its pool.
//
// Usage:
//   auto model = dydca::SrModel::create(m);                // validate + plan (best SIMD)
//   auto pool = dydca::WorkerPool::create(2);               // 2 workers incl. the caller
//   auto session = dydca::SrSession::create(*pool);         // tile 32, 4x4-tile jobs
//   if (!model || !pool || !session) return fail(...);      // each says why
//   std::vector<uint8_t> paths(session->tiles_x(w) * session->tiles_y(h), 2);   // path per tile
//   dydca::Status st = session->upscale_luma(**model, lr, w, h, w, hr, w * (*model)->scale(), paths);
//   // or, straight from the routing blob:
//   st = session->upscale_luma(**model, lr, w, h, w, hr, w * 2, routing, frame_index, qos_level);
// SrRuntime bundles the three for one caller that wants one object.
//
// What it computes (see core/include/dydca/model.h): per tile, the
// path's network applied to the WHOLE frame (valid convolutions over the
// edge-replicated input), restricted to the tile. Tiles carry a halo of the
// path's receptive field, so the output does not depend on the tiling, the
// thread count or the scheduling: it is bit-identical to one whole-frame run
// of the same kernels. In fp32, different SIMD levels agree to ~1e-6 in float
// (FMA vs separate multiply-add) and may differ by one 8-bit step on rare
// pixels; in int8 (Precision::kInt8, the model's ActScales) every SIMD level
// gives the same bits as the scalar reference.
//
// Allocation: SrModel::create packs everything; a session's arenas grow to
// the largest model and compute block it has run (SrSession::reserve sizes
// them up front), after which upscaling allocates nothing.
//
// Thread safety: an SrModel is immutable and safe to share. A WorkerPool runs
// one batch at a time: sessions on different threads that share it take turns
// (each upscale is one batch). An SrSession serves one caller at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "dydca/model.h"
#include "dydca/routing.h"
#include "dydca/status.h"

namespace dydca {

// Kernel set. kNone is the plain scalar reference (always available).
enum class SimdLevel { kNone = 0, kAvx2 = 1, kAvx512 = 2 };

const char* simd_level_name(SimdLevel level);  // "none", "avx2", "avx512"
// "none" | "avx2" | "avx512" (the --simd flag); "auto" gives nullopt.
Expected<std::optional<SimdLevel>> parse_simd_level(std::string_view name);
// Best level this CPU supports (AVX-512 needs F+BW+VL, AVX2 needs AVX2+FMA).
SimdLevel best_simd_level();
bool simd_level_supported(SimdLevel level);

// Arithmetic of the network's 3x3 convolutions. kInt8 follows the rules in
// model.h (ActScales): uint8/int8 activations, int8 weights, int32 sums.
enum class Precision { kAuto = 0, kFp32 = 1, kInt8 = 2 };
const char* precision_name(Precision p);  // "auto", "fp32", "int8"
// "auto" | "fp32" | "int8" (the --precision flag).
Expected<Precision> parse_precision(std::string_view name);

// A borrowed 8-bit luma plane.
struct LumaView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0;
  ptrdiff_t stride = 0;
};

struct CalibrationOptions {
  // Per tensor, the scale maps this percentile of |v| (over every pixel and
  // channel of a frame, the frame's interior only) to the largest code (127
  // signed, 255 unsigned); the largest value over the frames is kept.
  // 100 = the maximum.
  double percentile = 99.999;
  int threads = 0;  // unused for now (calibration runs on the caller's thread)
  std::optional<SimdLevel> simd;  // fp32 kernels used for the reference forward
};

// Activation scales for int8 (model.h's ActScales) calibrated from the fp32
// forward of every path on `frames` (LR luma). The weights are the model's.
// Errors: the model does not validate, no frames, a bad plane.
Expected<ActScales> calibrate_act_scales(const Model& model, const std::vector<LumaView>& frames,
                                         const CalibrationOptions& options = {});

// ---- the model -------------------------------------------------------------------

struct ModelOptions {
  std::optional<SimdLevel> simd;  // unset: best_simd_level(); set: that level or an error
  // kAuto: int8 when the model has ActScales and the SIMD level in use is at
  // least AVX2 (so `simd = kNone` stays fp32), else fp32. kInt8 on a model
  // without ActScales is an error (create() says so); kInt8 with simd = kNone
  // runs the scalar int8 reference.
  Precision precision = Precision::kAuto;
};

// A model ready to run: validated, every path planned (weights packed for the
// chosen SIMD level and precision). Immutable; share it.
class SrModel {
 public:
  // Validates the model (every tensor present with the shape its arch says;
  // 1 <= C, E <= 64; scale 1..4; paths within C and N; e = E*w/C >= 1 when
  // w > 0; ActScales, if any, one per conv of each path, finite and > 0)
  // and plans every path. Errors name the offending tensor or path.
  static Expected<std::shared_ptr<const SrModel>> create(const Model& model,
                                                         const ModelOptions& options = {});
  ~SrModel();
  SrModel(const SrModel&) = delete;
  SrModel& operator=(const SrModel&) = delete;

  const ModelArch& arch() const;
  int scale() const;
  int num_paths() const;
  SimdLevel simd_level() const;
  Precision precision() const;  // kFp32 or kInt8, as resolved at create()
  // Receptive-field radius (halo) of path p in LR pixels: 2 + 2*depth (one
  // per 3x3 conv: head, 2 per block, tail), or 2 for the global path alone
  // (its 5x5 skip).
  int halo(int path) const;
  // Bytes of the packed weights of the precision in use.
  size_t memory_bytes() const;

  struct Impl;  // runtime-internal (runtime.cpp)
  const Impl& impl() const { return *impl_; }

 private:
  explicit SrModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- the workers ---------------------------------------------------------------------

// The threads an upscale runs on: threads - 1 started here, the calling
// thread is the last worker. Runs one batch at a time; callers on different
// threads take turns. Not movable (sessions hold it by shared_ptr).
class WorkerPool {
 public:
  // threads: 1..256 workers including the caller; 0 = hardware_concurrency.
  // Errors: out of range, the system refused a thread.
  static Expected<std::shared_ptr<WorkerPool>> create(int threads = 0);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  int threads() const;

  struct Impl;  // runtime-internal (runtime.cpp)
  Impl& impl() { return *impl_; }

 private:
  explicit WorkerPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- one caller's state --------------------------------------------------------------

struct SessionOptions {
  int tile_size = 32;  // LR routing tile (RoutingMap::tile_size), 1..1024
  // Neighbouring tiles with the same path are computed as one block of up to
  // group_x by group_y tiles, which shares their halos (less recomputation,
  // larger arenas). Any value gives the same output; 1x1 = strictly per tile.
  int group_x = 4;
  int group_y = 4;
  // Largest LR frame expected: the job list is sized at create() and
  // reserve() sizes the arenas for it. Larger frames still work (the list
  // and the arenas grow once).
  int max_lr_width = 1920;
  int max_lr_height = 1088;
};

// The tile paths of frame `frame` of a routing map at QoS level `level`
// (chunk -> path through routing.chunk_path[level]), each checked to be
// < num_paths. Errors: frame or level out of range, a short chunk map, a
// chunk without a path, a path out of range.
Status routing_tile_paths(const RoutingMap& routing, int frame, int level, int num_paths,
                          std::vector<uint8_t>* tile_paths);

// Scratch of one caller: one arena per worker of its pool and the job list.
// Not bound to a model: any SrModel runs on it (the arenas grow to the
// largest one), so one session serves a stream whose models change, or
// several models side by side. One caller at a time; move-only.
class SrSession {
 public:
  // pool: shared with other sessions (they take turns); null = the caller's
  // thread alone. Errors: tile size or groups out of range.
  static Expected<SrSession> create(std::shared_ptr<WorkerPool> pool,
                                    const SessionOptions& options = {});
  SrSession(SrSession&&) noexcept;
  SrSession& operator=(SrSession&&) noexcept;
  ~SrSession();

  const SessionOptions& options() const;
  int tile_size() const;
  int tiles_x(int lr_width) const;
  int tiles_y(int lr_height) const;
  int threads() const;  // the pool's, or 1
  const std::shared_ptr<WorkerPool>& pool() const;

  // Sizes the arenas for `model` on max_lr_width x max_lr_height frames, so
  // that its first frame allocates nothing.
  void reserve(const SrModel& model);

  // Upscales an LR luma plane (w x h, 1..8192 each) into the HR plane
  // (w*s x h*s, caller-owned) with `model`. tile_paths holds one path index
  // per tile, in raster order over tiles_x(w) x tiles_y(h) tiles. Errors
  // (nothing written): null planes, bad sizes or strides, wrong tile_paths
  // size, path index out of range.
  Status upscale_luma(const SrModel& model, const uint8_t* lr, int w, int h, ptrdiff_t lr_stride,
                      uint8_t* hr, ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths);
  // Same, every tile on one path.
  Status upscale_luma(const SrModel& model, const uint8_t* lr, int w, int h, ptrdiff_t lr_stride,
                      uint8_t* hr, ptrdiff_t hr_stride, int path);
  // Same, tile paths from a routing map (routing_tile_paths). The map's tile
  // size and LR size must match this session and the plane.
  Status upscale_luma(const SrModel& model, const uint8_t* lr, int w, int h, ptrdiff_t lr_stride,
                      uint8_t* hr, ptrdiff_t hr_stride, const RoutingMap& routing, int frame,
                      int level);
  // The network output before quantisation (int8: after the tail's
  // dequantisation and the fp32 skip), in luma/255 units (the 8-bit
  // output is clamp(round(255 * v))), hr_stride in floats. For comparing with
  // an oracle (LibTorch) on the same weights.
  Status upscale_luma_float(const SrModel& model, const uint8_t* lr, int w, int h,
                            ptrdiff_t lr_stride, float* hr, ptrdiff_t hr_stride,
                            const std::vector<uint8_t>& tile_paths);

  // The tile paths of QoS level `level` for a w x h frame: with a routing map,
  // frame `frame`'s (routing_tile_paths; its tile size must be this
  // session's); without one (a static model), every tile on the level-th
  // richest path (path num_paths-1-level, at least 0: the last path is the
  // richest). The client's one rule from a level to paths.
  Status level_tile_paths(const SrModel& model, const RoutingMap* routing, int frame, int level,
                          int w, int h, std::vector<uint8_t>* tile_paths) const;

  // Bytes held by the arenas (int8 arenas are ~1/4 of fp32's).
  size_t memory_bytes() const;

  struct Impl;

 private:
  explicit SrSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- one object for one caller -------------------------------------------------------

struct RuntimeOptions {
  int tile_size = 32;   // SessionOptions
  int threads = 0;      // workers incl. the caller; 0 = std::thread::hardware_concurrency()
  std::optional<SimdLevel> simd;  // ModelOptions
  int group_x = 4;      // SessionOptions
  int group_y = 4;
  int max_lr_width = 1920;
  int max_lr_height = 1088;
  Precision precision = Precision::kAuto;  // ModelOptions

  ModelOptions model() const { return {simd, precision}; }
  SessionOptions session() const { return {tile_size, group_x, group_y, max_lr_width, max_lr_height}; }
};

// A convenience for a caller with one model: an SrModel, a WorkerPool (its
// own with options.threads workers, or the one given) and an SrSession
// sized for the model. Same outputs as the three used directly.
class SrRuntime {
 public:
  static Expected<SrRuntime> create(const Model& model, const RuntimeOptions& options = {},
                                    std::shared_ptr<WorkerPool> pool = nullptr);

  SrRuntime(SrRuntime&&) noexcept;
  SrRuntime& operator=(SrRuntime&&) noexcept;
  ~SrRuntime();

  const std::shared_ptr<const SrModel>& model() const { return model_; }
  SrSession& session() { return session_; }

  const ModelArch& arch() const { return model_->arch(); }
  int scale() const { return model_->scale(); }
  int num_paths() const { return model_->num_paths(); }
  SimdLevel simd_level() const { return model_->simd_level(); }
  Precision precision() const { return model_->precision(); }
  int threads() const { return session_.threads(); }
  int tile_size() const { return session_.tile_size(); }
  int tiles_x(int lr_width) const { return session_.tiles_x(lr_width); }
  int tiles_y(int lr_height) const { return session_.tiles_y(lr_height); }
  int halo(int path) const { return model_->halo(path); }

  // SrSession's, with this runtime's model.
  Status upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                      ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths) {
    return session_.upscale_luma(*model_, lr, w, h, lr_stride, hr, hr_stride, tile_paths);
  }
  Status upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                      ptrdiff_t hr_stride, int path) {
    return session_.upscale_luma(*model_, lr, w, h, lr_stride, hr, hr_stride, path);
  }
  Status upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                      ptrdiff_t hr_stride, const RoutingMap& routing, int frame, int level) {
    return session_.upscale_luma(*model_, lr, w, h, lr_stride, hr, hr_stride, routing, frame,
                                 level);
  }
  Status upscale_luma_float(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, float* hr,
                            ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths) {
    return session_.upscale_luma_float(*model_, lr, w, h, lr_stride, hr, hr_stride, tile_paths);
  }

  // routing_tile_paths, also checking the map's tile size against this runtime's.
  Status routing_tile_paths(const RoutingMap& routing, int frame, int level,
                            std::vector<uint8_t>* tile_paths) const;

  // Multiply-accumulates the network needs for a frame (the model's count,
  // excluding halo recomputation): for GFLOP/s figures.
  int64_t frame_macs(int w, int h, const std::vector<uint8_t>& tile_paths) const;

  // Bytes held by the packed weights and the arenas.
  size_t memory_bytes() const { return model_->memory_bytes() + session_.memory_bytes(); }

 private:
  SrRuntime(std::shared_ptr<const SrModel> model, SrSession session);
  std::shared_ptr<const SrModel> model_;
  SrSession session_;
};

}  // namespace dydca
