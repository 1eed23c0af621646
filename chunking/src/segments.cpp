// Scene cuts on the LR luma: histogram distance, plus a jump in the mean
// absolute difference for cuts between scenes with similar histograms.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "dydca/chunking.h"

namespace dydca {
namespace {

constexpr int kBins = 64;
using Histogram = std::array<uint32_t, kBins>;

void luma_histogram(const Frame& f, Histogram& h) {
  h.fill(0);
  for (uint8_t v : f.y) ++h[v >> 2];
}

double histogram_distance(const Histogram& a, const Histogram& b, double pixels) {
  int64_t sum = 0;
  for (int i = 0; i < kBins; ++i) sum += std::abs(int64_t(a[i]) - int64_t(b[i]));
  return 0.5 * double(sum) / pixels;
}

double mean_abs_difference(const Frame& a, const Frame& b) {
  int64_t sum = 0;
  const size_t n = a.y.size();
  for (size_t i = 0; i < n; ++i) sum += std::abs(int(a.y[i]) - int(b.y[i]));
  return double(sum) / double(n);
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

Expected<std::vector<Segment>> detect_segments(const std::vector<Frame>& frames,
                                               const SceneCutParams& params,
                                               std::vector<double>* scores) {
  if (params.max_length < 1) return Status::error("scene cuts: max_length must be >= 1");
  if (params.min_length < 1) return Status::error("scene cuts: min_length must be >= 1");
  if (!(params.histogram_threshold > 0))
    return Status::error("scene cuts: histogram_threshold must be > 0");
  const int n = int(frames.size());
  if (scores) scores->assign(size_t(n), 0.0);
  std::vector<Segment> out;
  if (n == 0) return out;
  for (const auto& f : frames)
    if (f.width != frames[0].width || f.height != frames[0].height || f.empty())
      return Status::error("scene cuts: frames differ in size or are empty");

  // Cuts first, then the max_length split.
  std::vector<int> cuts{0};
  Histogram prev_hist, hist;
  luma_histogram(frames[0], prev_hist);
  const double pixels = double(frames[0].y.size());
  constexpr size_t kHistory = 5;  // differences since the last cut used for the median
  std::vector<double> recent;
  for (int i = 1; i < n; ++i) {
    luma_histogram(frames[size_t(i)], hist);
    const double h = histogram_distance(hist, prev_hist, pixels);
    if (scores) (*scores)[size_t(i)] = h;
    bool cut = h > params.histogram_threshold;
    double d = 0;
    if (params.difference_threshold > 0) {
      d = mean_abs_difference(frames[size_t(i)], frames[size_t(i - 1)]);
      if (!cut && d > params.difference_threshold && recent.size() >= 2)
        cut = d > params.relative_jump * median_of(recent);
    }
    if (cut && i - cuts.back() >= params.min_length) {
      cuts.push_back(i);
      recent.clear();
    } else {
      recent.push_back(d);
      if (recent.size() > kHistory) recent.erase(recent.begin());
    }
    prev_hist = hist;
  }
  cuts.push_back(n);

  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    const int start = cuts[c], len = cuts[c + 1] - start;
    const int pieces = (len + params.max_length - 1) / params.max_length;
    for (int p = 0; p < pieces; ++p)
      out.push_back({start + int(int64_t(len) * p / pieces), start + int(int64_t(len) * (p + 1) / pieces)});
  }
  return out;
}

TileRect TileGrid::rect(int index) const {
  const int tx = index % tiles_x(), ty = index / tiles_x();
  TileRect r;
  r.x = tx * tile_size;
  r.y = ty * tile_size;
  r.width = std::min(tile_size, width - r.x);
  r.height = std::min(tile_size, height - r.y);
  return r;
}

}  // namespace dydca
