#include "dydca/metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace dydca {

double plane_mse(const uint8_t* a, const uint8_t* b, size_t count) {
  if (count == 0) return 0.0;
  uint64_t sse = 0;
  for (size_t i = 0; i < count; ++i) {
    int d = int(a[i]) - int(b[i]);
    sse += uint64_t(d * d);
  }
  return double(sse) / double(count);
}

double psnr_from_mse(double mse) {
  if (mse <= 0) return kPsnrCap;
  return std::min(kPsnrCap, 10.0 * std::log10(255.0 * 255.0 / mse));
}

// SSIM on 8x8 windows placed every 4 pixels, built from 4x4 block sums, with
// uniform weights (the x264 / FFmpeg vf_ssim definition, so that our numbers
// can be checked against `ffmpeg -lavfi ssim`).
double plane_ssim(const uint8_t* a, const uint8_t* b, int width, int height) {
  const int bw = width / 4, bh = height / 4;
  if (bw < 2 || bh < 2) {
    // Too small for one window: fall back to a single global window.
    double s1 = 0, s2 = 0, ss = 0, s12 = 0;
    const double n = double(width) * height;
    for (int i = 0; i < width * height; ++i) {
      s1 += a[i]; s2 += b[i]; ss += double(a[i]) * a[i] + double(b[i]) * b[i];
      s12 += double(a[i]) * b[i];
    }
    const double c1 = 6.5025, c2 = 58.5225;
    double m1 = s1 / n, m2 = s2 / n;
    double var = ss / n - m1 * m1 - m2 * m2, cov = s12 / n - m1 * m2;
    return (2 * m1 * m2 + c1) * (2 * cov + c2) / ((m1 * m1 + m2 * m2 + c1) * (var + c2));
  }
  // Sums per 4x4 block: s1, s2, ss (a^2 + b^2), s12.
  std::vector<std::array<int64_t, 4>> blocks(size_t(bw) * bh);
  for (int by = 0; by < bh; ++by)
    for (int bx = 0; bx < bw; ++bx) {
      std::array<int64_t, 4> s{0, 0, 0, 0};
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
          size_t i = size_t(by * 4 + y) * width + bx * 4 + x;
          int va = a[i], vb = b[i];
          s[0] += va; s[1] += vb; s[2] += va * va + vb * vb; s[3] += va * vb;
        }
      blocks[size_t(by) * bw + bx] = s;
    }
  // Constants scaled for sums over 64 pixels, as in vf_ssim.
  const double c1 = .01 * .01 * 255 * 255 * 64;
  const double c2 = .03 * .03 * 255 * 255 * 64 * 63;
  double total = 0;
  for (int by = 0; by + 1 < bh; ++by)
    for (int bx = 0; bx + 1 < bw; ++bx) {
      int64_t s[4] = {0, 0, 0, 0};
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx)
          for (int k = 0; k < 4; ++k) s[k] += blocks[size_t(by + dy) * bw + bx + dx][k];
      double s1 = double(s[0]), s2 = double(s[1]), ss = double(s[2]), s12 = double(s[3]);
      double vars = ss * 64 - s1 * s1 - s2 * s2;
      double covar = s12 * 64 - s1 * s2;
      total += (2 * s1 * s2 + c1) * (2 * covar + c2) / ((s1 * s1 + s2 * s2 + c1) * (vars + c2));
    }
  return total / (double(bw - 1) * (bh - 1));
}

Expected<FrameQuality> compare_frames(const Frame& a, const Frame& b, bool with_ssim) {
  if (a.width != b.width || a.height != b.height)
    return Status::error("compare: frame sizes differ (" + std::to_string(a.width) + "x" +
                         std::to_string(a.height) + " vs " + std::to_string(b.width) + "x" +
                         std::to_string(b.height) + ")");
  FrameQuality q;
  q.mse_y = plane_mse(a.y.data(), b.y.data(), a.y.size());
  q.mse_u = plane_mse(a.u.data(), b.u.data(), a.u.size());
  q.mse_v = plane_mse(a.v.data(), b.v.data(), a.v.size());
  q.psnr_y = psnr_from_mse(q.mse_y);
  q.psnr_u = psnr_from_mse(q.mse_u);
  q.psnr_v = psnr_from_mse(q.mse_v);
  q.psnr_yuv = (6 * q.psnr_y + q.psnr_u + q.psnr_v) / 8;
  if (with_ssim) q.ssim_y = plane_ssim(a.y.data(), b.y.data(), a.width, a.height);
  return q;
}

Status QualityAccumulator::add(const Frame& reference, const Frame& test) {
  DYDCA_ASSIGN_OR_RETURN(auto q, compare_frames(reference, test, with_ssim_));
  frames_.push_back(q);
  return Status::ok();
}

ClipQuality QualityAccumulator::result() const {
  ClipQuality c;
  c.frames = int(frames_.size());
  c.per_frame = frames_;
  if (frames_.empty()) return c;
  double my = 0, mu = 0, mv = 0, py = 0, pyuv = 0, ss = 0;
  for (const auto& f : frames_) {
    my += f.mse_y; mu += f.mse_u; mv += f.mse_v;
    py += f.psnr_y; pyuv += f.psnr_yuv; ss += f.ssim_y;
  }
  const double n = double(frames_.size());
  c.psnr_y = psnr_from_mse(my / n);
  c.psnr_yuv = (6 * c.psnr_y + psnr_from_mse(mu / n) + psnr_from_mse(mv / n)) / 8;
  c.psnr_y_frame_mean = py / n;
  c.psnr_yuv_frame_mean = pyuv / n;
  c.ssim_y = ss / n;
  return c;
}

