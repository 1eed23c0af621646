// `dydca bench`: the crop compared by eye (see rd_bench.h). OpenCV is fine
// here: the bench is server side.
#include <algorithm>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "rd_bench.h"

namespace dydca::bench {

CropRect pick_detail_crop(const Frame& f, int side) {
  CropRect best;
  side = std::min({side, f.width, f.height}) & ~1;
  best.side = side;
  if (side < 2) return best;
  cv::Mat y(f.height, f.width, CV_8UC1, const_cast<uint8_t*>(f.y.data()));
  cv::Mat gx, gy, energy, sum;
  cv::Sobel(y, gx, CV_32F, 1, 0);
  cv::Sobel(y, gy, CV_32F, 0, 1);
  energy = gx.mul(gx) + gy.mul(gy);
  cv::integral(energy, sum, CV_64F);
  const int step = std::max(2, (side / 8) & ~1);
  double best_e = -1;
  for (int by = 0; by + side <= f.height; by += step)
    for (int bx = 0; bx + side <= f.width; bx += step) {
      const double e = sum.at<double>(by + side, bx + side) - sum.at<double>(by, bx + side) -
                       sum.at<double>(by + side, bx) + sum.at<double>(by, bx);
      if (e > best_e) best_e = e, best.x = bx, best.y = by;
    }
  return best;
}

namespace {
// The crop of a 4:2:0 frame as BGR (x, y, side even).
cv::Mat crop_bgr(const Frame& f, const CropRect& r) {
  const int s = r.side, c = s / 2;
  cv::Mat yuv(s * 3 / 2, s, CV_8UC1);
  uint8_t* d = yuv.ptr<uint8_t>();
  for (int j = 0; j < s; ++j)
    std::copy_n(f.y.data() + size_t(r.y + j) * f.width + r.x, s, d + size_t(j) * s);
  d += size_t(s) * s;
  const int cw = f.chroma_width();
  for (const auto* plane : {&f.u, &f.v})
    for (int j = 0; j < c; ++j, d += c)
      std::copy_n(plane->data() + size_t(r.y / 2 + j) * cw + r.x / 2, c, d);
  cv::Mat bgr;
  cv::cvtColor(yuv, bgr, cv::COLOR_YUV2BGR_I420);
  return bgr;
}
}  // namespace

Status write_crop_png(const std::string& path, const std::vector<CropPanel>& panels,
                      const CropRect& rect, int magnify) {
  if (panels.empty() || rect.side < 2 || rect.side % 2 || rect.x % 2 || rect.y % 2)
    return Status::error("crop: nothing to draw");
  for (const auto& p : panels)
    if (!p.frame || p.frame->width != panels[0].frame->width ||
        p.frame->height != panels[0].frame->height || rect.x + rect.side > p.frame->width ||
        rect.y + rect.side > p.frame->height)
      return Status::error("crop: the panels' frames differ in size or miss the crop");
  const int m = std::max(1, magnify), ps = rect.side * m, gap = 8, line_h = 18;
  const int label_h = 2 * line_h + 8;
  const int width = int(panels.size()) * (ps + gap) + gap;
  cv::Mat canvas(gap + ps + label_h, width, CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < panels.size(); ++i) {
    cv::Mat big;
    cv::resize(crop_bgr(*panels[i].frame, rect), big, cv::Size(ps, ps), 0, 0, cv::INTER_NEAREST);
    const int x0 = gap + int(i) * (ps + gap);
    big.copyTo(canvas(cv::Rect(x0, gap, ps, ps)));
    std::istringstream lines(panels[i].label);
    std::string line;
    for (int l = 0; l < 2 && std::getline(lines, line); ++l)
      cv::putText(canvas, line, cv::Point(x0, gap + ps + line_h * (l + 1)),
                  cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  try {
    if (!cv::imwrite(path, canvas)) return Status::error("cannot write " + path);
  } catch (const cv::Exception& e) {
    return Status::error("cannot write " + path + ": " + e.what());
  }
  return Status::ok();
}

}  // namespace dydca::bench
