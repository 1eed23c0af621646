// Metrics against independent computations: FFmpeg's psnr and ssim filters on
// the same files, hand-computable cases, and BD values computed with numpy's
// polyfit/polyint (the classic VCEG-M33 script) on published example data.
#include <doctest/doctest.h>

#include <cmath>
#include <regex>

#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/synthetic.h"
#include "test_util.h"

using namespace dydca;

TEST_CASE("PSNR of hand-computable planes") {
  Frame a = Frame::blank(16, 16, 100, 128);
  Frame b = Frame::blank(16, 16, 110, 128);  // MSE_Y = 100
  auto q = compare_frames(a, b);
  REQUIRE(q);
  CHECK(q->mse_y == doctest::Approx(100.0));
  CHECK(q->psnr_y == doctest::Approx(10 * std::log10(255.0 * 255.0 / 100.0)));
  CHECK(q->psnr_u == kPsnrCap);
  CHECK(q->psnr_yuv == doctest::Approx((6 * q->psnr_y + 2 * kPsnrCap) / 8));
  CHECK(q->ssim_y < 1.0);
  auto same = compare_frames(a, a);
  REQUIRE(same);
  CHECK(same->psnr_y == kPsnrCap);
  CHECK(same->ssim_y == doctest::Approx(1.0));
  CHECK_FALSE(compare_frames(a, Frame::blank(16, 8)));
}

TEST_CASE("clip PSNR from mean MSE differs from mean of frame PSNRs") {
  QualityAccumulator acc;
  Frame ref = Frame::blank(8, 8, 100);
  REQUIRE(acc.add(ref, Frame::blank(8, 8, 101)));  // MSE 1
  REQUIRE(acc.add(ref, Frame::blank(8, 8, 110)));  // MSE 100
  ClipQuality c = acc.result();
  CHECK(c.frames == 2);
  CHECK(c.psnr_y == doctest::Approx(10 * std::log10(255.0 * 255.0 / 50.5)));
  CHECK(c.psnr_y_frame_mean ==
        doctest::Approx((10 * std::log10(255.0 * 255.0) + 10 * std::log10(255.0 * 255.0 / 100)) / 2));
}

namespace {
double grab(const std::string& text, const std::string& pattern) {
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(text, m, std::regex(pattern)), text);
  return std::stod(m[1]);
}
}  // namespace

TEST_CASE("PSNR and SSIM agree with ffmpeg's psnr and ssim filters") {
  std::string dir = test::temp_dir("metrics_ffmpeg");
  for (auto [w, h] : {std::pair{176, 144}, std::pair{150, 86}}) {
    CAPTURE(w);
    auto ref = synthetic_clip(w, h, 10, 3);
    X264Config cfg;
    cfg.preset = "ultrafast";
    cfg.crf = 32;
    auto enc = encode_h264(ref, {25, 1}, cfg);
    REQUIRE(enc);
    auto dec = decode_h264(*enc);
    REQUIRE(dec);
    test::write_y4m(dir + "/ref.y4m", ref);
    test::write_y4m(dir + "/dec.y4m", *dec);
    auto ours = compare_clips(ref, *dec);
    REQUIRE(ours);
    std::string log;
    REQUIRE(test::run("ffmpeg -hide_banner -nostats -i '" + dir + "/dec.y4m' -i '" + dir +
                          "/ref.y4m' -lavfi \"[0:v][1:v]psnr;[0:v][1:v]ssim\" -f null - 2>&1",
                      &log) == 0);
    double ff_psnr_y = grab(log, R"(PSNR y:([0-9.]+))");
    double ff_psnr_u = grab(log, R"(PSNR y:[0-9.]+ u:([0-9.]+))");
    double ff_ssim_y = grab(log, R"(SSIM Y:([0-9.]+))");
    MESSAGE("ours PSNR-Y " << ours->psnr_y << " ffmpeg " << ff_psnr_y << "; SSIM-Y "
                           << ours->ssim_y << " ffmpeg " << ff_ssim_y);
    CHECK(ours->psnr_y == doctest::Approx(ff_psnr_y).epsilon(1e-4));
    double our_u = psnr_from_mse([&] {
      double s = 0;
      for (auto& f : ours->per_frame) s += f.mse_u;
      return s / ours->frames;
    }());
    CHECK(our_u == doctest::Approx(ff_psnr_u).epsilon(1e-4));
    CHECK(ours->ssim_y == doctest::Approx(ff_ssim_y).epsilon(1e-5));
  }
}

