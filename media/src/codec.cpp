#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "av_ptr.h"
#include "convert.h"
#include "dydca/media.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace dydca {

// ---- EncodedVideo ------------------------------------------------------------

int64_t EncodedVideo::total_bytes() const {
  int64_t n = 0;
  for (const auto& p : packets) n += int64_t(p.data.size());
  return n;
}

double EncodedVideo::duration_s() const {
  double fps = frame_rate.to_double();
  return fps > 0 ? double(packets.size()) / fps : 0.0;
}

double EncodedVideo::bitrate_kbps() const {
  double d = duration_s();
  return d > 0 ? double(total_bytes()) * 8.0 / 1000.0 / d : 0.0;
}

// ---- encoder -------------------------------------------------------------------

struct VideoEncoder::Impl {
  av::CodecContextPtr ctx;
  av::FramePtr frame{av_frame_alloc()};
  av::PacketPtr pkt{av_packet_alloc()};
  EncodedVideo out;
  int64_t next_pts = 0;
  bool finished = false;

  Status drain_packets() {
    while (true) {
      int err = avcodec_receive_packet(ctx.get(), pkt.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return Status::ok();
      if (err < 0) return Status::error("x264: " + av::error_string(err));
      EncodedPacket p;
      p.data.assign(pkt->data, pkt->data + pkt->size);
      p.pts = pkt->pts;
      p.dts = pkt->dts;
      p.duration = pkt->duration > 0 ? pkt->duration : 1;
      p.keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
      out.packets.push_back(std::move(p));
      av_packet_unref(pkt.get());
    }
  }
};

VideoEncoder::VideoEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoEncoder::VideoEncoder(VideoEncoder&&) noexcept = default;
VideoEncoder& VideoEncoder::operator=(VideoEncoder&&) noexcept = default;
VideoEncoder::~VideoEncoder() = default;
EncodedVideo& VideoEncoder::output() { return impl_->out; }
std::vector<EncodedPacket> VideoEncoder::take_packets() {
  std::vector<EncodedPacket> taken;
  taken.swap(impl_->out.packets);
  return taken;
}

Expected<VideoEncoder> VideoEncoder::open(int width, int height, Rational frame_rate,
                                          const X264Config& config, int pass,
                                          const std::string& stats_path) {
  if (width <= 0 || height <= 0 || width % 2 || height % 2 || width > kMaxDimension ||
      height > kMaxDimension)
    return Status::error("x264 needs even frame sizes up to " + std::to_string(kMaxDimension) +
                         ", got " + std::to_string(width) + "x" + std::to_string(height));
  if (!frame_rate.valid()) return Status::error("x264: invalid frame rate");
  if (config.bitrate_kbps < 0 || config.crf < 0 || config.crf > 51)
    return Status::error("x264: crf must be 0..51 and bitrate positive");
  if (config.two_pass && config.bitrate_kbps <= 0)
    return Status::error("x264: two-pass encoding needs a target bitrate");
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) return Status::error("this FFmpeg has no libx264 encoder");
  auto impl = std::make_unique<Impl>();
  impl->ctx.reset(avcodec_alloc_context3(codec));
  AVCodecContext* c = impl->ctx.get();
  c->width = width;
  c->height = height;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  c->time_base = {frame_rate.den, frame_rate.num};
  c->framerate = {frame_rate.num, frame_rate.den};
  c->gop_size = config.gop > 0 ? config.gop : 250;
  c->thread_count = config.threads;
  c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  // avcC extradata for MP4/MKV
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "preset", config.preset.c_str(), 0);
  if (!config.tune.empty()) av_dict_set(&opts, "tune", config.tune.c_str(), 0);
  if (config.bitrate_kbps > 0) {
    c->bit_rate = int64_t(config.bitrate_kbps) * 1000;
  } else {
    av_dict_set(&opts, "crf", std::to_string(config.crf).c_str(), 0);
  }
  if (pass == 1) c->flags |= AV_CODEC_FLAG_PASS1;
  if (pass == 2) c->flags |= AV_CODEC_FLAG_PASS2;
  if (pass != 0) av_dict_set(&opts, "stats", stats_path.c_str(), 0);
  int err = avcodec_open2(c, codec, &opts);
  AVDictionaryEntry* unused = av_dict_get(opts, "", nullptr, AV_DICT_IGNORE_SUFFIX);
  std::string bad = unused ? unused->key : "";
  av_dict_free(&opts);
  if (err < 0) return Status::error("cannot open x264 (preset '" + config.preset + "'): " +
                                    av::error_string(err));
  if (!bad.empty()) return Status::error("x264 rejected option '" + bad + "'");
  impl->frame->format = AV_PIX_FMT_YUV420P;
  impl->frame->width = width;
  impl->frame->height = height;
  if ((err = av_frame_get_buffer(impl->frame.get(), 0)) < 0)
    return Status::error("out of memory: " + av::error_string(err));
  EncodedVideo& o = impl->out;
  o.width = width;
  o.height = height;
  o.frame_rate = frame_rate;
  o.time_base = {c->time_base.num, c->time_base.den};
  if (c->extradata && c->extradata_size > 0)
    o.extradata.assign(c->extradata, c->extradata + c->extradata_size);
  return VideoEncoder(std::move(impl));
}

