// dydca chunking: content-aware chunks and routing for one video (Dy-DCA style).
//
// Given the HR frames and the LR frames the client will see (x264-encoded and
// decoded back), chunking finds temporal segments (scene cuts), cuts every LR
// frame into a tile grid, measures cheap per-tile features, clusters all tiles
// of the video into K content chunks (chunk 0 = easiest), assigns each chunk a
// path of the dynamic network, and builds the per-frame tile -> chunk routing
// with temporal smoothing. A sampler then serves balanced training pairs.
//
// Usage (server side):
//   dydca::ChunkingParams params;                 // 32x32 LR tiles, K = 4, k-means
//   params.scale = 2;
//   auto chunks = dydca::chunk_video(hr_frames, decoded_lr_frames, params);
//   if (!chunks) return chunks.status();
//   DYDCA_TRY(dydca::fill_path_tables(chunks->routing, arch));   // chunk -> path per QoS level
//   auto sampler = dydca::TrainingSampler::create(hr_frames, decoded_lr_frames, chunks->routing);
//   dydca::TrainingBatch batch;
//   sampler->next_batch(16, batch);               // LR patches with halo + HR patches + chunk ids
//
// Determinism: every function gives bit-identical output for the same input and
// parameters (seeds included) on any machine; no global RNG, no thread-order
// dependence. Frames are borrowed (const&) and never kept, except by
// TrainingSampler, which borrows them for its lifetime. Results own their data.
// Only luma (Y) is analysed: the network upscales luma only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dydca/log.h"
#include "dydca/media.h"
#include "dydca/model.h"
#include "dydca/routing.h"
#include "dydca/status.h"

