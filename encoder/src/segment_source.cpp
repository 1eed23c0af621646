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
  return hr + 2 * (hr / (int64_t(scale) * scale));  // HR, LR, then the decoded LR
}

Status SegmentSource::fill(const ProgressFn& progress) {
  const VideoInfo& info = reader_.info();
  const size_t want = size_t(p_.max_frames) + kLookahead;
  Frame f;
  while (!eof_ && hr_.size() < want) {  // lr_ holds the context frames too
    if (p_.frame_limit > 0 && read_ >= p_.frame_limit) {
      eof_ = true;
      break;
    }
    DYDCA_ASSIGN_OR_RETURN(auto got, reader_.read(f));
    if (!got) {
      eof_ = true;
      break;
    }
    ++read_;
    if (f.width != info.width || f.height != info.height) {
      DYDCA_ASSIGN_OR_RETURN(auto fixed, resize(f, info.width, info.height, ScaleFilter::kBicubic));
      f = std::move(fixed);
    }
    Frame padded = pad_to_multiple(f, 2 * p_.scale);
    DYDCA_ASSIGN_OR_RETURN(auto d, downscale(padded, p_.scale, ScaleFilter::kArea));
    hr_.push_back(std::move(padded));
    lr_.push_back(std::move(d));
    if (progress && !progress({"read", read_, info.frame_count}))
      return Status::error("interrupted");
  }
  return Status::ok();
}

Expected<std::optional<SegmentFrames>> SegmentSource::next(const ProgressFn& progress) {
  DYDCA_TRY(fill(progress));
  if (hr_.empty()) return std::optional<SegmentFrames>{};
  // Cuts on the LR luma of the pending frames, seen after the last frames of
  // the previous segment (the detector's context: a cut just after a
  // max-length split is still a cut, a flash just after a cut is not).
  const int context = int(lr_.size() - hr_.size());
  const int pending = int(hr_.size());
  SceneCutParams sp = p_.scene;
  sp.max_length = INT_MAX / 2;
  DYDCA_ASSIGN_OR_RETURN(auto segs, detect_segments(lr_, sp));
  int cut = -1;  // first cut after the context, relative to the pending frames
  for (const Segment& sg : segs)
    if (sg.start > context) {
      cut = sg.start - context;
      break;
    }
  int len = std::max(1, std::min(cut > 0 ? cut : pending, p_.max_frames));
  // The input ends within the look-ahead and without a cut: the few frames
  // left join this segment rather than make a tiny one of their own (an IDR
  // and a model update for a handful of frames).
  if (eof_ && cut < 0 && pending - len <= kLookahead) len = pending;
  SegmentFrames out;
  out.index = next_index_++;
  out.first_frame = next_first_;
  out.hr.assign(std::make_move_iterator(hr_.begin()), std::make_move_iterator(hr_.begin() + len));
  hr_.erase(hr_.begin(), hr_.begin() + len);
  const auto first = lr_.begin() + context;
  out.lr.assign(std::make_move_iterator(first), std::make_move_iterator(first + len));
  lr_.erase(lr_.begin(), first + len);
  // The next detection's context: copies of this segment's last LR frames.
  const int keep = std::min(len, kContext);
  lr_.insert(lr_.begin(), out.lr.end() - keep, out.lr.end());
  next_first_ += len;
  return std::optional<SegmentFrames>(std::move(out));
}

}  // namespace dydca::detail
