// Chunk -> path tables: the level-0 assignment, the QoS levels, and the
// post-training refinement with measured PSNR.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "dydca/chunking.h"
#include "dydca/metrics.h"

namespace dydca {
namespace {

Status check_arch(const ModelArch& arch) {
  if (arch.paths.empty()) return Status::error("path tables: the model has no paths");
  if (arch.paths.size() > 255) return Status::error("path tables: more than 255 paths");
  for (size_t p = 1; p < arch.paths.size(); ++p)
    if (arch.macs_per_lr_pixel(int(p)) < arch.macs_per_lr_pixel(int(p - 1)))
      return Status::error("path tables: paths must be ordered cheap -> rich (path " +
                           std::to_string(p) + " costs fewer MACs than path " +
                           std::to_string(p - 1) + ")");
  return {};
}

}  // namespace

Expected<std::vector<uint8_t>> assign_paths(int num_chunks, const ModelArch& arch) {
  DYDCA_TRY(check_arch(arch));
  if (num_chunks < 1 || num_chunks > kMaxChunks)
    return Status::error("path tables: num_chunks must be in 1.." + std::to_string(kMaxChunks));
  const int top = int(arch.paths.size()) - 1;
  std::vector<uint8_t> table(static_cast<size_t>(num_chunks));
  for (int c = 0; c < num_chunks; ++c) {
    // Integer rounding of c * top / (K - 1), half up: exact and monotone in c.
    const int p = num_chunks == 1 ? top : (2 * c * top + (num_chunks - 1)) / (2 * (num_chunks - 1));
    table[size_t(c)] = uint8_t(p);
  }
  return table;
}

Expected<std::vector<std::vector<uint8_t>>> qos_level_tables(const std::vector<uint8_t>& level0,
                                                             const ModelArch& arch, int levels) {
  DYDCA_TRY(check_arch(arch));
  if (level0.empty()) return Status::error("path tables: empty level-0 table");
  int maxp = 0;
  for (uint8_t p : level0) {
    if (p >= arch.paths.size())
      return Status::error("path tables: path " + std::to_string(p) + " does not exist");
    maxp = std::max(maxp, int(p));
  }
  if (levels < 0 || levels > 255) return Status::error("path tables: levels must be in 0..255");
  const int count = levels == 0 ? maxp + 1 : levels;
  std::vector<std::vector<uint8_t>> tables;
  for (int l = 0; l < count; ++l) {
    // Steps down for level l: round(l * maxp / (count - 1)); the last level reaches maxp.
    const int step = count == 1 ? 0 : (2 * l * maxp + (count - 1)) / (2 * (count - 1));
    std::vector<uint8_t> t(level0.size());
    for (size_t c = 0; c < level0.size(); ++c) t[c] = uint8_t(std::max(0, int(level0[c]) - step));
    tables.push_back(std::move(t));
  }
  return tables;
}

Expected<std::vector<uint8_t>> refine_paths(const std::vector<std::vector<double>>& psnr_db,
                                            const ModelArch& arch, double tolerance_db) {
  DYDCA_TRY(check_arch(arch));
  if (!(tolerance_db >= 0)) return Status::error("refine paths: tolerance must be >= 0 dB");
  if (psnr_db.empty()) return Status::error("refine paths: no chunks");
  std::vector<uint8_t> table(psnr_db.size());
  for (size_t c = 0; c < psnr_db.size(); ++c) {
    const auto& row = psnr_db[c];
    if (row.size() != arch.paths.size())
      return Status::error("refine paths: chunk " + std::to_string(c) + " has " +
                           std::to_string(row.size()) + " measurements for " +
                           std::to_string(arch.paths.size()) + " paths");
    double best = -INFINITY;
    for (double v : row)
      if (!std::isnan(v)) best = std::max(best, v);
    if (best == -INFINITY)
      return Status::error("refine paths: chunk " + std::to_string(c) + " has no measurement");
    // Paths are ordered by MACs, so the first one within tolerance is the cheapest.
    for (size_t p = 0; p < row.size(); ++p) {
      if (!std::isnan(row[p]) && row[p] >= best - tolerance_db) {
        table[c] = uint8_t(p);
        break;
      }
    }
  }
  return table;
}

Status fill_path_tables(RoutingMap& routing, const ModelArch& arch, int levels) {
  DYDCA_ASSIGN_OR_RETURN(auto level0, assign_paths(routing.num_chunks, arch));
  DYDCA_ASSIGN_OR_RETURN(auto tables, qos_level_tables(level0, arch, levels));
  routing.chunk_path = std::move(tables);
  return {};
}

ChunkPathError::ChunkPathError(const RoutingMap& routing, int scale, int num_paths)
    : routing_(routing),
      scale_(scale),
      sse_(size_t(routing.num_chunks), std::vector<double>(size_t(num_paths), 0.0)),
      count_(size_t(routing.num_chunks), std::vector<double>(size_t(num_paths), 0.0)) {}

template <typename T>
void ChunkPathError::add_impl(int frame, int path, const Frame& hr, const T* out) {
  const int ts = routing_.tile_size * scale_;
  for (int ty = 0; ty < routing_.tiles_y(); ++ty)
    for (int tx = 0; tx < routing_.tiles_x(); ++tx) {
      const int c = routing_.chunk(frame, tx, ty);
      const int x0 = tx * ts, y0 = ty * ts;
      const int x1 = std::min(hr.width, x0 + ts), y1 = std::min(hr.height, y0 + ts);
      double e = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
          const size_t i = size_t(y) * size_t(hr.width) + size_t(x);
          double v = double(out[i]);
          if constexpr (!std::is_same_v<T, uint8_t>) v = std::clamp(std::nearbyint(v), 0.0, 255.0);
          const double d = v - double(hr.y[i]);
          e += d * d;
        }
      sse_[size_t(c)][size_t(path)] += e;
      count_[size_t(c)][size_t(path)] += double(std::max(0, x1 - x0)) * std::max(0, y1 - y0);
    }
}

void ChunkPathError::add(int frame, int path, const Frame& hr, const uint8_t* out) {
  add_impl(frame, path, hr, out);
}
void ChunkPathError::add(int frame, int path, const Frame& hr, const float* out) {
  add_impl(frame, path, hr, out);
}

std::vector<std::vector<double>> ChunkPathError::psnr() const {
  std::vector<std::vector<double>> p(sse_.size());
  for (size_t c = 0; c < sse_.size(); ++c)
    for (size_t k = 0; k < sse_[c].size(); ++k)
      p[c].push_back(count_[c][k] > 0 ? psnr_from_mse(sse_[c][k] / count_[c][k]) : std::nan(""));
  return p;
}

}  // namespace dydca
