// The analysis behind `dydca bench` (bench/rd_bench.h) on hand-made points:
// the x264 hull, interpolation at a rate, the rates picked from a probe, the
// BD numbers' guards and the crop choice. The end-to-end run is
// tests/test_bench_quick.sh.
#include <doctest/doctest.h>

#include <cmath>

#include "rd_bench.h"

using namespace dydca;
using namespace dydca::bench;

namespace {
RdSample pt(int rate, double kbps, double db, int scale = 1) {
  RdSample s;
  s.rate = rate;
  s.total_kbps = kbps;
  s.psnr_y = db;
  s.scale = scale;
  return s;
}
}  // namespace

TEST_CASE("x264 hull: the best scale at each rate, sorted by measured rate") {
  // x2 wins at the two low rates, x1 at the high ones; x4 never.
  std::vector<RdSample> all{pt(100, 104, 31.0, 1), pt(200, 198, 34.0, 1), pt(400, 395, 37.5, 1),
                            pt(800, 790, 40.5, 1), pt(100, 97, 32.0, 2),  pt(200, 205, 34.5, 2),
                            pt(400, 410, 36.0, 2), pt(800, 820, 37.0, 2), pt(100, 90, 20.0, 4),
                            pt(200, 180, 20.5, 4), pt(400, 380, 21.0, 4), pt(800, 760, 21.2, 4)};
  auto h = upper_hull(all);
  REQUIRE(h.size() == 4);
  CHECK(h[0].scale == 2);
  CHECK(h[0].total_kbps == 97);
  CHECK(h[1].scale == 2);
  CHECK(h[2].scale == 1);
  CHECK(h[3].scale == 1);
  for (size_t i = 1; i < h.size(); ++i) CHECK(h[i].total_kbps > h[i - 1].total_kbps);
  // Never below the full-size curve at its own rates.
  CHECK(h[2].psnr_y == 37.5);

  // A dominated point (more rate, less PSNR) is dropped while 4 are left.
  std::vector<RdSample> five{pt(1, 10, 30), pt(2, 20, 33), pt(3, 25, 32.5), pt(4, 40, 36),
                             pt(5, 80, 39)};
  auto h5 = upper_hull(five);
  REQUIRE(h5.size() == 4);
  for (const auto& s : h5) CHECK(s.rate != 3);
  // ... but not below 4 points (BD needs them).
  std::vector<RdSample> four{pt(1, 10, 30), pt(2, 20, 33), pt(3, 25, 32.5), pt(4, 40, 36)};
  CHECK(upper_hull(four).size() == 4);
}

TEST_CASE("psnr_at_rate interpolates in log rate") {
  std::vector<RdSample> c{pt(0, 100, 30), pt(0, 400, 36), pt(0, 200, 33)};
  CHECK(psnr_at_rate(c, 100) == doctest::Approx(30));
  CHECK(psnr_at_rate(c, 200) == doctest::Approx(33));
  CHECK(psnr_at_rate(c, std::sqrt(200.0 * 400.0)) == doctest::Approx(34.5));
  CHECK(psnr_at_rate(c, 800) == doctest::Approx(39));  // extrapolated from the end segment
  CHECK(psnr_at_rate(c, 50) == doctest::Approx(27));
  CHECK(std::isnan(psnr_at_rate({pt(0, 100, 30)}, 100)));
}

TEST_CASE("pick_rates spans the target PSNR range of the probe, log-spaced") {
  // PSNR = 10 log10(rate) + 10: 32 dB at 158 kb/s, 42 dB at 1585 kb/s.
  std::vector<ProbePoint> probe;
  for (int crf : {20, 26, 32, 38, 44}) {
    const double kbps = 4000.0 * std::pow(10.0, -(crf - 20) / 10.0);
    probe.push_back({crf, kbps, 10 * std::log10(kbps) + 10});
  }
  auto r = pick_rates(probe, 32, 42, 5);
  REQUIRE(r.size() == 5);
  CHECK(r.front() == 160);   // 158 to two significant digits
  CHECK(r.back() == 1600);   // 1585
  CHECK(r[2] == 500);        // sqrt(158 * 1585) = 501
  for (size_t i = 1; i < r.size(); ++i) CHECK(r[i] > r[i - 1]);

  // A probe that never drops to 32 dB (easy content) starts at its cheapest
  // point and keeps a span.
  std::vector<ProbePoint> easy{{30, 50, 40}, {40, 20, 36}, {51, 10, 34}};
  auto e = pick_rates(easy, 32, 42, 4);
  REQUIRE(e.size() == 4);
  CHECK(e.front() == 10);
  CHECK(e.back() == 50);
}

TEST_CASE("BD numbers: zero against itself, the rate saving of a shifted curve, n/a without overlap") {
  std::vector<RdSample> a{pt(0, 100, 30), pt(0, 200, 33), pt(0, 400, 36), pt(0, 800, 39)};
  auto same = bd_numbers(a, a);
  CHECK(same.rate_pct == doctest::Approx(0).epsilon(1e-9));
  CHECK(same.psnr_db == doctest::Approx(0).epsilon(1e-9));
  std::vector<RdSample> cheaper = a;
  for (auto& s : cheaper) s.total_kbps *= 0.8;
  CHECK(bd_numbers(a, cheaper).rate_pct == doctest::Approx(-20).epsilon(1e-6));
  std::vector<RdSample> flat{pt(0, 100, 20), pt(0, 200, 20.05), pt(0, 400, 20.1), pt(0, 800, 20.1)};
  CHECK(std::isnan(bd_numbers(a, flat).rate_pct));  // no PSNR overlap
  CHECK(std::isnan(bd_numbers(a, {a[0], a[1], a[2]}).psnr_db));  // 3 points
}

TEST_CASE("pick_detail_crop finds the textured block") {
  Frame f = Frame::blank(200, 120, 100, 128);
  for (int y = 60; y < 100; ++y)
    for (int x = 130; x < 170; ++x) f.y[size_t(y) * 200 + x] = ((x + y) & 1) ? 220 : 30;
  const CropRect r = pick_detail_crop(f, 40);
  CHECK(r.side == 40);
  CHECK(r.x % 2 == 0);
  CHECK(r.y % 2 == 0);
  CHECK(std::abs(r.x - 130) <= 6);
  CHECK(std::abs(r.y - 60) <= 6);
  CHECK(pick_detail_crop(f, 500).side == 120);  // clamped to the frame
}
