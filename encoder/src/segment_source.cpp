#include "segment_source.h"

#include <algorithm>
#include <climits>

namespace dydca::detail {

SegmentSource::SegmentSource(VideoReader& reader, const SegmentSourceParams& params)
    : reader_(reader), p_(params) {
  p_.max_frames = std::max(1, p_.max_frames);
}

int64_t SegmentSource::frame_bytes(int width, int height, int scale) {
  const int64_t m = 2 * scale;
  const int64_t w = (width + m - 1) / m * m, h = (height + m - 1) / m * m;
  const int64_t hr = w * h * 3 / 2;
  return hr + hr / (int64_t(scale) * scale);
}

Status SegmentSource::fill(const ProgressFn& progress) {
  const VideoInfo& info = reader_.info();
  const size_t want = size_t(p_.max_frames) + kLookahead;
  Frame f;
  while (!eof_ && hr_.size() < want) {
    if (p_.frame_limit > 0 && read_ >= p_.frame_limit) {
      eof_ = true;
      break;
    }
    auto got = reader_.read(f);
    if (!got) return got.status();
    if (!*got) {
      eof_ = true;
      break;
    }
    ++read_;
    if (f.width != info.width || f.height != info.height) {
      auto fixed = resize(f, info.width, info.height, ScaleFilter::kBicubic);
      if (!fixed) return fixed.status();
      f = std::move(*fixed);
    }
    Frame padded = pad_to_multiple(f, 2 * p_.scale);
    auto d = downscale(padded, p_.scale, ScaleFilter::kArea);
    if (!d) return d.status();
    hr_.push_back(std::move(padded));
    lr_.push_back(std::move(*d));
    if (progress && !progress({"read", read_, info.frame_count}))
      return Status::error("interrupted");
  }
  return Status::ok();
}

Expected<std::optional<SegmentFrames>> SegmentSource::next(const ProgressFn& progress) {
  DYDCA_TRY(fill(progress));
  if (hr_.empty()) return std::optional<SegmentFrames>{};
  // Cuts on the buffered LR luma; the first segment found ends at the first
  // cut, or at max_frames when the scene goes on.
  SceneCutParams sp = p_.scene;
  sp.max_length = INT_MAX / 2;
  auto segs = detect_segments(lr_, sp);
  if (!segs) return segs.status();
  int len = std::min((*segs)[0].length(), p_.max_frames);
  len = std::max(len, 1);
  SegmentFrames out;
  out.index = next_index_++;
  out.first_frame = next_first_;
  out.hr.assign(std::make_move_iterator(hr_.begin()), std::make_move_iterator(hr_.begin() + len));
  out.lr.assign(std::make_move_iterator(lr_.begin()), std::make_move_iterator(lr_.begin() + len));
  hr_.erase(hr_.begin(), hr_.begin() + len);
  lr_.erase(lr_.begin(), lr_.begin() + len);
  next_first_ += len;
  return std::optional<SegmentFrames>(std::move(out));
}

}  // namespace dydca::detail
