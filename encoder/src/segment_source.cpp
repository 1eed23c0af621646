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
  const int64_t lr = hr / (int64_t(scale) * scale);
  return hr + 2 * lr + lr * 2 / 3;  // HR, LR, then the decoded LR; the detector's luma
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
    DYDCA_ASSIGN_OR_RETURN(auto d, downscale(padded, p_.scale, p_.filter));
    // The detector's luma: the area-downscaled frame (the LR itself when
    // that is its filter), chroma dropped.
    Frame luma;
    if (p_.filter == ScaleFilter::kArea) {
      luma = d;
    } else {
      DYDCA_ASSIGN_OR_RETURN(luma, downscale(padded, p_.scale, ScaleFilter::kArea));
    }
    std::vector<uint8_t>().swap(luma.u);
    std::vector<uint8_t>().swap(luma.v);
    cut_.push_back(std::move(luma));
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
  // Cuts on the area-downscaled luma of the pending frames, seen after the last frames of
  // the previous segment (the detector's context: a cut just after a
  // max-length split is still a cut, a flash just after a cut is not).
  const int context = int(cut_.size() - hr_.size());
  const int pending = int(hr_.size());
  SceneCutParams sp = p_.scene;
  sp.max_length = INT_MAX / 2;
  DYDCA_ASSIGN_OR_RETURN(auto segs, detect_segments(cut_, sp));
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
  out.lr.assign(std::make_move_iterator(lr_.begin()), std::make_move_iterator(lr_.begin() + len));
  lr_.erase(lr_.begin(), lr_.begin() + len);
  // The next detection's context: this segment's last frames of the detector's luma.
  const int keep = std::min(len, kContext);
  cut_.erase(cut_.begin(), cut_.begin() + (context + len - keep));
  next_first_ += len;
  return std::optional<SegmentFrames>(std::move(out));
}

}  // namespace dydca::detail