namespace dydca {

// Chunk ids travel as uint8_t in RoutingMap; K is kept far below that.
inline constexpr int kMaxChunks = 64;

// ---- temporal segments ---------------------------------------------------------

// Frames [start, end) of one scene (or of one piece of a long scene).
struct Segment {
  int start = 0;
  int end = 0;
  int length() const { return end - start; }
  bool operator==(const Segment&) const = default;
};

struct SceneCutParams {
  // Cut where the histogram distance exceeds this AND the mean absolute luma
  // difference is at least min_difference... The histogram distance is the
  // smaller of two total-variation distances (0 = same, 1 = disjoint) between
  // consecutive frames' soft 32-bin luma histograms: of Y, and of
  // (Y - mean) / std; fades and global brightness changes move only the first,
  // motion uncovering a few new pixel values mostly the second, cuts both.
  double histogram_threshold = 0.25;
  double min_difference = 6.0;
  // ...or where the mean absolute luma difference (0..255) exceeds this AND is
  // `relative_jump` times the median of the differences of the 5 frames on
  // either side (cuts between scenes of similar histogram; bursts of fast
  // motion do not fire).
  // 0 disables this rule.
  double difference_threshold = 30.0;
  double relative_jump = 3.0;
  int min_length = 4;    // a cut closer than this to the previous cut is ignored (flashes)
  int max_length = 250;  // longer segments are split into equal pieces of at most this
};

// Segments covering [0, frames.size()) in order, no gaps. `scores`, when not
// null, receives the histogram distance of frame i against frame i-1 (0 for
// frame 0). Luma only. Errors: bad parameters, frames of different sizes.
Expected<std::vector<Segment>> detect_segments(const std::vector<Frame>& frames,
                                               const SceneCutParams& params = {},
                                               std::vector<double>* scores = nullptr);

// ---- tile grid -------------------------------------------------------------------

struct TileRect {
  int x = 0, y = 0, width = 0, height = 0;
};

// Tiles of tile_size x tile_size over a width x height (LR) picture, raster
// order; the last column/row is cut short by the picture edge.
struct TileGrid {
  int tile_size = 32;
  int width = 0;
  int height = 0;
  int tiles_x() const { return tile_size > 0 ? (width + tile_size - 1) / tile_size : 0; }
  int tiles_y() const { return tile_size > 0 ? (height + tile_size - 1) / tile_size : 0; }
  int count() const { return tiles_x() * tiles_y(); }
  TileRect rect(int index) const;
};

// ---- per-tile features ---------------------------------------------------------

struct TileFeatures {
  // PSNR (dB, capped at kPsnrCap) of the bicubic-upscaled LR luma against the
  // HR luma over the tile's HR area: the error of the cheapest upscaler.
  float bicubic_psnr = 0;
  float gradient = 0;   // mean |dx| + |dy| (Sobel / 8) of the LR luma, per pixel
  float laplacian = 0;  // mean |3x3 Laplacian| of the LR luma, per pixel
  // Mean |LR(f) - LR(f-1)| over the tile; on the first frame of a segment the
  // next frame is used instead (a scene cut is not motion); 0 for 1-frame segments.
  float temporal = 0;
};

// Features of every tile of every frame.
struct TileFeatureSet {
  TileGrid grid;  // LR geometry
  int scale = 2;
  int frames = 0;
  std::vector<TileFeatures> tiles;  // tiles[f * grid.count() + tile]
  const TileFeatures& at(int frame, int tile) const {
    return tiles[size_t(frame) * grid.count() + tile];
  }
};

struct FeatureParams {
  int tile_size = 32;  // LR pixels
  int scale = 2;       // HR = LR * scale in both directions (checked)
};

// HR and LR must have the same frame count; every HR frame must be exactly
// scale times its LR frame; segments as from detect_segments (empty = one
// segment). Progress stage "tile features", one unit per frame.
Expected<TileFeatureSet> compute_tile_features(const std::vector<Frame>& hr,
                                               const std::vector<Frame>& lr,
                                               const std::vector<Segment>& segments,
                                               const FeatureParams& params = {},
                                               const ProgressFn& progress = {});

// ---- clustering ------------------------------------------------------------------

enum class ClusterMethod {
  kKMeans,         // k-means (k-means++ init, fixed seed) on normalized features
  kPsnrQuantiles,  // STDO rule: K equal-count bins of bicubic PSNR
};

inline constexpr int kFeatureDims = 4;
using FeatureVector = std::array<float, kFeatureDims>;

// Relative importance of the features in the clustering distance. Defaults
// measured on bbb1080, cockatoo and cityCC0 (120 frames, x2): PSNR-led weights
// gave the most homogeneous chunks (pooled within-chunk std of bicubic PSNR
// 0.68 / 0.69 / 1.47 dB against 0.95 / 0.90 / 1.58 with 0.5 / 0.5 / 0.5) and the
// fewest raw tile flips; temporal change (weight 0.5) split flat tiles into
// "still" and "fading" chunks and doubled the flips on bbb, so it is computed
// and reported but off by default.
struct FeatureWeights {
  float bicubic_psnr = 1.0f;
  float gradient = 0.25f;
  float laplacian = 0.25f;
  float temporal = 0.0f;
};

// Maps TileFeatures to the clustering space: PSNR clamped to psnr_cap_db, the
// energies through log1p, then z-scored over the whole video and weighted.
struct FeatureSpace {
  float psnr_cap_db = 50.0f;
  FeatureVector mean{}, inv_std{}, weight{};
  FeatureVector embed(const TileFeatures& f) const;
};

struct ChunkInfo {
  int64_t tiles = 0;  // tiles assigned (cluster_tiles: raw; chunk_video: after smoothing)
  double mean_bicubic_psnr = 0;  // of its tiles, PSNR clamped at psnr_cap_db
  double mean_gradient = 0;
  double mean_temporal = 0;
  FeatureVector centroid{};           // in FeatureSpace
  float psnr_low = 0, psnr_high = 0;  // PSNR range (quantiles: the bin [low, high))
};

struct Clustering {
  ClusterMethod method = ClusterMethod::kKMeans;
  int num_chunks = 0;  // may be below the requested K (see ClusterParams)
  FeatureSpace space;
  std::vector<ChunkInfo> chunks;   // ordered easy -> hard (mean bicubic PSNR descending)
  std::vector<uint8_t> chunk_ids;  // raw nearest-chunk id per tile, same layout as features

