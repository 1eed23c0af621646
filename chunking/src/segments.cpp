// Scene cuts on the LR luma: histogram distance, plus a jump in the mean
// absolute difference for cuts between scenes with similar histograms.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "dydca/chunking.h"

namespace dydca {
namespace {

constexpr int kBins = 32;
constexpr int kBinOne = 256;  // a pixel's weight, split between two neighbouring bins
using Histogram = std::array<int64_t, kBins>;

// Adds `count` pixels at fractional bin position pos, split linearly between
// the two nearest bins (hard bins make two-level pictures jump a whole bin on
// a tiny shift). Exact integer weights: the same on every machine.
void add_soft(Histogram& h, double pos, int64_t count) {
  pos = std::clamp(pos, 0.0, kBins - 1.0);
  const int lo = std::min(int(pos), kBins - 2);
  const int frac = int(std::lround((pos - lo) * kBinOne));
  h[size_t(lo)] += count * (kBinOne - frac);
  h[size_t(lo + 1)] += count * frac;
}

// Two soft luma histograms of a frame: of Y itself, and of (Y - mean) / std over
// +-4 standard deviations. A fade or a global brightness/contrast change
// (Y' = a Y + b) moves the first but not the second; motion that uncovers a
// few different pixels moves the second (through std) but little the first; a
// cut moves both.
void luma_histograms(const Frame& f, Histogram& raw, Histogram& normalized) {
  raw.fill(0);
  normalized.fill(0);
  std::array<int64_t, 256> count{};
  for (uint8_t v : f.y) ++count[v];
  const int64_t n = int64_t(f.y.size());
  int64_t sum = 0, sq = 0;
  for (int v = 0; v < 256; ++v) {
    sum += count[size_t(v)] * v;
    sq += count[size_t(v)] * v * v;
  }
  const double spread = std::sqrt(double(n * sq - sum * sum));  // n * std
  const bool flat = spread < double(n);                         // std < 1
  for (int v = 0; v < 256; ++v) {
    if (!count[size_t(v)]) continue;
    add_soft(raw, (v + 0.5) * kBins / 256.0 - 0.5, count[size_t(v)]);
    const double z = flat ? 0.0 : double(n * v - sum) / spread;
    add_soft(normalized, kBins / 2 - 0.5 + z * (kBins / 8), count[size_t(v)]);
  }
}

double histogram_distance(const Histogram& a, const Histogram& b, double pixels) {
  int64_t sum = 0;
  for (int i = 0; i < kBins; ++i) sum += std::abs(a[size_t(i)] - b[size_t(i)]);
  return 0.5 * double(sum) / (pixels * kBinOne);
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
  if (scores) scores->clear();
  std::vector<Segment> out;
  if (n == 0) return out;
  for (const auto& f : frames)
    if (f.width != frames[0].width || f.height != frames[0].height || f.empty())
      return Status::error("scene cuts: frames differ in size or are empty");

  // Scores of every frame against the previous one, then the cuts, then the
  // max_length split.
  std::vector<double> hist_distance(size_t(n), 0.0), difference(size_t(n), 0.0);
  Histogram prev_raw, prev_norm, raw, norm;
  luma_histograms(frames[0], prev_raw, prev_norm);
  const double pixels = double(frames[0].y.size());
  for (int i = 1; i < n; ++i) {
    luma_histograms(frames[size_t(i)], raw, norm);
    hist_distance[size_t(i)] = std::min(histogram_distance(raw, prev_raw, pixels),
                                        histogram_distance(norm, prev_norm, pixels));
    difference[size_t(i)] = mean_abs_difference(frames[size_t(i)], frames[size_t(i - 1)]);
    prev_raw = raw;
    prev_norm = norm;
  }
  if (scores) *scores = hist_distance;

  constexpr int kWindow = 5;  // differences on each side that make the local baseline
  std::vector<int> cuts{0};
  std::vector<double> around;
  for (int i = 1; i < n; ++i) {
    const double h = hist_distance[size_t(i)], d = difference[size_t(i)];
    // The histogram rule needs real pixel change too: on low-contrast pictures
    // (the start of a fade from black) the normalized histogram is noisy.
    bool cut = h > params.histogram_threshold && d >= params.min_difference;
    if (!cut && params.difference_threshold > 0 && d > params.difference_threshold) {
      // A cut is a spike: large against the differences around it (both sides,
      // so a burst of fast motion is not a cut).
      around.clear();
      for (int j = std::max(1, i - kWindow); j <= std::min(n - 1, i + kWindow); ++j)
        if (j != i) around.push_back(difference[size_t(j)]);
      cut = around.size() >= 2 && d > params.relative_jump * median_of(around);
    }
    if (cut && i - cuts.back() >= params.min_length) cuts.push_back(i);
  }
  cuts.push_back(n);

  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    const int start = cuts[c], len = cuts[c + 1] - start;
    const int pieces = (len + params.max_length - 1) / params.max_length;
    for (int p = 0; p < pieces; ++p)
      out.push_back(
          {start + int(int64_t(len) * p / pieces), start + int(int64_t(len) * (p + 1) / pieces)});
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
