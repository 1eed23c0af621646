// Per-frame tile -> chunk maps with hysteresis (RoutingSmoother's rule): a tile
// changes chunk only when its features moved clearly towards another chunk.
#include <algorithm>

#include "dydca/chunking.h"

namespace dydca {
namespace {

void count_flips(const std::vector<uint8_t>& ids, int frames, int tiles,
                 const std::vector<char>& segment_start, std::vector<int>& per_frame,
                 int64_t& total) {
  per_frame.assign(size_t(frames), 0);
  total = 0;
  for (int f = 1; f < frames; ++f) {
    if (segment_start[size_t(f)]) continue;
    const uint8_t* cur = ids.data() + size_t(f) * tiles;
    const uint8_t* prev = cur - tiles;
    int flips = 0;
    for (int i = 0; i < tiles; ++i) flips += cur[i] != prev[i];
    per_frame[size_t(f)] = flips;
    total += flips;
  }
}

}  // namespace

Expected<RoutingMap> build_routing(const TileFeatureSet& features, const Clustering& clustering,
                                   const std::vector<Segment>& segments,
                                   const SmoothingParams& params, RoutingStats* stats) {
  const int frames = features.frames, tiles = features.grid.count();
  if (features.tiles.size() != size_t(frames) * tiles ||
      clustering.chunk_ids.size() != features.tiles.size())
    return Status::error("routing: clustering and features do not match");
  if (clustering.num_chunks < 1 || clustering.num_chunks > kMaxChunks)
    return Status::error("routing: bad chunk count");
  if (!(params.margin >= 0)) return Status::error("routing: margin must be >= 0");
  std::vector<char> segment_start(size_t(std::max(frames, 1)), 0);
  if (frames > 0) segment_start[0] = 1;
  for (const auto& s : segments) {
    if (s.start < 0 || s.start >= frames || s.end > frames || s.end <= s.start)
      return Status::error("routing: segment out of range");
    segment_start[size_t(s.start)] = 1;
  }

  RoutingMap map;
  map.tile_size = features.grid.tile_size;
  map.lr_width = features.grid.width;
  map.lr_height = features.grid.height;
  map.frames = frames;
  map.num_chunks = clustering.num_chunks;
  map.chunk_ids = clustering.chunk_ids;
  if (params.enabled && params.margin > 0) {
    for (int f = 1; f < frames; ++f) {
      if (segment_start[size_t(f)]) continue;
      uint8_t* cur = map.chunk_ids.data() + size_t(f) * tiles;
      const uint8_t* prev = cur - tiles;
      const TileFeatures* ft = features.tiles.data() + size_t(f) * tiles;
      for (int i = 0; i < tiles; ++i) {
        if (cur[i] == prev[i]) continue;
        const float stay = clustering.cost(ft[i], prev[i]);
        const float move = clustering.cost(ft[i], cur[i]);
        if (stay - move <= params.margin) cur[i] = prev[i];
      }
    }
  }
  if (stats) {
    stats->frame_pairs = 0;
    for (int f = 1; f < frames; ++f) stats->frame_pairs += !segment_start[size_t(f)];
    count_flips(clustering.chunk_ids, frames, tiles, segment_start, stats->flips_raw_per_frame,
                stats->flips_raw);
    count_flips(map.chunk_ids, frames, tiles, segment_start, stats->flips_smoothed_per_frame,
                stats->flips_smoothed);
  }
  return map;
}

std::vector<int64_t> chunk_tile_counts(const RoutingMap& routing) {
  std::vector<int64_t> counts(size_t(std::max(routing.num_chunks, 0)), 0);
  for (uint8_t id : routing.chunk_ids)
    if (id < counts.size()) ++counts[id];
  return counts;
}

}  // namespace dydca
