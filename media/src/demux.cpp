// Streaming demuxer (PacketReader) and demux_file on top of it.
#include <algorithm>
#include <deque>
#include <functional>
#include <queue>

#include "av_ptr.h"
#include "dydca/media.h"

namespace dydca {

struct PacketReader::Impl {
  std::string path;
  // A byte source's I/O context: declared before fmt, so that it outlives it
  // (avformat_close_input leaves a caller's AVIOContext alone).
  std::unique_ptr<ByteSource> source;
  av::AvioContextPtr avio;
  av::InputFormatPtr fmt;
  av::PacketPtr pkt{av_packet_alloc()};
  int video = -1, audio = -1;
  DemuxHeader header;
  int64_t audio_bytes = 0;

  // Look-ahead window of video packets, and the presentation times of every
  // packet read but not yet handed out (the smallest one is the presentation
  // time of the next packet's rank, i.e. the source of its rebuilt dts).
  std::deque<EncodedPacket> window;
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> pending_pts;
  bool eof = false;
  bool decided = false;     // rebuild mode chosen on the first window
  bool whole_file = false;  // the first window held every packet
  bool rebuild = false;     // dts are rebuilt from presentation times
  int64_t shift = 0;        // D in dts = i-th smallest pts - D
  int64_t last_dts = AV_NOPTS_VALUE;
  bool warned_reorder = false;
  int64_t reorder_frames = 0;  // declared picture reordering (codecpar video_delay)
  AVRational frame_rate{0, 1}, time_base{1, 1};

  // Reads until the window holds kPacketLookahead packets or the file ends.
  void fill() {
    while (!eof && int(window.size()) < kPacketLookahead) {
      int err = av_read_frame(fmt.get(), pkt.get());
      if (err == AVERROR_EOF) {
        eof = true;
        break;
      }
      if (err < 0) {
        log_warning(path + ": stopped reading at a damaged spot: " + av::error_string(err));
        eof = true;
        break;
      }
      if (pkt->stream_index == video) {
        EncodedPacket p;
        p.data.assign(pkt->data, pkt->data + pkt->size);
        p.pts = pkt->pts;
        p.dts = pkt->dts;
        p.duration = pkt->duration;
        p.keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
        if (p.pts != AV_NOPTS_VALUE) pending_pts.push(p.pts);
        window.push_back(std::move(p));
      } else if (pkt->stream_index == audio) {
        audio_bytes += pkt->size;
      }
      av_packet_unref(pkt.get());
    }
  }

  // Chooses the dts rebuild on the first window, as demux_file did on the
  // whole file: rebuild when some dts (or pts) is missing and every pts is
  // known. D is the smallest shift keeping dts <= pts over the ranks that the
  // window determines (all of them when the file fits in it; otherwise the
  // ranks far enough from its end that no later packet can still precede them).
  void decide() {
    decided = true;
    whole_file = eof;
    bool missing = false, have_pts = !window.empty();
    for (const auto& p : window) {
      missing |= p.dts == AV_NOPTS_VALUE || p.pts == AV_NOPTS_VALUE;
      have_pts &= p.pts != AV_NOPTS_VALUE;
    }
    rebuild = missing && have_pts;
    if (!rebuild) return;
    std::vector<int64_t> sorted;
    for (const auto& p : window) sorted.push_back(p.pts);
    std::sort(sorted.begin(), sorted.end());
    constexpr size_t kMaxReorder = 16;  // H.264's deepest picture reordering
    const size_t known = eof ? sorted.size() : std::max<size_t>(1, sorted.size() - kMaxReorder);
    for (size_t i = 0; i < known; ++i) shift = std::max(shift, sorted[i] - window[i].pts);
    // The start of a stream often reorders less than its middle (x264 puts
    // its first B-pyramid after a few plain B-frames): beyond the window, make
    // room for the reorder depth the stream declares (its SPS's
    // num_reorder_frames, as FFmpeg reads it) at the nominal frame duration.
    if (!eof && reorder_frames > 0 && frame_rate.num > 0 && frame_rate.den > 0) {
      const int64_t frame =
          av_rescale_q_rnd(1, {frame_rate.den, frame_rate.num}, time_base, AV_ROUND_UP);
      shift = std::max(shift, reorder_frames * frame);
    }
  }

