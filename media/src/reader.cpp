#include <cmath>

#include "av_ptr.h"
#include "convert.h"
#include "dydca/media.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace dydca {

struct VideoReader::Impl {
  VideoInfo info;
  av::InputFormatPtr fmt;
  av::CodecContextPtr dec;
  av::PacketPtr pkt{av_packet_alloc()};
  av::FramePtr frame{av_frame_alloc()};
  av::SwsPtr sws;
  int stream = -1;
  bool input_done = false;  // demuxer hit EOF and the decoder was flushed
  bool drained = false;
  int64_t decoded = 0;
  int corrupt_packets = 0;
  int64_t skip_before = AV_NOPTS_VALUE;  // after a seek: drop frames before this pts
};

VideoReader::VideoReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;
VideoReader::~VideoReader() = default;
const VideoInfo& VideoReader::info() const { return impl_->info; }

Expected<VideoReader> VideoReader::open(const std::string& path, int threads) {
  auto impl = std::make_unique<Impl>();
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err < 0) return Status::error("cannot open " + path + ": " + av::error_string(err));
  impl->fmt.reset(raw);
  if ((err = avformat_find_stream_info(raw, nullptr)) < 0)
    return Status::error(path + ": cannot read stream info: " + av::error_string(err));
  int s = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (s < 0) return Status::error(path + ": no video stream");
  impl->stream = s;
  AVStream* st = raw->streams[s];
  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec) return Status::error(path + ": no decoder for its video codec");
  if (st->codecpar->width <= 0 || st->codecpar->height <= 0 ||
      st->codecpar->width > kMaxDimension || st->codecpar->height > kMaxDimension)
    return Status::error(path + ": unsupported video size " +
                         std::to_string(st->codecpar->width) + "x" +
                         std::to_string(st->codecpar->height));
  impl->dec.reset(avcodec_alloc_context3(codec));
  if (!impl->dec) return Status::error("out of memory");
  if ((err = avcodec_parameters_to_context(impl->dec.get(), st->codecpar)) < 0)
    return Status::error(path + ": " + av::error_string(err));
  impl->dec->thread_count = threads;
  impl->dec->pkt_timebase = st->time_base;
  if ((err = avcodec_open2(impl->dec.get(), codec, nullptr)) < 0)
    return Status::error(path + ": cannot open decoder: " + av::error_string(err));

  VideoInfo& info = impl->info;
  info.path = path;
  info.format = raw->iformat->name;
  info.codec = codec->name;
  const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(st->codecpar->format));
  info.pixel_format = pf ? pf : "unknown";
  info.width = st->codecpar->width;
  info.height = st->codecpar->height;
  AVRational avg = st->avg_frame_rate;
  AVRational guess = av_guess_frame_rate(raw, st, nullptr);
  AVRational rate = (avg.num > 0 && avg.den > 0) ? avg : guess;
  if (rate.num <= 0 || rate.den <= 0) rate = {25, 1};
  info.frame_rate = {rate.num, rate.den};
  // r_frame_rate is the lowest rate that represents every timestamp; when it
  // disagrees with the average rate, frame durations vary.
  AVRational r = st->r_frame_rate;
  if (r.num > 0 && avg.num > 0 && std::fabs(av_q2d(r) - av_q2d(avg)) > 0.01 * av_q2d(avg))
    info.variable_frame_rate = true;
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    info.duration_s = st->duration * av_q2d(st->time_base);
  else if (raw->duration > 0)
    info.duration_s = raw->duration / double(AV_TIME_BASE);
  if (st->nb_frames > 0) info.frame_count = st->nb_frames;
  else if (info.duration_s > 0)
    info.frame_count = std::llround(info.duration_s * info.frame_rate.to_double());
  int a = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (a >= 0) {
    info.has_audio = true;
    const AVCodecParameters* ap = raw->streams[a]->codecpar;
    info.audio_codec = avcodec_get_name(ap->codec_id);
    info.audio_channels = ap->ch_layout.nb_channels;
    info.audio_sample_rate = ap->sample_rate;
  }
  // Only the video stream is demuxed by this reader.
  for (unsigned i = 0; i < raw->nb_streams; ++i)
    if (int(i) != s) raw->streams[i]->discard = AVDISCARD_ALL;
  return VideoReader(std::move(impl));
}