TEST_CASE("BD-rate and BD-PSNR") {
  std::vector<RdPoint> anchor = {{100, 30.1}, {200, 32.9}, {400, 35.2}, {800, 37.0}};
  SUBCASE("identical curves give zero") {
    CHECK(*bd_rate(anchor, anchor) == doctest::Approx(0.0).epsilon(1e-9));
    CHECK(*bd_psnr(anchor, anchor) == doctest::Approx(0.0).epsilon(1e-9));
  }
  SUBCASE("the same quality at 80% of the rate is exactly -20%") {
    auto test = anchor;
    for (auto& p : test) p.kbps *= 0.8;
    CHECK(*bd_rate(anchor, test) == doctest::Approx(-20.0).epsilon(1e-9));
  }
  SUBCASE("0.5 dB more at the same rates is exactly +0.5 dB") {
    auto test = anchor;
    for (auto& p : test) p.psnr += 0.5;
    CHECK(*bd_psnr(anchor, test) == doctest::Approx(0.5).epsilon(1e-9));
  }
  SUBCASE("published examples, reference values from numpy polyfit/polyint") {
    // Example data of the FAU-LMS bjontegaard package (x265 presets).
    std::vector<RdPoint> a = {{9487.76, 40.037}, {4593.60, 38.615}, {2486.44, 36.845},
                              {1358.24, 34.851}};
    std::vector<RdPoint> b = {{9787.80, 40.121}, {4469.00, 38.651}, {2451.52, 36.970},
                              {1356.24, 34.987}};
    CHECK(*bd_rate(a, b) == doctest::Approx(-4.420463).epsilon(1e-5));
    CHECK(*bd_psnr(a, b) == doctest::Approx(0.120409).epsilon(1e-5));
    // Example of the widely copied Bjontegaard_metric script.
    std::vector<RdPoint> c = {{686.76, 40.28}, {309.58, 37.18}, {157.11, 34.24}, {85.95, 31.42}};
    std::vector<RdPoint> d = {{893.34, 40.39}, {407.8, 37.21}, {204.93, 34.17}, {112.75, 31.24}};
    CHECK(*bd_rate(c, d) == doctest::Approx(31.397374).epsilon(1e-5));
    CHECK(*bd_psnr(c, d) == doctest::Approx(-1.184898).epsilon(1e-5));
    // Five points: least-squares cubic.
    std::vector<RdPoint> e = {{100, 30.1}, {200, 32.9}, {400, 35.2}, {800, 37.0}, {1600, 38.4}};
    std::vector<RdPoint> f = {{90, 30.0}, {170, 33.1}, {350, 35.3}, {700, 37.2}, {1500, 38.6}};
    CHECK(*bd_rate(e, f) == doctest::Approx(-16.765913).epsilon(1e-5));
    CHECK(*bd_psnr(e, f) == doctest::Approx(0.545836).epsilon(1e-5));
  }
  SUBCASE("errors") {
    CHECK_FALSE(bd_rate({{1, 30}, {2, 31}, {3, 32}}, anchor));
    std::vector<RdPoint> far = {{1e6, 60}, {2e6, 61}, {4e6, 62}, {8e6, 63}};
    CHECK_FALSE(bd_rate(anchor, far));  // no overlap
    std::vector<RdPoint> bad = anchor;
    bad[0].kbps = 0;
    CHECK_FALSE(bd_psnr(anchor, bad));
  }
}