  void fix_dts(EncodedPacket& p) {
    int64_t rank_pts = AV_NOPTS_VALUE;
    if (p.pts != AV_NOPTS_VALUE && !pending_pts.empty()) {
      rank_pts = pending_pts.top();
      pending_pts.pop();
    }
    // A dts missing after the first window (not expected from FFmpeg's
    // demuxers) switches the rebuild on from here.
    if (!rebuild && !whole_file && p.dts == AV_NOPTS_VALUE && rank_pts != AV_NOPTS_VALUE)
      rebuild = true;
    if (!rebuild || rank_pts == AV_NOPTS_VALUE) {
      if (p.dts != AV_NOPTS_VALUE) last_dts = p.dts;
      return;
    }
    int64_t dts = rank_pts - shift;
    if (dts > p.pts) {  // reordering deeper than the first window showed
      if (!warned_reorder)
        log_warning(path + ": picture reordering deeper than the first " +
                    std::to_string(kPacketLookahead) + " packets; decode times clamped");
      warned_reorder = true;
      dts = p.pts;
    }
    if (last_dts != AV_NOPTS_VALUE && dts < last_dts) dts = std::min(last_dts, p.pts);
    p.dts = last_dts = dts;
  }
};

PacketReader::PacketReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PacketReader::PacketReader(PacketReader&&) noexcept = default;
PacketReader& PacketReader::operator=(PacketReader&&) noexcept = default;
PacketReader::~PacketReader() = default;
const DemuxHeader& PacketReader::header() const { return impl_->header; }
int64_t PacketReader::audio_bytes_read() const { return impl_ ? impl_->audio_bytes : 0; }

namespace {

int read_source(void* opaque, uint8_t* buf, int size) {
  const int n = static_cast<ByteSource*>(opaque)->read(buf, size);
  return n > 0 ? n : n == 0 ? AVERROR_EOF : AVERROR(EIO);
}

int64_t seek_source(void* opaque, int64_t offset, int whence) {
  // FFmpeg may or AVSEEK_FORCE into whence; a caller's seek knows nothing of it.
  const int64_t r = static_cast<ByteSource*>(opaque)->seek(offset, whence & ~AVSEEK_FORCE);
  return r >= 0 ? r : AVERROR(EIO);
}

}  // namespace

Expected<PacketReader> PacketReader::open(std::unique_ptr<ByteSource> source,
                                          const std::string& name) {
  if (!source) return Status::error(name + ": no byte source", StatusCode::kInvalidArgument);
  auto impl = std::make_unique<Impl>();
  impl->path = name;
  constexpr int kBufferBytes = 64 << 10;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferBytes));
  if (!buffer) return Status::error("out of memory", StatusCode::kOutOfMemory);
  impl->avio.reset(avio_alloc_context(buffer, kBufferBytes, 0, source.get(), &read_source,
                                      nullptr, &seek_source));
  if (!impl->avio) {
    av_free(buffer);
    return Status::error("out of memory", StatusCode::kOutOfMemory);
  }
  impl->source = std::move(source);
  return open_impl(std::move(impl));
}

Expected<PacketReader> PacketReader::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  return open_impl(std::move(impl));
}

