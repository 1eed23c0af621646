// Per-tile features on the LR grid: bicubic PSNR against HR, Sobel gradient and
// Laplacian energy, temporal change. Integer accumulation where possible so the
// numbers are exact and machine-independent.
#include <cmath>
#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "dydca/chunking.h"
#include "dydca/metrics.h"

namespace dydca {
namespace {

cv::Mat luma_view(const Frame& f) {
  return cv::Mat(f.height, f.width, CV_8UC1, const_cast<uint8_t*>(f.y.data()));
}

// Adds |a - b| of every pixel into its tile's sum.
void accumulate_abs_diff(const Frame& a, const Frame& b, const TileGrid& grid,
                         std::vector<int64_t>& sums) {
  const int tx_count = grid.tiles_x(), t = grid.tile_size;
  for (int y = 0; y < a.height; ++y) {
    const uint8_t* pa = a.y.data() + size_t(y) * a.width;
    const uint8_t* pb = b.y.data() + size_t(y) * b.width;
    int64_t* row_sums = sums.data() + size_t(y / t) * tx_count;
    for (int tx = 0; tx < tx_count; ++tx) {
      const int x0 = tx * t, x1 = std::min(a.width, x0 + t);
      int s = 0;
      for (int x = x0; x < x1; ++x) s += std::abs(int(pa[x]) - int(pb[x]));
      row_sums[tx] += s;
    }
  }
}

}  // namespace

Expected<TileFeatureSet> compute_tile_features(const std::vector<Frame>& hr,
                                               const std::vector<Frame>& lr,
                                               const std::vector<Segment>& segments,
                                               const FeatureParams& params,
                                               const ProgressFn& progress) {
  if (params.tile_size < 4 || params.tile_size > 1024)
    return Status::error("tile features: tile_size must be in 4..1024");
  if (params.scale < 1 || params.scale > 8) return Status::error("tile features: bad scale");
  if (hr.size() != lr.size())
    return Status::error("tile features: " + std::to_string(hr.size()) + " HR frames but " +
                         std::to_string(lr.size()) + " LR frames");
  if (lr.empty()) return Status::error("tile features: no frames");
  const int w = lr[0].width, h = lr[0].height, s = params.scale;
  for (size_t i = 0; i < lr.size(); ++i) {
    if (lr[i].width != w || lr[i].height != h || lr[i].empty())
      return Status::error("tile features: LR frame " + std::to_string(i) + " differs in size");
    if (hr[i].width != w * s || hr[i].height != h * s)
      return Status::error("tile features: HR frame " + std::to_string(i) + " is " +
                           std::to_string(hr[i].width) + "x" + std::to_string(hr[i].height) +
                           ", expected LR " + std::to_string(w) + "x" + std::to_string(h) +
                           " times " + std::to_string(s));
  }
  const int n = int(lr.size());
  // Frame -> segment end, to look forward on a segment's first frame.
  std::vector<int> segment_start(size_t(n), 0), segment_end(size_t(n), n);
  for (const auto& seg : segments) {
    if (seg.start < 0 || seg.end > n || seg.start >= seg.end)
      return Status::error("tile features: segment out of range");
    for (int f = seg.start; f < seg.end; ++f) {
      segment_start[size_t(f)] = seg.start;
      segment_end[size_t(f)] = seg.end;
    }
  }

  TileFeatureSet out;
  out.grid = TileGrid{params.tile_size, w, h};
  out.scale = s;
  out.frames = n;
  const int tiles = out.grid.count(), tx_count = out.grid.tiles_x(), t = params.tile_size;
  out.tiles.resize(size_t(n) * tiles);

  // Buffers reused across frames.
  cv::Mat up, gx, gy, lap;
  std::vector<int64_t> sse(static_cast<size_t>(tiles)), grad(static_cast<size_t>(tiles)),
      lapl(static_cast<size_t>(tiles)), temporal(static_cast<size_t>(tiles));
  std::vector<int> area(static_cast<size_t>(tiles));
  for (int i = 0; i < tiles; ++i) {
    TileRect r = out.grid.rect(i);
    area[size_t(i)] = r.width * r.height;
  }

  for (int f = 0; f < n; ++f) {
    const Frame& lf = lr[size_t(f)];
    const Frame& hf = hr[size_t(f)];
    cv::Mat lm = luma_view(lf);
    cv::resize(lm, up, cv::Size(w * s, h * s), 0, 0, cv::INTER_CUBIC);
    cv::Sobel(lm, gx, CV_16S, 1, 0, 3);
    cv::Sobel(lm, gy, CV_16S, 0, 1, 3);
    cv::Laplacian(lm, lap, CV_16S, 1);
    std::fill(sse.begin(), sse.end(), 0);
    std::fill(grad.begin(), grad.end(), 0);
    std::fill(lapl.begin(), lapl.end(), 0);
    std::fill(temporal.begin(), temporal.end(), 0);

    // Bicubic error on the HR grid: HR tile = LR tile * s.
    const int ht = t * s;
    for (int y = 0; y < h * s; ++y) {
      const uint8_t* pu = up.ptr<uint8_t>(y);
      const uint8_t* ph = hf.y.data() + size_t(y) * hf.width;
      int64_t* row = sse.data() + size_t(y / ht) * tx_count;
      for (int tx = 0; tx < tx_count; ++tx) {
        const int x0 = tx * ht, x1 = std::min(w * s, x0 + ht);
        int64_t acc = 0;
        for (int x = x0; x < x1; ++x) {
          const int d = int(pu[x]) - int(ph[x]);
          acc += d * d;
        }
        row[tx] += acc;
      }
    }
    for (int y = 0; y < h; ++y) {
      const int16_t* px = gx.ptr<int16_t>(y);
      const int16_t* py = gy.ptr<int16_t>(y);
      const int16_t* pl = lap.ptr<int16_t>(y);
      int64_t* grow = grad.data() + size_t(y / t) * tx_count;
      int64_t* lrow = lapl.data() + size_t(y / t) * tx_count;
      for (int tx = 0; tx < tx_count; ++tx) {
        const int x0 = tx * t, x1 = std::min(w, x0 + t);
        int64_t g = 0, l = 0;
        for (int x = x0; x < x1; ++x) {
          g += std::abs(int(px[x])) + std::abs(int(py[x]));
          l += std::abs(int(pl[x]));
        }
        grow[tx] += g;
        lrow[tx] += l;
      }
    }
    // Temporal change: against the previous frame of the same segment, or the
    // next one on a segment's first frame.
    int other = -1;
    if (f > segment_start[size_t(f)]) {
      other = f - 1;
    } else if (f + 1 < segment_end[size_t(f)]) {
      other = f + 1;
    }
    if (other >= 0) accumulate_abs_diff(lf, lr[size_t(other)], out.grid, temporal);

    TileFeatures* ft = out.tiles.data() + size_t(f) * tiles;
    for (int i = 0; i < tiles; ++i) {
      const double a = area[size_t(i)];
      const double mse = double(sse[size_t(i)]) / (a * s * s);
      ft[i].bicubic_psnr = float(psnr_from_mse(mse));
      ft[i].gradient = float(double(grad[size_t(i)]) / (8.0 * a));
      ft[i].laplacian = float(double(lapl[size_t(i)]) / a);
      ft[i].temporal = float(double(temporal[size_t(i)]) / a);
    }
    if (progress && !progress({"tile features", f + 1, n}))
      return Status::error("tile features: cancelled");
  }
  return out;
}

}  // namespace dydca