Expected<bool> VideoReader::read(Frame& out) {
  Impl& m = *impl_;
  while (!m.drained) {
    int err = avcodec_receive_frame(m.dec.get(), m.frame.get());
    if (err == 0) {
      if (m.skip_before != AV_NOPTS_VALUE) {
        const int64_t ts = m.frame->best_effort_timestamp;
        if (ts != AV_NOPTS_VALUE && ts < m.skip_before) {
          av_frame_unref(m.frame.get());
          continue;
        }
        m.skip_before = AV_NOPTS_VALUE;
      }
      Status s = av::frame_from_av(m.frame.get(), out, m.sws);
      out.pts = m.decoded++;
      av_frame_unref(m.frame.get());
      if (!s) return s.with_context(m.info.path);
      return true;
    }
    if (err == AVERROR_EOF) {
      m.drained = true;
      break;
    }
    if (err != AVERROR(EAGAIN))
      return Status::error(m.info.path + ": decode error: " + av::error_string(err));
    if (m.input_done) {  // EAGAIN after flush should not happen; stop cleanly
      m.drained = true;
      break;
    }
    // Feed the decoder one more packet of our stream.
    err = av_read_frame(m.fmt.get(), m.pkt.get());
    if (err == AVERROR_EOF || (err < 0 && avio_feof(m.fmt->pb))) {
      m.input_done = true;
      avcodec_send_packet(m.dec.get(), nullptr);
      continue;
    }
    if (err < 0) return Status::error(m.info.path + ": read error: " + av::error_string(err));
    if (m.pkt->stream_index == m.stream) {
      err = avcodec_send_packet(m.dec.get(), m.pkt.get());
      if (err < 0 && err != AVERROR(EAGAIN) && err != AVERROR_EOF) {
        // Corrupt data: conceal like ffmpeg does (skip the packet, go on).
        if (++m.corrupt_packets <= 5)
          log_warning(m.info.path + ": skipping a corrupt packet: " + av::error_string(err));
      }
    }
    av_packet_unref(m.pkt.get());
  }
  return false;
}

Status VideoReader::seek(double seconds) {
  Impl& m = *impl_;
  if (!(seconds >= 0)) return Status::error(m.info.path + ": cannot seek to " + std::to_string(seconds) + " s");
  const AVStream* st = m.fmt->streams[m.stream];
  const int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
  const int64_t target = start + av_rescale_q(int64_t(std::llround(seconds * 1e6)),
                                              AVRational{1, 1000000}, st->time_base);
  const int err = av_seek_frame(m.fmt.get(), m.stream, target, AVSEEK_FLAG_BACKWARD);
  if (err < 0) return Status::error(m.info.path + ": cannot seek: " + av::error_string(err));
  avcodec_flush_buffers(m.dec.get());
  m.input_done = false;
  m.drained = false;
  m.skip_before = target;
  m.decoded = std::llround(seconds * m.info.frame_rate.to_double());
  return Status::ok();
}

Expected<std::vector<Frame>> read_all_frames(const std::string& path, VideoInfo* info_out,
                                             const ReadOptions& options,
                                             const ProgressFn& progress) {
  DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(path, options.threads));
  const VideoInfo& info = reader.info();
  if (info_out) *info_out = info;
  std::vector<Frame> frames;
  int64_t bytes = 0;
  while (options.max_frames <= 0 || int64_t(frames.size()) < options.max_frames) {
    Frame f;
    DYDCA_ASSIGN_OR_RETURN(auto got, reader.read(f));
    if (!got) break;
    bytes += f.byte_size();
    if (bytes > options.max_bytes)
      return Status::error(path + ": clip does not fit in the memory budget (" +
                           std::to_string(options.max_bytes >> 20) +
                           " MiB); limit the number of frames");
    frames.push_back(std::move(f));
    if (progress && !progress({"read", int64_t(frames.size()), info.frame_count}))
      return Status::error("interrupted");
  }
  if (frames.empty()) return Status::error(path + ": the video has no frames");
  if (info_out) info_out->frame_count = int64_t(frames.size());
  return frames;
}

}  // namespace dydca