// impl has its path (the name in messages) and, for a byte source, its I/O context.
Expected<PacketReader> PacketReader::open_impl(std::unique_ptr<Impl> impl) {
  const std::string& path = impl->path;
  if (!impl->pkt) return Status::error("out of memory", StatusCode::kOutOfMemory);
  AVFormatContext* raw = nullptr;
  if (impl->avio) {
    raw = avformat_alloc_context();
    if (!raw) return Status::error("out of memory", StatusCode::kOutOfMemory);
    raw->pb = impl->avio.get();  // avformat_open_input frees raw (not pb) on failure
  }
  int err = avformat_open_input(&raw, impl->avio ? "" : path.c_str(), nullptr, nullptr);
  if (err < 0)
    return Status::error("cannot open " + path + ": " + av::error_string(err),
                         av::status_code(err));
  impl->fmt.reset(raw);
  // Attachments of an unknown mimetype (ours) have no codec id, and
  // avformat_find_stream_info warns "Could not find codec parameters" for
  // each of them on every open. They are not decoded: present them as data
  // streams while probing, then restore their type.
  std::vector<AVStream*> attachments;
  for (unsigned i = 0; i < raw->nb_streams; ++i)
    if (raw->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_ATTACHMENT &&
        raw->streams[i]->codecpar->codec_id == AV_CODEC_ID_NONE) {
      raw->streams[i]->codecpar->codec_type = AVMEDIA_TYPE_DATA;
      attachments.push_back(raw->streams[i]);
    }
  err = avformat_find_stream_info(raw, nullptr);
  for (AVStream* st : attachments) st->codecpar->codec_type = AVMEDIA_TYPE_ATTACHMENT;
  if (err < 0)
    return Status::error(path + ": cannot read stream info: " + av::error_string(err),
                         err == AVERROR(ENOMEM) ? StatusCode::kOutOfMemory
                                                : StatusCode::kInvalidData);
  DemuxHeader& h = impl->header;
  h.format = raw->iformat->name;
  if (raw->duration > 0) h.duration_s = raw->duration / double(AV_TIME_BASE);
  const AVDictionaryEntry* t = nullptr;
  while ((t = av_dict_get(raw->metadata, "", t, AV_DICT_IGNORE_SUFFIX))) h.tags[t->key] = t->value;
  int& video = impl->video;
  int& audio = impl->audio;
  for (unsigned i = 0; i < raw->nb_streams; ++i) {
    AVStream* st = raw->streams[i];
    const AVCodecParameters* cp = st->codecpar;
    if (cp->codec_type == AVMEDIA_TYPE_VIDEO && video < 0 &&
        !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      video = int(i);
    } else if (cp->codec_type == AVMEDIA_TYPE_AUDIO && audio < 0) {
      audio = int(i);
    } else if (cp->codec_type == AVMEDIA_TYPE_ATTACHMENT) {
      Attachment a;
      if (auto* e = av_dict_get(st->metadata, "filename", nullptr, 0)) a.filename = e->value;
      if (auto* e = av_dict_get(st->metadata, "mimetype", nullptr, 0)) a.mimetype = e->value;
      if (cp->extradata_size < 0 || cp->extradata_size > kMaxAttachmentBytes)
        return Status::error(path + ": attachment " + a.filename + " is too large",
                             StatusCode::kInvalidData);
      if (cp->extradata) a.data.assign(cp->extradata, cp->extradata + cp->extradata_size);
      h.attachments.push_back(std::move(a));
    }
    if (int(i) != video && int(i) != audio) st->discard = AVDISCARD_ALL;
  }
  if (video < 0) return Status::error(path + ": no video stream", StatusCode::kUnsupported);
  AVStream* vs = raw->streams[video];
  EncodedVideo& v = h.video;
  v.codec = avcodec_get_name(vs->codecpar->codec_id);
  v.width = vs->codecpar->width;
  v.height = vs->codecpar->height;
  AVRational rate = av_guess_frame_rate(raw, vs, nullptr);
  if (rate.num > 0 && rate.den > 0) v.frame_rate = {rate.num, rate.den};
  v.time_base = {vs->time_base.num, vs->time_base.den};
  if (vs->codecpar->extradata_size > 0)
    v.extradata.assign(vs->codecpar->extradata,
                       vs->codecpar->extradata + vs->codecpar->extradata_size);
  h.has_audio = audio >= 0;
  impl->reorder_frames = std::clamp(vs->codecpar->video_delay, 0, 16);
  impl->frame_rate = rate;
  impl->time_base = vs->time_base;
  return PacketReader(std::move(impl));
}

Expected<bool> PacketReader::read(EncodedPacket& out) {
  if (!impl_) return Status::error("packet reader: moved from");
  Impl& m = *impl_;
  m.fill();
  if (!m.decided) m.decide();
  if (m.window.empty()) return false;
  out = std::move(m.window.front());
  m.window.pop_front();
  m.fix_dts(out);
  return true;
}

Expected<DemuxedFile> demux_file(const std::string& path) {
  DYDCA_ASSIGN_OR_RETURN(auto reader, PacketReader::open(path));
  DemuxedFile out;
  const DemuxHeader& h = reader.header();
  out.format = h.format;
  out.video = h.video;
  out.tags = h.tags;
  out.attachments = h.attachments;
  out.has_audio = h.has_audio;
  out.duration_s = h.duration_s;
  int64_t bytes = 0;
  EncodedPacket p;
  while (true) {
    DYDCA_ASSIGN_OR_RETURN(auto got, reader.read(p));
    if (!got) break;
    bytes += int64_t(p.data.size());
    if (bytes > (int64_t{4} << 30)) return Status::error(path + ": video track too large");
    out.video.packets.push_back(std::move(p));
  }
  out.audio_bytes = reader.audio_bytes_read();
  return out;
}

}  // namespace dydca