Expected<ClipQuality> compare_clips(const std::vector<Frame>& reference,
                                    const std::vector<Frame>& test, bool with_ssim) {
  if (reference.size() != test.size())
    return Status::error("compare: clips have " + std::to_string(reference.size()) + " and " +
                         std::to_string(test.size()) + " frames");
  QualityAccumulator acc(with_ssim);
  for (size_t i = 0; i < reference.size(); ++i) DYDCA_TRY(acc.add(reference[i], test[i]));
  return acc.result();
}

// ---- Bjøntegaard ---------------------------------------------------------------

namespace {

// Least-squares cubic y = c0 + c1 u + c2 u^2 + c3 u^3 with u = (x - mean) / scale
// (centred for a well-conditioned normal system); returns the average of the
// fit over [lo, hi] (in x).
struct Cubic {
  double mean = 0, scale = 1;
  std::array<double, 4> c{};
  double antideriv(double x) const {  // in u units
    double u = (x - mean) / scale;
    return c[0] * u + c[1] * u * u / 2 + c[2] * u * u * u / 3 + c[3] * u * u * u * u / 4;
  }
  double average(double lo, double hi) const {
    double ulo = (lo - mean) / scale, uhi = (hi - mean) / scale;
    return (antideriv(hi) - antideriv(lo)) / (uhi - ulo);
  }
};

Expected<Cubic> fit_cubic(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  Cubic f;
  f.mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double var = 0;
  for (double v : x) var += (v - f.mean) * (v - f.mean);
  f.scale = std::sqrt(var / n);
  if (!(f.scale > 1e-12)) return Status::error("BD: the points do not span a range");
  double A[4][5] = {};
  for (size_t i = 0; i < n; ++i) {
    double u = (x[i] - f.mean) / f.scale, p[4] = {1, u, u * u, u * u * u};
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c) A[r][c] += p[r] * p[c];
      A[r][4] += p[r] * y[i];
    }
  }
  for (int col = 0; col < 4; ++col) {  // Gaussian elimination, partial pivoting
    int piv = col;
    for (int r = col + 1; r < 4; ++r)
      if (std::fabs(A[r][col]) > std::fabs(A[piv][col])) piv = r;
    if (std::fabs(A[piv][col]) < 1e-12) return Status::error("BD: degenerate points");
    std::swap(A[piv], A[col]);
    for (int r = 0; r < 4; ++r) {
      if (r == col) continue;
      double k = A[r][col] / A[col][col];
      for (int c = col; c < 5; ++c) A[r][c] -= k * A[col][c];
    }
  }
  for (int r = 0; r < 4; ++r) f.c[r] = A[r][4] / A[r][r];
  return f;
}

Status check_curve(const std::vector<RdPoint>& c, const char* name) {
  if (c.size() < 4)
    return Status::error(std::string("BD: the ") + name + " curve needs at least 4 points");
  for (const auto& p : c)
    if (!(p.kbps > 0) || !std::isfinite(p.psnr))
      return Status::error(std::string("BD: the ") + name + " curve has a bad point");
  return Status::ok();
}

// Average difference of fitted(test) - fitted(anchor), where the fit maps
// `xs` to `ys` (either PSNR -> log rate, or log rate -> PSNR).
Expected<double> bd_average(const std::vector<RdPoint>& anchor, const std::vector<RdPoint>& test,
                            bool rate_over_psnr) {
  DYDCA_TRY(check_curve(anchor, "anchor"));
  DYDCA_TRY(check_curve(test, "test"));
  auto split = [&](const std::vector<RdPoint>& c, std::vector<double>& x, std::vector<double>& y) {
    for (const auto& p : c) {
      double lr = std::log10(p.kbps);
      x.push_back(rate_over_psnr ? p.psnr : lr);
      y.push_back(rate_over_psnr ? lr : p.psnr);
    }
  };
  std::vector<double> xa, ya, xt, yt;
  split(anchor, xa, ya);
  split(test, xt, yt);
  double lo = std::max(*std::min_element(xa.begin(), xa.end()),
                       *std::min_element(xt.begin(), xt.end()));
  double hi = std::min(*std::max_element(xa.begin(), xa.end()),
                       *std::max_element(xt.begin(), xt.end()));
  if (!(hi > lo)) return Status::error("BD: the two curves do not overlap");
  DYDCA_ASSIGN_OR_RETURN(auto fa, fit_cubic(xa, ya));
  DYDCA_ASSIGN_OR_RETURN(auto ft, fit_cubic(xt, yt));
  return ft.average(lo, hi) - fa.average(lo, hi);
}

}  // namespace

Expected<double> bd_rate(const std::vector<RdPoint>& anchor, const std::vector<RdPoint>& test) {
  DYDCA_ASSIGN_OR_RETURN(auto d, bd_average(anchor, test, true));
  return (std::pow(10.0, d) - 1.0) * 100.0;
}

Expected<double> bd_psnr(const std::vector<RdPoint>& anchor, const std::vector<RdPoint>& test) {
  return bd_average(anchor, test, false);
}

}  // namespace dydca
