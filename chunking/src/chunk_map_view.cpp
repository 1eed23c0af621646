// Debug picture: each tile painted with its chunk's colour over the frame.
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "dydca/chunking.h"

namespace dydca {
namespace {

// Easy (blue) -> hard (red, magenta), BGR.
cv::Scalar chunk_colour(int c, int k) {
  static const cv::Scalar kPalette[] = {{255, 90, 40}, {220, 200, 0},  {40, 200, 40},
                                        {0, 220, 240}, {0, 140, 255},  {30, 30, 230},
                                        {220, 0, 220}, {240, 240, 240}};
  if (k <= 8) {
    // Spread small K over the palette's ends so 2-4 chunks still read blue -> red.
    static const int kSpread[9][8] = {{},
                                      {0},
                                      {0, 5},
                                      {0, 2, 5},
                                      {0, 2, 3, 5},
                                      {0, 1, 2, 4, 5},
                                      {0, 1, 2, 3, 4, 5},
                                      {0, 1, 2, 3, 4, 5, 6},
                                      {0, 1, 2, 3, 4, 5, 6, 7}};
    return kPalette[kSpread[k][c]];
  }
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(int(120 - 150.0 * c / (k - 1) + 180) % 180, 230, 230));
  cv::Mat bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const auto px = bgr.at<cv::Vec3b>(0, 0);
  return {double(px[0]), double(px[1]), double(px[2])};
}

cv::Mat to_bgr(const Frame& f) {
  cv::Mat bgr;
  if (f.width % 2 == 0 && f.height % 2 == 0) {
    cv::Mat i420(f.height * 3 / 2, f.width, CV_8UC1);
    std::memcpy(i420.data, f.y.data(), f.y.size());
    std::memcpy(i420.data + f.y.size(), f.u.data(), f.u.size());
    std::memcpy(i420.data + f.y.size() + f.u.size(), f.v.data(), f.v.size());
    cv::cvtColor(i420, bgr, cv::COLOR_YUV2BGR_I420);
  } else {
    cv::Mat y(f.height, f.width, CV_8UC1, const_cast<uint8_t*>(f.y.data()));
    cv::cvtColor(y, bgr, cv::COLOR_GRAY2BGR);
  }
  return bgr;
}

}  // namespace

Status write_chunk_map_png(const std::string& path, const Frame& picture, const RoutingMap& routing,
                           int frame, const ChunkMapStyle& style) {
  if (frame < 0 || frame >= routing.frames)
    return Status::error("chunk map: frame " + std::to_string(frame) + " is not in 0.." +
                         std::to_string(routing.frames - 1));
  if (routing.chunk_ids.size() != size_t(routing.frames) * routing.tiles_per_frame() ||
      routing.num_chunks < 1)
    return Status::error("chunk map: malformed routing map");
  if (picture.empty() || routing.lr_width <= 0 || picture.width % routing.lr_width != 0 ||
      picture.height % routing.lr_height != 0 ||
      picture.width / routing.lr_width != picture.height / routing.lr_height)
    return Status::error("chunk map: picture " + std::to_string(picture.width) + "x" +
                         std::to_string(picture.height) + " is not an integer multiple of LR " +
                         std::to_string(routing.lr_width) + "x" +
                         std::to_string(routing.lr_height));
  const int factor = picture.width / routing.lr_width;
  const int k = routing.num_chunks;
  cv::Mat img = to_bgr(picture);
  cv::Mat overlay = img.clone();
  const TileGrid grid{routing.tile_size, routing.lr_width, routing.lr_height};
  std::vector<int> counts(size_t(k), 0);
  for (int i = 0; i < grid.count(); ++i) {
    const TileRect r = grid.rect(i);
    const int c = routing.chunk_ids[size_t(frame) * grid.count() + i];
    ++counts[size_t(std::min(c, k - 1))];
    cv::rectangle(overlay,
                  cv::Rect(r.x * factor, r.y * factor, r.width * factor, r.height * factor),
                  chunk_colour(std::min(c, k - 1), k), cv::FILLED);
  }
  cv::addWeighted(overlay, style.alpha, img, 1.0 - style.alpha, 0.0, img);
  const int tile_px = routing.tile_size * factor;
  for (int i = 0; i < grid.count(); ++i) {
    const TileRect r = grid.rect(i);
    const cv::Rect box(r.x * factor, r.y * factor, r.width * factor, r.height * factor);
    if (style.borders) cv::rectangle(img, box, cv::Scalar(20, 20, 20), 1);
    if (style.labels && tile_px >= 24 && r.width * factor >= 16 && r.height * factor >= 16) {
      const int c = routing.chunk_ids[size_t(frame) * grid.count() + i];
      cv::putText(img, std::to_string(c), cv::Point(box.x + 3, box.y + 14),
                  cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    }
  }
  // Legend: colour, chunk, its tiles in this frame and its level-0 path.
  const int row = 16, legend_w = 190;
  cv::Mat roi =
      img(cv::Rect(0, 0, std::min(legend_w, img.cols), std::min(row * (k + 1) + 4, img.rows)));
  roi *= 0.35;
  cv::putText(img, "frame " + std::to_string(frame), cv::Point(4, 12), cv::FONT_HERSHEY_SIMPLEX,
              0.4, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  for (int c = 0; c < k; ++c) {
    const int y = row * (c + 1);
    cv::rectangle(img, cv::Rect(4, y + 2, 12, 12), chunk_colour(c, k), cv::FILLED);
    std::string text =
        "chunk " + std::to_string(c) + ": " + std::to_string(counts[size_t(c)]) + " tiles";
    if (!routing.chunk_path.empty() && size_t(c) < routing.chunk_path[0].size())
      text += ", path " + std::to_string(routing.chunk_path[0][size_t(c)]);
    cv::putText(img, text, cv::Point(22, y + 12), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  }
  try {
    if (!cv::imwrite(path, img)) return Status::error("chunk map: cannot write " + path);
  } catch (const cv::Exception& e) {
    return Status::error("chunk map: cannot write " + path + ": " + e.what());
  }
  return {};
}

}  // namespace dydca