Status VideoEncoder::encode(const Frame& frame) {
  Impl& m = *impl_;
  if (m.finished) return Status::error("x264: encode after finish");
  if (frame.width != m.out.width || frame.height != m.out.height)
    return Status::error("x264: frame size " + std::to_string(frame.width) + "x" +
                         std::to_string(frame.height) + " differs from the stream's");
  int err = av_frame_make_writable(m.frame.get());
  if (err < 0) return Status::error("x264: " + av::error_string(err));
  DYDCA_TRY(av::frame_to_av(frame, m.frame.get()));
  m.frame->pts = m.next_pts++;
  err = avcodec_send_frame(m.ctx.get(), m.frame.get());
  if (err < 0) return Status::error("x264: " + av::error_string(err));
  return m.drain_packets();
}

Status VideoEncoder::finish() {
  Impl& m = *impl_;
  if (m.finished) return Status::ok();
  m.finished = true;
  int err = avcodec_send_frame(m.ctx.get(), nullptr);
  if (err < 0) return Status::error("x264 flush: " + av::error_string(err));
  return m.drain_packets();
}

Expected<EncodedVideo> encode_h264(const std::vector<Frame>& frames, Rational frame_rate,
                                   const X264Config& config, const ProgressFn& progress) {
  if (frames.empty()) return Status::error("x264: no frames to encode");
  const bool two = config.two_pass && config.bitrate_kbps > 0;
  if (config.two_pass && !two) return Status::error("x264: two-pass encoding needs --bitrate");
  std::string stats;
  if (two) {
    std::random_device rd;
    stats = (std::filesystem::temp_directory_path() /
             ("dydca-x264-" + std::to_string(rd()) + ".log"))
                .string();
  }
  struct StatsCleanup {
    std::string p;
    ~StatsCleanup() {
      if (p.empty()) return;
      std::error_code ec;
      std::filesystem::remove(p, ec);
      std::filesystem::remove(p + ".mbtree", ec);
      std::filesystem::remove(p + ".temp", ec);
      std::filesystem::remove(p + ".mbtree.temp", ec);
    }
  } cleanup{stats};
  const int passes = two ? 2 : 1;
  for (int pass = 1; pass <= passes; ++pass) {
    DYDCA_ASSIGN_OR_RETURN(auto enc, VideoEncoder::open(frames[0].width, frames[0].height,
                                                        frame_rate, config, two ? pass : 0, stats));
    int64_t total = int64_t(frames.size()) * passes;
    for (size_t i = 0; i < frames.size(); ++i) {
      DYDCA_TRY(enc.encode(frames[i]));
      if (progress && !progress({two ? (pass == 1 ? "x264 pass 1" : "x264 pass 2") : "x264",
                                 int64_t(i + 1) + int64_t(frames.size()) * (pass - 1), total}))
        return Status::error("interrupted");
    }
    DYDCA_TRY(enc.finish());
    if (pass == passes) {
      EncodedVideo out = std::move(enc.output());
      if (out.packets.size() != frames.size())
        return Status::error("x264 produced " + std::to_string(out.packets.size()) +
                             " packets for " + std::to_string(frames.size()) + " frames");
      return out;
    }
  }
  return Status::error("unreachable");
}