  // Distance of a tile to a chunk in FeatureSpace units (k-means: Euclidean
  // to the centroid; quantiles: weighted PSNR distance to the chunk's bin).
  float cost(const TileFeatures& f, int chunk) const;
  // Chunk of least cost, ties to the lower (easier) id.
  int nearest(const TileFeatures& f) const;
};

struct ClusterParams {
  int chunks = 4;  // K, 1..kMaxChunks
  ClusterMethod method = ClusterMethod::kKMeans;
  uint64_t seed = 1;
  int max_iterations = 100;  // Lloyd iterations per restart
  int restarts = 3;          // k-means++ initialisations; the lowest inertia wins
  // Chunks with fewer tiles than this fraction of all tiles (and empty ones)
  // are merged into their nearest chunk, so num_chunks may end below K. Also
  // when the video has fewer distinct feature vectors than K.
  double min_chunk_fraction = 0.005;
  // k-means is fitted on at most this many tiles (an even deterministic
  // subsample), then every tile is assigned.
  int64_t max_fit_tiles = 250000;
  float psnr_cap_db = 50.0f;
  FeatureWeights weights;
};

Expected<Clustering> cluster_tiles(const TileFeatureSet& features,
                                   const ClusterParams& params = {});

// ---- chunk -> path ---------------------------------------------------------------

// Level-0 table: chunk c (easy -> hard) gets path round(c (P-1) / (K-1)), so the
// easiest chunk runs the cheapest path and the hardest the richest (K = 1: the
// richest). arch.paths must be ordered by non-decreasing MACs (checked).
Expected<std::vector<uint8_t>> assign_paths(int num_chunks, const ModelArch& arch);

// QoS tables: table[l][c]. Level 0 = level0; level l moves every chunk
// round(l * maxp / (L-1)) paths down (never below path 0), so MACs per chunk are
// non-increasing in l and the last level runs every chunk on path 0.
// levels = 0 picks L = max(level0) + 1 (one path step per level).
Expected<std::vector<std::vector<uint8_t>>> qos_level_tables(const std::vector<uint8_t>& level0,
                                                             const ModelArch& arch, int levels = 0);

// After training: psnr_db[c][p] = measured PSNR of chunk c's tiles through path
// p (NaN = not measured). Each chunk gets the cheapest path whose PSNR is within
// tolerance_db of that chunk's best path.
Expected<std::vector<uint8_t>> refine_paths(const std::vector<std::vector<double>>& psnr_db,
                                            const ModelArch& arch, double tolerance_db = 0.1);

// The measurement behind refine_paths: squared error of every (chunk, path)
// over the chunk's tiles. Feed it each path's HR output of some frames (the
// encoder through the client runtime, tests through LibTorch), then read
// psnr()[c][p] (NaN where a chunk had no pixels).
class ChunkPathError {
 public:
  ChunkPathError(const RoutingMap& routing, int scale, int num_paths);
  // `out`: the HR luma of `frame` through `path`, laid out as hr.y (width x
  // height, stride = width); float values are rounded and clamped to 8 bits.
  void add(int frame, int path, const Frame& hr, const uint8_t* out);
  void add(int frame, int path, const Frame& hr, const float* out);
  std::vector<std::vector<double>> psnr() const;

 private:
  template <typename T>
  void add_impl(int frame, int path, const Frame& hr, const T* out);
  const RoutingMap& routing_;
  int scale_;
  std::vector<std::vector<double>> sse_, count_;  // [chunk][path]
};

// Fills routing.chunk_path with assign_paths + qos_level_tables.
Status fill_path_tables(RoutingMap& routing, const ModelArch& arch, int levels = 0);


// ---- routing ---------------------------------------------------------------------

struct SmoothingParams {
  bool enabled = true;
  // Hysteresis: inside a segment a tile keeps its previous chunk unless another
  // chunk is closer than the previous one by more than this (FeatureSpace
  // units, about standard deviations). A scene cut resets every tile.
  float margin = 0.35f;
};

// Tile flips: tiles whose chunk differs from the previous frame, counted over
// frame pairs inside a segment (a cut legitimately changes everything).
struct RoutingStats {
  int64_t frame_pairs = 0;  // consecutive pairs inside segments
  int64_t flips_raw = 0;
  int64_t flips_smoothed = 0;
  std::vector<int> flips_raw_per_frame;  // [f] vs f-1; 0 at segment starts
  std::vector<int> flips_smoothed_per_frame;
  double raw_per_frame() const { return frame_pairs ? double(flips_raw) / frame_pairs : 0; }
  double smoothed_per_frame() const {
    return frame_pairs ? double(flips_smoothed) / frame_pairs : 0;
  }
};

// Builds the routing map (geometry, num_chunks, chunk_ids; chunk_path left
// empty, see fill_path_tables) from the raw clustering with smoothing.
Expected<RoutingMap> build_routing(const TileFeatureSet& features, const Clustering& clustering,
                                   const std::vector<Segment>& segments,
                                   const SmoothingParams& params = {},
                                   RoutingStats* stats = nullptr);

// Tiles per chunk in a routing map (all frames).
std::vector<int64_t> chunk_tile_counts(const RoutingMap& routing);

// ---- the whole pipeline ------------------------------------------------------------

struct ChunkingParams {
  int scale = 2;
  int tile_size = 32;
  SceneCutParams scene;
  ClusterParams cluster;
  SmoothingParams smoothing;
};

// Chunks left without a tile after smoothing are dropped (ids renumbered,
// clustering.chunks erased to match), so every chunk id in routing is used.
struct ChunkingResult {
  std::vector<Segment> segments;
  TileFeatureSet features;
  Clustering clustering;
  RoutingMap routing;  // chunk_ids filled and smoothed; chunk_path empty
  RoutingStats routing_stats;
  std::vector<int64_t> chunk_tiles;  // per chunk, after smoothing
};

// detect_segments -> compute_tile_features -> cluster_tiles -> build_routing.
// hr: original frames padded to a multiple of 2*scale; lr: the decoded LR.
Expected<ChunkingResult> chunk_video(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                     const ChunkingParams& params = {},
                                     const ProgressFn& progress = {});

// ---- training pairs ----------------------------------------------------------------

// How pixels outside the frame are made for a patch's halo.
enum class BorderMode {
  kMirror,     // reflect without repeating the edge pixel (…c b | a b c…), like ncnn tiling
  kReplicate,  // repeat the edge pixel
  kZero,       // 0, what a zero-padded "same" convolution sees at the frame border
};

struct SamplerParams {
  int patch = 48;  // LR core side; the HR patch is patch * scale
  int halo = 8;    // LR pixels of context on every side of the core
  BorderMode border = BorderMode::kMirror;
  uint64_t seed = 1;
  // Only frames [frame_begin, frame_end) are sampled (frame_end 0 = all), for
  // per-segment baselines.
  int frame_begin = 0;
  int frame_end = 0;
};

// count samples of luma patches, row-major, uint8 as in the frames.
struct TrainingBatch {
  int count = 0;
  int lr_side = 0;          // patch + 2 * halo
  int hr_side = 0;          // patch * scale
  std::vector<uint8_t> lr;  // count * lr_side^2
  std::vector<uint8_t> hr;  // count * hr_side^2
  std::vector<int> chunk;   // chunk of the tile the patch was drawn for
  std::vector<int> frame;
  std::vector<int> x, y;  // LR top-left of the core (the halo starts at x - halo)
};

// Copies one training pair. LR: (patch + 2 halo)^2 pixels starting at
// (x - halo, y - halo); HR: (patch * scale)^2 pixels at (x * scale, y * scale).
// Pixels outside a frame follow `border` (HR too, when the core leaves the frame).
void extract_patch(const Frame& lr, const Frame& hr, int scale, int x, int y, int patch, int halo,
                   BorderMode border, uint8_t* lr_out, uint8_t* hr_out);

// Balanced sampler: samples go round-robin over the chunks present (the order
// inside each round seeded-shuffled), the frame uniformly among the frames in
// which the chunk occurs, then one of the chunk's tiles in that frame; the core
// is placed so that its centre lies in that tile (seeded jitter), inside the
// frame when the frame is large enough.
class TrainingSampler {
 public:
  // Borrows hr and lr (must outlive the sampler); copies the routing ids it needs.
  static Expected<TrainingSampler> create(const std::vector<Frame>& hr,
                                          const std::vector<Frame>& lr, const RoutingMap& routing,
                                          const SamplerParams& params = {});
  // Fills `out` with count balanced samples (its buffers are reused).
  void next_batch(int count, TrainingBatch& out);
  // count samples of one chunk only (per-chunk baselines); frames still balanced.
  // Error when the chunk has no tile in the sampled frames.
  Status next_batch_for_chunk(int chunk, int count, TrainingBatch& out);

