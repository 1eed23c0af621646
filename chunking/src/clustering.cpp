// Content chunks: k-means (k-means++ seeding, own RNG, fixed iteration order)
// or the STDO rule (equal-count bins of bicubic PSNR). Chunks are renumbered
// easy -> hard; empty and tiny chunks are merged away.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "dydca/chunking.h"
#include "rng.h"

namespace dydca {
namespace {

using chunking_detail::SplitMix64;

constexpr int kPsnrDim = 0;

float raw_value(const TileFeatures& f, int dim, float psnr_cap) {
  switch (dim) {
    case 0:
      return std::min(f.bicubic_psnr, psnr_cap);
    case 1:
      return std::log1p(f.gradient);
    case 2:
      return std::log1p(f.laplacian);
    default:
      return std::log1p(f.temporal);
  }
}

float squared_distance(const FeatureVector& a, const FeatureVector& b) {
  float d = 0;
  for (int k = 0; k < kFeatureDims; ++k)
    d += (a[size_t(k)] - b[size_t(k)]) * (a[size_t(k)] - b[size_t(k)]);
  return d;
}

int nearest_centroid(const FeatureVector& p, const std::vector<FeatureVector>& centroids,
                     float* best_d = nullptr) {
  int best = 0;
  float bd = std::numeric_limits<float>::infinity();
  for (size_t c = 0; c < centroids.size(); ++c) {
    const float d = squared_distance(p, centroids[c]);
    if (d < bd) {
      bd = d;
      best = int(c);
    }
  }
  if (best_d) *best_d = bd;
  return best;
}

// Recomputes centroids as means (double sums in index order: deterministic).
// Returns the clusters' sizes; an empty cluster keeps its old centroid.
std::vector<int64_t> update_centroids(const std::vector<FeatureVector>& points,
                                      const std::vector<int>& assign,
                                      std::vector<FeatureVector>& centroids) {
  const size_t k = centroids.size();
  std::vector<std::array<double, kFeatureDims>> sums(k, std::array<double, kFeatureDims>{});
  std::vector<int64_t> counts(k, 0);
  for (size_t i = 0; i < points.size(); ++i) {
    auto& s = sums[size_t(assign[i])];
    for (int d = 0; d < kFeatureDims; ++d) s[size_t(d)] += points[i][size_t(d)];
    ++counts[size_t(assign[i])];
  }
  for (size_t c = 0; c < k; ++c)
    if (counts[c] > 0)
      for (int d = 0; d < kFeatureDims; ++d)
        centroids[c][size_t(d)] = float(sums[c][size_t(d)] / double(counts[c]));
  return counts;
}

// k-means++ seeding; stops early when every point coincides with a centre.
std::vector<FeatureVector> seed_plus_plus(const std::vector<FeatureVector>& points, int k,
                                          SplitMix64& rng) {
  std::vector<FeatureVector> centres;
  centres.push_back(points[rng.below(points.size())]);
  std::vector<double> d2(points.size());
  for (size_t i = 0; i < points.size(); ++i) d2[i] = squared_distance(points[i], centres[0]);
  while (int(centres.size()) < k) {
    double total = 0;
    for (double v : d2) total += v;
    if (!(total > 0)) break;  // fewer distinct points than k
    double r = rng.unit() * total;
    size_t pick = points.size() - 1;
    for (size_t i = 0; i < points.size(); ++i) {
      r -= d2[i];
      if (r < 0 && d2[i] > 0) {
        pick = i;
        break;
      }
    }
    while (d2[pick] <= 0 && pick > 0) --pick;  // rounding fell off the end
    centres.push_back(points[pick]);
    for (size_t i = 0; i < points.size(); ++i)
      d2[i] = std::min(d2[i], double(squared_distance(points[i], centres.back())));
  }
  return centres;
}

struct KMeansFit {
  std::vector<FeatureVector> centroids;
  double inertia = std::numeric_limits<double>::infinity();
};

KMeansFit lloyd(const std::vector<FeatureVector>& points, std::vector<FeatureVector> centroids,
                int max_iterations) {
  std::vector<int> assign(points.size(), -1);
  std::vector<float> dist(points.size());
  for (int it = 0; it < max_iterations; ++it) {
    bool changed = false;
    for (size_t i = 0; i < points.size(); ++i) {
      const int c = nearest_centroid(points[i], centroids, &dist[i]);
      if (c != assign[i]) {
        assign[i] = c;
        changed = true;
      }
    }
    if (!changed) break;
    auto counts = update_centroids(points, assign, centroids);
    // An empty cluster takes the point farthest from its centroid (lowest index on ties).
    for (size_t c = 0; c < centroids.size(); ++c) {
      if (counts[c] > 0) continue;
      size_t far = 0;
      for (size_t i = 1; i < points.size(); ++i)
        if (dist[i] > dist[far]) far = i;
      centroids[c] = points[far];
      dist[far] = 0;
    }
  }
  KMeansFit fit;
  fit.inertia = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    float d;
    nearest_centroid(points[i], centroids, &d);
    fit.inertia += d;
  }
  fit.centroids = std::move(centroids);
  return fit;
}

}  // namespace

