// dydca SR runtime: upscales 8-bit luma with the dynamic network of a Model,
// per LR tile on the path its routing says, on the CPU, without LibTorch.
// Pure C++ (no libav, no torch types). Chroma upscaling of whole frames lives
// in the thin wrapper dydca/runtime_frame.h (it needs swscale).
//
// Usage:
//   dydca::RuntimeOptions opt;                 // tile 32, all cores, best SIMD
//   opt.threads = 2;
//   auto rt = dydca::SrRuntime::create(model, opt);
//   if (!rt) { fprintf(stderr, "%s\n", rt.error_message().c_str()); return 1; }
//   std::vector<uint8_t> paths(rt->tiles_x(w) * rt->tiles_y(h), 3);   // path per tile
//   dydca::Status st = rt->upscale_luma(lr, w, h, w, hr, w * rt->scale(), paths);
//   // or, straight from the routing blob:
//   st = rt->upscale_luma(lr, w, h, w, hr, w * rt->scale(), routing, frame_index, qos_level);
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
// Everything is planned at create(): packed per-path weights, kernel choice,
// one arena per worker thread for the largest path; upscaling allocates
// nothing (except growing an internal job list the first time a larger frame
// is seen, unless RuntimeOptions::max_lr_* say the size up front).
//
// Thread safety: one SrRuntime runs one upscale at a time (it owns the worker
// pool and arenas); use one instance per concurrent caller.
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

struct RuntimeOptions {
  int tile_size = 32;   // LR routing tile (RoutingMap::tile_size), 1..1024
  int threads = 0;      // workers incl. the caller; 0 = std::thread::hardware_concurrency()
  std::optional<SimdLevel> simd;  // unset: best_simd_level(); set: that level or an error
  // Neighbouring tiles with the same path are computed as one block of up to
  // group_x by group_y tiles, which shares their halos (less recomputation,
  // larger arenas). Any value gives the same output; 1x1 = strictly per tile.
  int group_x = 4;
  int group_y = 4;
  // Largest LR frame expected: the job list is sized at create() so that no
  // frame allocates. Larger frames still work (the list grows once).
  int max_lr_width = 1920;
  int max_lr_height = 1088;
  // kAuto: int8 when the model has ActScales and the SIMD level in use is at
  // least AVX2 (so `simd = kNone` stays fp32), else fp32. kInt8 on a model
  // without ActScales is an error (create() says so); kInt8 with simd = kNone
  // runs the scalar int8 reference.
  Precision precision = Precision::kAuto;
};

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

class SrRuntime {
 public:
  // Validates the model (every tensor present with the shape its arch says;
  // 1 <= C, E <= 64; scale 2..4; paths within C and N; e = E*w/C >= 1 when
  // w > 0) and plans every path. Errors name the offending tensor or path.
  static Expected<SrRuntime> create(const Model& model, const RuntimeOptions& options = {});

  SrRuntime(SrRuntime&&) noexcept;
  SrRuntime& operator=(SrRuntime&&) noexcept;
  ~SrRuntime();

  const ModelArch& arch() const;
  int scale() const;
  int num_paths() const;
  SimdLevel simd_level() const;
  Precision precision() const;  // kFp32 or kInt8, as resolved at create()
  int threads() const;
  int tile_size() const;
  int tiles_x(int lr_width) const;
  int tiles_y(int lr_height) const;
  // Receptive-field radius (halo) of path p in LR pixels: 2 + 2*depth (one
  // per 3x3 conv: head, 2 per block, tail), or 2 for the global path alone
  // (its 5x5 skip).
  int halo(int path) const;

  // Upscales an LR luma plane (w x h, 1..8192 each) into the HR plane
  // (w*s x h*s, caller-owned). tile_paths holds one path index per tile, in
  // raster order over tiles_x(w) x tiles_y(h) tiles. Errors (nothing written):
  // null planes, bad sizes or strides, wrong tile_paths size, path index out
  // of range.
  Status upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                      ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths);
  // Same, every tile on one path.
  Status upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                      ptrdiff_t hr_stride, int path);
  // Same, tile paths from a routing map: frame `frame`, QoS level `level`
  // (chunk -> path through routing.chunk_path[level]). The map's tile size
  // and LR size must match this runtime and the plane.
  Status upscale_luma(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, uint8_t* hr,
                      ptrdiff_t hr_stride, const RoutingMap& routing, int frame, int level);
  // The network output before quantisation (int8: after the tail's
  // dequantisation and the fp32 skip), in luma/255 units (the 8-bit
  // output is clamp(round(255 * v))), hr_stride in floats. For comparing with
  // an oracle (LibTorch) on the same weights.
  Status upscale_luma_float(const uint8_t* lr, int w, int h, ptrdiff_t lr_stride, float* hr,
                            ptrdiff_t hr_stride, const std::vector<uint8_t>& tile_paths);

  // Tile paths of one frame of a routing map at a QoS level, validated
  // against this runtime's tile size and number of paths.
  Status routing_tile_paths(const RoutingMap& routing, int frame, int level,
                            std::vector<uint8_t>* tile_paths) const;

  // Multiply-accumulates the network needs for a frame (the model's count,
  // excluding halo recomputation): for GFLOP/s figures.
  int64_t frame_macs(int w, int h, const std::vector<uint8_t>& tile_paths) const;

  // Bytes held by the arenas and packed weights of the precision in use (for
  // memory reports; int8 arenas are ~1/4 of fp32's).
  size_t memory_bytes() const;

  struct Impl;

 private:
  explicit SrRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dydca