  int num_chunks() const { return num_chunks_; }
  int scale() const { return scale_; }
  // Tiles of each chunk inside the sampled frame range.
  const std::vector<int64_t>& chunk_tiles() const { return chunk_tiles_; }

 private:
  TrainingSampler() = default;
  struct ChunkIndex {
    std::vector<int> frames;       // frames where the chunk occurs, ascending
    std::vector<int64_t> offsets;  // tiles of frames[i]: tiles[offsets[i]..offsets[i+1])
    std::vector<int> tiles;        // tile indices within a frame
  };
  void prepare(TrainingBatch& out, int count) const;
  void draw(int chunk, int slot, TrainingBatch& out);
  uint64_t next_random();
  uint64_t uniform(uint64_t n);

  const std::vector<Frame>* hr_ = nullptr;
  const std::vector<Frame>* lr_ = nullptr;
  TileGrid grid_;
  int scale_ = 2;
  int num_chunks_ = 0;
  SamplerParams params_;
  std::vector<ChunkIndex> index_;
  std::vector<int64_t> chunk_tiles_;
  std::vector<int> present_;  // chunks with tiles, ascending
  std::vector<int> round_;    // current round-robin order
  size_t round_pos_ = 0;
  uint64_t rng_state_ = 0;
};

// ---- debug view --------------------------------------------------------------------

struct ChunkMapStyle {
  float alpha = 0.4f;   // opacity of the chunk colour over the picture
  bool borders = true;  // tile borders
  bool labels = true;   // chunk id in each tile (when tiles are big enough)
};

// Paints routing frame `frame` over `picture` (the HR or LR frame; its size must
// be the LR size times an integer factor) and writes a PNG. Chunk colours run
// blue (chunk 0, easy) -> red/magenta (hard); a legend sits in the top-left corner.
Status write_chunk_map_png(const std::string& path, const Frame& picture, const RoutingMap& routing,
                           int frame, const ChunkMapStyle& style = {});

}  // namespace dydca
