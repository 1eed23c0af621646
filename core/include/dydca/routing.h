// Content routing as data: which chunk every LR tile of every frame belongs
// to, and which path of the model each chunk runs at each QoS level.
// Produced by chunking/ (server), carried in the routing blob, used by the
// client runtime. No libav, no OpenCV.
#pragma once

#include <cstdint>
#include <vector>

namespace dydca {

struct RoutingMap {
  int tile_size = 32;   // LR pixels; edge tiles are cut short by the frame
  int lr_width = 0;
  int lr_height = 0;
  int frames = 0;
  int num_chunks = 0;   // K, chunk ids are 0..K-1
  // chunk_path[level][chunk] = path index into ModelArch::paths.
  // Level 0 is the trained assignment; higher levels are cheaper.
  std::vector<std::vector<uint8_t>> chunk_path;
  // Chunk id per tile, frame-major then raster order:
  // chunk_ids[(f * tiles_y() + ty) * tiles_x() + tx]
  std::vector<uint8_t> chunk_ids;

  int tiles_x() const { return tile_size > 0 ? (lr_width + tile_size - 1) / tile_size : 0; }
  int tiles_y() const { return tile_size > 0 ? (lr_height + tile_size - 1) / tile_size : 0; }
  int tiles_per_frame() const { return tiles_x() * tiles_y(); }
  int levels() const { return int(chunk_path.size()); }
  uint8_t chunk(int frame, int tx, int ty) const {
    return chunk_ids[(size_t(frame) * tiles_y() + ty) * tiles_x() + tx];
  }
};

// The level rule of a model without routing (one QoS level per path, no
// chunk tables): level l runs the l-th richest path, so level 0 is the
// richest and the last level the cheapest (path 0). Levels out of range
// clamp to the nearest end.
inline int static_level_path(int num_paths, int level) {
  const int p = num_paths - 1 - level;
  return p < 0 ? 0 : (p > num_paths - 1 ? num_paths - 1 : p);
}

}  // namespace dydca