FeatureVector FeatureSpace::embed(const TileFeatures& f) const {
  FeatureVector v;
  for (int d = 0; d < kFeatureDims; ++d)
    v[size_t(d)] =
        (raw_value(f, d, psnr_cap_db) - mean[size_t(d)]) * inv_std[size_t(d)] * weight[size_t(d)];
  return v;
}

float Clustering::cost(const TileFeatures& f, int chunk) const {
  const ChunkInfo& c = chunks[size_t(chunk)];
  if (method == ClusterMethod::kPsnrQuantiles) {
    const float p = std::min(f.bicubic_psnr, space.psnr_cap_db);
    const float outside = std::max({0.0f, c.psnr_low - p, p - c.psnr_high});
    return outside * space.inv_std[kPsnrDim] * space.weight[kPsnrDim];
  }
  return std::sqrt(squared_distance(space.embed(f), c.centroid));
}

int Clustering::nearest(const TileFeatures& f) const {
  int best = 0;
  float bc = std::numeric_limits<float>::infinity();
  for (int c = 0; c < num_chunks; ++c) {
    const float v = cost(f, c);
    if (v < bc) {
      bc = v;
      best = c;
    }
  }
  return best;
}

Expected<Clustering> cluster_tiles(const TileFeatureSet& features, const ClusterParams& params) {
  if (params.chunks < 1 || params.chunks > kMaxChunks)
    return Status::error("clustering: chunks must be in 1.." + std::to_string(kMaxChunks));
  if (params.max_iterations < 1 || params.restarts < 1)
    return Status::error("clustering: max_iterations and restarts must be >= 1");
  if (!(params.min_chunk_fraction >= 0 && params.min_chunk_fraction < 0.5))
    return Status::error("clustering: min_chunk_fraction must be in [0, 0.5)");
  const size_t n = features.tiles.size();
  if (n == 0) return Status::error("clustering: no tiles");

  Clustering out;
  out.method = params.method;
  FeatureSpace& space = out.space;
  space.psnr_cap_db = params.psnr_cap_db;
  space.weight = {params.weights.bicubic_psnr, params.weights.gradient, params.weights.laplacian,
                  params.weights.temporal};
  for (int d = 0; d < kFeatureDims; ++d) {
    double sum = 0, sq = 0;
    for (const auto& f : features.tiles) {
      const double v = raw_value(f, d, space.psnr_cap_db);
      sum += v;
      sq += v * v;
    }
    const double mean = sum / double(n);
    const double var = std::max(0.0, sq / double(n) - mean * mean);
    space.mean[size_t(d)] = float(mean);
    // A constant feature contributes nothing rather than dividing by ~0.
    space.inv_std[size_t(d)] = var > 1e-12 ? float(1.0 / std::sqrt(var)) : 0.0f;
  }
  std::vector<FeatureVector> points(n);
  for (size_t i = 0; i < n; ++i) points[i] = space.embed(features.tiles[i]);

  // Raw assignment per tile, then chunk descriptions.
  std::vector<int> assign(n, 0);
  int k = 0;
  std::vector<FeatureVector> centroids;
  std::vector<std::pair<float, float>> bins;  // quantiles: PSNR [low, high) per chunk
  if (params.method == ClusterMethod::kKMeans) {
    std::vector<FeatureVector> fit_points;
    if (int64_t(n) > params.max_fit_tiles && params.max_fit_tiles > 0) {
      const size_t m = size_t(params.max_fit_tiles);
      fit_points.reserve(m);
      for (size_t j = 0; j < m; ++j) fit_points.push_back(points[j * n / m]);
    } else {
      fit_points = points;
    }
    KMeansFit best;
    for (int r = 0; r < params.restarts; ++r) {
      SplitMix64 rng(params.seed * 0x9e3779b97f4a7c15ull + uint64_t(r));
      auto init = seed_plus_plus(fit_points, params.chunks, rng);
      KMeansFit fit = lloyd(fit_points, std::move(init), params.max_iterations);
      if (fit.inertia < best.inertia) best = std::move(fit);
    }
    centroids = std::move(best.centroids);
    // Merge empty/tiny clusters into their nearest neighbour, one at a time.
    const int64_t min_tiles =
        std::max<int64_t>(1, int64_t(std::ceil(params.min_chunk_fraction * double(n))));
    while (true) {
      for (size_t i = 0; i < n; ++i) assign[i] = nearest_centroid(points[i], centroids);
      std::vector<int64_t> counts(centroids.size(), 0);
      for (int a : assign) ++counts[size_t(a)];
      size_t smallest = 0;
      for (size_t c = 1; c < counts.size(); ++c)
        if (counts[c] < counts[smallest]) smallest = c;
      if (counts[smallest] >= min_tiles || centroids.size() <= 1) break;
      centroids.erase(centroids.begin() + long(smallest));
      for (size_t i = 0; i < n; ++i) assign[i] = nearest_centroid(points[i], centroids);
      update_centroids(points, assign, centroids);
    }
    k = int(centroids.size());
  } else {
    std::vector<float> psnr(n);
    for (size_t i = 0; i < n; ++i)
      psnr[i] = std::min(features.tiles[i].bicubic_psnr, space.psnr_cap_db);
    std::vector<float> sorted = psnr;
    std::sort(sorted.begin(), sorted.end());
    // Ascending thresholds; bins [T_b, T_b+1), collapsed (tied) bins dropped.
    std::vector<float> edges{-std::numeric_limits<float>::infinity()};
    for (int b = 1; b < params.chunks; ++b) {
      const float t = sorted[size_t(int64_t(b) * int64_t(n) / params.chunks)];
      if (t > edges.back()) edges.push_back(t);
    }
    edges.push_back(std::numeric_limits<float>::infinity());
    const int nb = int(edges.size()) - 1;
    // Chunk id = reversed bin (high PSNR = easy = low id).
    for (int c = 0; c < nb; ++c) bins.push_back({edges[size_t(nb - 1 - c)], edges[size_t(nb - c)]});
    k = nb;
    for (size_t i = 0; i < n; ++i) {
      const int b =
          int(std::upper_bound(edges.begin() + 1, edges.end() - 1, psnr[i]) - (edges.begin() + 1));
      assign[i] = nb - 1 - b;
    }
    // Tiny bins: merge into the neighbour bin (towards the middle), repeatedly.
    const int64_t min_tiles =
        std::max<int64_t>(1, int64_t(std::ceil(params.min_chunk_fraction * double(n))));
    while (k > 1) {
      std::vector<int64_t> counts(size_t(k), 0);
      for (int a : assign) ++counts[size_t(a)];
      int smallest = 0;
      for (int c = 1; c < k; ++c)
        if (counts[size_t(c)] < counts[size_t(smallest)]) smallest = c;
      if (counts[size_t(smallest)] >= min_tiles) break;
      const int into = smallest == 0 ? 1 : smallest - 1;
      const int lo = std::min(smallest, into), hi = std::max(smallest, into);
      bins[size_t(lo)] = {bins[size_t(hi)].first, bins[size_t(lo)].second};
      bins.erase(bins.begin() + hi);
      for (int& a : assign)
        if (a >= hi) --a;
      --k;
    }
    centroids.assign(size_t(k), FeatureVector{});
    update_centroids(points, assign, centroids);
  }

  // Describe and order chunks easy -> hard by mean clamped bicubic PSNR.
  std::vector<ChunkInfo> info(static_cast<size_t>(k));
  for (int c = 0; c < k; ++c) {
    info[size_t(c)].psnr_low = std::numeric_limits<float>::infinity();
    info[size_t(c)].psnr_high = -std::numeric_limits<float>::infinity();
  }
  for (size_t i = 0; i < n; ++i) {
    ChunkInfo& ci = info[size_t(assign[i])];
    const TileFeatures& f = features.tiles[i];
    const float p = std::min(f.bicubic_psnr, space.psnr_cap_db);
    ++ci.tiles;
    ci.mean_bicubic_psnr += p;
    ci.mean_gradient += f.gradient;
    ci.mean_temporal += f.temporal;
    ci.psnr_low = std::min(ci.psnr_low, p);
    ci.psnr_high = std::max(ci.psnr_high, p);
  }
  for (int c = 0; c < k; ++c) {
    ChunkInfo& ci = info[size_t(c)];
    ci.centroid = centroids[size_t(c)];
    if (ci.tiles > 0) {
      ci.mean_bicubic_psnr /= double(ci.tiles);
      ci.mean_gradient /= double(ci.tiles);
      ci.mean_temporal /= double(ci.tiles);
    }
    if (!bins.empty()) {
      ci.psnr_low = bins[size_t(c)].first;
      ci.psnr_high = bins[size_t(c)].second;
    }
  }
  std::vector<int> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return info[size_t(a)].mean_bicubic_psnr > info[size_t(b)].mean_bicubic_psnr;
  });
  std::vector<int> rank(static_cast<size_t>(k));
  for (int r = 0; r < k; ++r) rank[size_t(order[size_t(r)])] = r;

  out.num_chunks = k;
  out.chunks.resize(size_t(k));
  for (int c = 0; c < k; ++c) out.chunks[size_t(rank[size_t(c)])] = info[size_t(c)];
  out.chunk_ids.resize(n);
  // Raw ids are the nearest chunk by cost(), so that smoothing with margin 0
  // reproduces them exactly.
  for (size_t i = 0; i < n; ++i) out.chunk_ids[i] = uint8_t(out.nearest(features.tiles[i]));
  // Sizes from the final ids (ties may move a handful of tiles).
  for (auto& ci : out.chunks) ci.tiles = 0;
  for (uint8_t id : out.chunk_ids) ++out.chunks[id].tiles;
  return out;
}

}  // namespace dydca