// ---- decoder -------------------------------------------------------------------

struct VideoDecoder::Impl {
  av::CodecContextPtr ctx;
  av::PacketPtr pkt{av_packet_alloc()};
  av::FramePtr frame{av_frame_alloc()};
  av::SwsPtr sws;
  int corrupt = 0;
  int64_t decoded = 0;
};

VideoDecoder::VideoDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoDecoder::VideoDecoder(VideoDecoder&&) noexcept = default;
VideoDecoder& VideoDecoder::operator=(VideoDecoder&&) noexcept = default;
VideoDecoder::~VideoDecoder() = default;

Expected<VideoDecoder> VideoDecoder::open(const EncodedVideo& params, int threads) {
  if (params.codec != "h264") return Status::error("video codec '" + params.codec +
                                                   "' is not H.264");
  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_H264);
  if (!codec) return Status::error("this FFmpeg has no H.264 decoder");
  auto impl = std::make_unique<Impl>();
  impl->ctx.reset(avcodec_alloc_context3(codec));
  AVCodecContext* c = impl->ctx.get();
  if (!params.extradata.empty()) {
    if (params.extradata.size() > (1u << 20)) return Status::error("H.264 extradata too large");
    c->extradata = static_cast<uint8_t*>(
        av_mallocz(params.extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (!c->extradata) return Status::error("out of memory");
    std::memcpy(c->extradata, params.extradata.data(), params.extradata.size());
    c->extradata_size = int(params.extradata.size());
  }
  c->width = params.width;
  c->height = params.height;
  c->thread_count = threads;
  c->pkt_timebase = {params.time_base.num, params.time_base.den};
  int err = avcodec_open2(c, codec, nullptr);
  if (err < 0) return Status::error("cannot open H.264 decoder: " + av::error_string(err));
  return VideoDecoder(std::move(impl));
}

Status VideoDecoder::send(const EncodedPacket* packet) {
  Impl& m = *impl_;
  int err;
  if (!packet) {
    err = avcodec_send_packet(m.ctx.get(), nullptr);
  } else {
    if (av_new_packet(m.pkt.get(), int(packet->data.size())) < 0)
      return Status::error("out of memory");
    std::memcpy(m.pkt->data, packet->data.data(), packet->data.size());
    m.pkt->pts = packet->pts;
    m.pkt->dts = packet->dts;
    m.pkt->duration = packet->duration;
    if (packet->keyframe) m.pkt->flags |= AV_PKT_FLAG_KEY;
    err = avcodec_send_packet(m.ctx.get(), m.pkt.get());
    av_packet_unref(m.pkt.get());
  }
  if (err == AVERROR_EOF) return Status::ok();
  if (err == AVERROR(EAGAIN))
    return Status::error("H.264 decoder: receive frames before sending more packets");
  if (err < 0) {
    // Damaged data: the decoder conceals what it can; keep going.
    if (++m.corrupt <= 5) log_warning("H.264: skipping a corrupt packet: " + av::error_string(err));
  }
  return Status::ok();
}

Expected<bool> VideoDecoder::receive(Frame& out) {
  Impl& m = *impl_;
  int err = avcodec_receive_frame(m.ctx.get(), m.frame.get());
  if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return false;
  if (err < 0) return Status::error("H.264 decode: " + av::error_string(err));
  Status s = av::frame_from_av(m.frame.get(), out, m.sws);
  out.pts = m.decoded++;
  av_frame_unref(m.frame.get());
  if (!s) return s;
  return true;
}

Expected<std::vector<Frame>> decode_h264(const EncodedVideo& video, int threads) {
  DYDCA_ASSIGN_OR_RETURN(auto dec, VideoDecoder::open(video, threads));
  std::vector<Frame> frames;
  auto pull = [&]() -> Status {
    while (true) {
      Frame f;
      DYDCA_ASSIGN_OR_RETURN(auto got, dec.receive(f));
      if (!got) return Status::ok();
      frames.push_back(std::move(f));
    }
  };
  for (const auto& p : video.packets) {
    DYDCA_TRY(dec.send(&p));
    DYDCA_TRY(pull());
  }
  DYDCA_TRY(dec.send(nullptr));
  DYDCA_TRY(pull());
  return frames;
}

}  // namespace dydca
