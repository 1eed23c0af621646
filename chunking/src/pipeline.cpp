// chunk_video: the chunking stages in order, with one progress callback.
#include "dydca/chunking.h"

namespace dydca {

Expected<ChunkingResult> chunk_video(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                     const ChunkingParams& params, const ProgressFn& progress) {
  ChunkingResult r;
  auto segments = detect_segments(lr, params.scene);
  if (!segments) return segments.status().with_context("chunking");
  r.segments = std::move(*segments);
  FeatureParams fp;
  fp.tile_size = params.tile_size;
  fp.scale = params.scale;
  auto features = compute_tile_features(hr, lr, r.segments, fp, progress);
  if (!features) return features.status().with_context("chunking");
  r.features = std::move(*features);
  if (progress) progress({"clustering", 0, 1});
  auto clustering = cluster_tiles(r.features, params.cluster);
  if (!clustering) return clustering.status().with_context("chunking");
  r.clustering = std::move(*clustering);
  if (progress) progress({"clustering", 1, 1});
  auto routing =
      build_routing(r.features, r.clustering, r.segments, params.smoothing, &r.routing_stats);
  if (!routing) return routing.status().with_context("chunking");
  r.routing = std::move(*routing);
  r.chunk_tiles = chunk_tile_counts(r.routing);

  // Hysteresis can starve a chunk (its tiles keep the chunk they started a
  // segment with): drop empty chunks so that no path or training budget goes to
  // them. Raw clustering ids follow the same renumbering.
  std::vector<int> new_id(r.chunk_tiles.size(), -1);
  int kept = 0;
  for (size_t c = 0; c < r.chunk_tiles.size(); ++c)
    if (r.chunk_tiles[c] > 0) new_id[c] = kept++;
  if (kept < r.routing.num_chunks) {
    for (auto& id : r.routing.chunk_ids) id = uint8_t(new_id[id]);
    // A raw id whose chunk vanished maps to the nearest surviving chunk.
    std::vector<ChunkInfo> chunks;
    for (size_t c = 0; c < new_id.size(); ++c)
      if (new_id[c] >= 0) chunks.push_back(r.clustering.chunks[c]);
    r.clustering.chunks = std::move(chunks);
    r.clustering.num_chunks = kept;
    for (size_t i = 0; i < r.clustering.chunk_ids.size(); ++i)
      r.clustering.chunk_ids[i] = uint8_t(r.clustering.nearest(r.features.tiles[i]));
    r.routing.num_chunks = kept;
    r.chunk_tiles = chunk_tile_counts(r.routing);
    log_info("chunking: " + std::to_string(new_id.size() - size_t(kept)) +
             " chunk(s) left empty by smoothing were dropped");
  }
  for (int c = 0; c < r.clustering.num_chunks; ++c)
    r.clustering.chunks[size_t(c)].tiles = r.chunk_tiles[size_t(c)];
  return r;
}

}  // namespace dydca
