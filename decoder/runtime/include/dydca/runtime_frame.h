// Whole frames as the client shows them, on top of the SR runtime: chroma by
// a fixed swscale bicubic, luma by the network of one model (per-tile paths
// from the routing and the QoS level) or stitched tile by tile from several
// models (multi-model files). The one home of this: the decoder, the
// encoder's quality evaluation and the benches all call FrameUpscaler, so
// what the encoder reports is what the client shows.
// A separate library (dydca::runtime_frame) because it links libav through
// dydca::media; the runtime core (dydca/runtime.h) does not.
//
// Usage:
//   auto fu = dydca::FrameUpscaler::create(lr_w, lr_h, model->scale(), pool,
//                                          {.tile_size = routing.tile_size});
//   dydca::Frame hr;
//   DYDCA_TRY(fu->upscale(*model, lr, hr, &routing, frame_index, qos_level));
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dydca/media.h"
#include "dydca/runtime.h"

struct SwsContext;

namespace dydca {

// swscale bicubic of all three planes from LR w x h to (w*s) x (h*s) (scale 1:
// a copy), with the flags of dydca::resize(..., ScaleFilter::kBicubic), so
// the result equals it bit for bit. The client's chroma; for a plain video
// also its luma. Planned once per size: no allocation per frame.
class BicubicUpscaler {
 public:
  // Errors: sizes <= 0, an output larger than media.h's limits, scale < 1.
  static Expected<BicubicUpscaler> create(int lr_width, int lr_height, int scale);
  BicubicUpscaler(BicubicUpscaler&&) noexcept;
  BicubicUpscaler& operator=(BicubicUpscaler&&) noexcept;
  ~BicubicUpscaler();

  // hr becomes (w*s) x (h*s) if it is not already (allocation only then);
  // hr.pts = lr.pts. Errors: lr is not the size given at create().
  Status run(const Frame& lr, Frame& hr);
  int scale() const { return scale_; }

 private:
  struct Deleter {
    void operator()(SwsContext* c) const;
  };
  BicubicUpscaler() = default;
  std::unique_ptr<SwsContext, Deleter> sws_;
  int lr_w_ = 0, lr_h_ = 0, scale_ = 1;
};

// A model of a multi-model file as FrameUpscaler::luma_tiles runs it: the
// global path (0, 0) then its richest path (the model's last), so that the
// tiles other models own cost only the 5x5 skip. A single-path model whose
// path is the global one stays as it is.
Expected<std::shared_ptr<const SrModel>> stitch_model(const Model& model,
                                                      const ModelOptions& options = {});

// One caller's whole-frame upscaler: a BicubicUpscaler, an SrSession on the
// pool given, and the scratch of the multi-model stitch. chroma() and the
// luma calls use separate state: the decoder runs chroma() on its decode
// thread and luma() on its SR thread at the same time. Each of the two is one
// caller at a time. Move-only.
class FrameUpscaler {
 public:
  // pool: null = the caller's thread alone. options.tile_size should be the
  // routing's (a map with another tile size re-makes the session).
  static Expected<FrameUpscaler> create(int lr_width, int lr_height, int scale,
                                        std::shared_ptr<WorkerPool> pool,
                                        const SessionOptions& options = {});
  FrameUpscaler(FrameUpscaler&&) noexcept;
  FrameUpscaler& operator=(FrameUpscaler&&) noexcept;
  ~FrameUpscaler();

  // All three planes of hr by bicubic (BicubicUpscaler::run); luma() then
  // overwrites the luma.
  Status chroma(const Frame& lr, Frame& hr);

  // HR luma (hr.y; hr must be the HR size) at QoS level `level`: with a
  // routing map, frame `frame`'s tiles on the paths its chunks name at that
  // level; without one (a static model), every tile on the level-th richest
  // path (SrSession::level_tile_paths).
  Status luma(const SrModel& model, const Frame& lr, Frame& hr, const RoutingMap* routing,
              int frame, int level);

  // HR luma from several models side by side: tile t (raster order over the
  // session's tiles) is model tile_models[t]'s. Each model used runs its
  // richest (last) path on its own tiles and path 0 on the others (with
  // stitch_model's models: the global path, the 5x5 skip alone), into a
  // scratch plane whose own tiles are copied out; a frame that one model owns
  // entirely runs straight into hr. models[m] may be null when no tile is m's.
  // The output of a tile does not depend on the others' paths (runtime.h), so
  // each tile is exactly its model's whole-frame output.
  Status luma_tiles(const std::vector<const SrModel*>& models,
                    const std::vector<uint8_t>& tile_models, const Frame& lr, Frame& hr);

  // chroma() then luma(): the client's frame.
  Status upscale(const SrModel& model, const Frame& lr, Frame& hr, const RoutingMap* routing,
                 int frame, int level);
  // chroma() then luma_tiles() with the tiles' models from a multi-model
  // file's routing (chunk -> model index through routing.chunk_path[level]).
  Status upscale(const std::vector<const SrModel*>& models, const Frame& lr, Frame& hr,
                 const RoutingMap& routing, int frame, int level);

  int scale() const;
  SrSession& session();
  const SrSession& session() const;

 private:
  struct State;
  explicit FrameUpscaler(std::unique_ptr<State> state);
  Status match_tile_size(int tile_size);
  std::unique_ptr<State> s_;
};

}  // namespace dydca
