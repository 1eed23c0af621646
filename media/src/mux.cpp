// Streaming MP4/MKV muxer (VideoFileWriter) and write_video_file on top of it.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>

#include "av_ptr.h"
#include "dydca/atomic_file.h"
#include "dydca/media.h"

namespace dydca {
namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Copies the first audio stream of another input, one packet at a time.
struct AudioCopy {
  std::string path;
  av::InputFormatPtr in;
  int stream = -1;
  AVStream* out = nullptr;  // owned by the output context
  AVRational in_tb{1, 1};
  av::PacketPtr pending{av_packet_alloc()};  // read, not yet written
  bool has_pending = false;
  bool done = false;

  Status open(const std::string& src) {
    path = src;
    AVFormatContext* raw = nullptr;
    int err = avformat_open_input(&raw, src.c_str(), nullptr, nullptr);
    if (err < 0) return Status::error("cannot open " + src + ": " + av::error_string(err));
    in.reset(raw);
    if ((err = avformat_find_stream_info(raw, nullptr)) < 0)
      return Status::error(src + ": " + av::error_string(err));
    stream = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
    if (stream < 0) {
      done = true;
      return Status::ok();
    }
    for (unsigned i = 0; i < raw->nb_streams; ++i)
      if (int(i) != stream) raw->streams[i]->discard = AVDISCARD_ALL;
    in_tb = raw->streams[stream]->time_base;
    return pending ? Status::ok() : Status::error("out of memory");
  }

  // Next audio packet into `pending`; false at the end of the audio (a damaged
  // spot in the source ends the audio with a warning: the video matters more).
  bool next() {
    if (has_pending) return true;
    while (!done) {
      int err = av_read_frame(in.get(), pending.get());
      if (err == AVERROR_EOF) {
        done = true;
        break;
      }
      if (err < 0) {
        log_warning(path + ": audio copy stopped at a damaged spot: " + av::error_string(err));
        done = true;
        break;
      }
      if (pending->stream_index == stream) return has_pending = true;
      av_packet_unref(pending.get());
    }
    return false;
  }
};

}  // namespace

struct VideoFileWriter::Impl {
  std::string path;
  std::optional<PendingFile> file;  // written under its temporary name
  av::OutputFormatPtr oc;
  AVStream* vs = nullptr;
  AVRational vtb{1, 25};
  av::PacketPtr pkt{av_packet_alloc()};
  AudioCopy audio;
  bool copy_audio = false;
  int64_t written = 0;
  bool finished = false;
  bool failed = false;

  ~Impl() { discard(); }

  // Closes the output and removes the temporary file (nothing left behind).
  void discard() {
    if (finished) return;
    oc.reset();  // closes the file first
    if (file) file->discard();
    failed = true;
  }

  Status fail(Status s) {
    discard();
    return s;
  }

  // Audio up to video decode time v_dts (all of it when `all`).
  Status write_audio_until(int64_t v_dts, bool all) {
    if (!copy_audio) return Status::ok();
    AVRational out_tb = audio.out->time_base;
    while (audio.next()) {
      AVPacket* ap = audio.pending.get();
      int64_t a_dts = ap->dts != AV_NOPTS_VALUE ? ap->dts : ap->pts;
      if (!all && a_dts != AV_NOPTS_VALUE && v_dts != AV_NOPTS_VALUE &&
          av_compare_ts(a_dts, audio.in_tb, v_dts, vtb) > 0)
        break;
      ap->stream_index = audio.out->index;
      av_packet_rescale_ts(ap, audio.in_tb, out_tb);
      ap->pos = -1;
      audio.has_pending = false;
      int e = av_interleaved_write_frame(oc.get(), ap);  // takes the packet's data
      av_packet_unref(ap);
      if (e < 0) return Status::error(path + ": audio write failed: " + av::error_string(e));
    }
    return Status::ok();
  }
};

VideoFileWriter::VideoFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoFileWriter::VideoFileWriter(VideoFileWriter&&) noexcept = default;
VideoFileWriter& VideoFileWriter::operator=(VideoFileWriter&&) noexcept = default;
VideoFileWriter::~VideoFileWriter() = default;
int64_t VideoFileWriter::packets_written() const { return impl_ ? impl_->written : 0; }

Expected<VideoFileWriter> VideoFileWriter::open(const std::string& path, const EncodedVideo& params,
                                                const MuxOptions& options) {
  std::string ext = lower_extension(path);
  const char* format = ext == ".mkv"                      ? "matroska"
                       : (ext == ".mp4" || ext == ".m4v") ? "mp4"
                       : ext == ".mov"                    ? "mov"
                                                          : nullptr;
  if (!format) return Status::error(path + ": output must end in .mkv or .mp4");
  const bool matroska = std::string(format) == "matroska";
  if (!options.attachments.empty() && !matroska)
    return Status::error(path + ": attachments need a Matroska (.mkv) file");
  if (params.width <= 0 || params.height <= 0 || !params.time_base.valid())
    return Status::error(path + ": invalid video parameters");
  const AVCodecDescriptor* desc = avcodec_descriptor_get_by_name(params.codec.c_str());
  if (!desc || desc->type != AVMEDIA_TYPE_VIDEO)
    return Status::error(path + ": unknown video codec '" + params.codec + "'");
  for (const Attachment& a : options.attachments)
    if (a.data.empty() || int64_t(a.data.size()) > kMaxAttachmentBytes)
      return Status::error("attachment " + a.filename + " is empty or too large");

  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.path = path;
  if (!m.pkt) return Status::error("out of memory");
  m.file.emplace(path);  // from here on the destructor removes the temporary file
  const std::string& temp = m.file->temp_path();
  AVFormatContext* raw = nullptr;
  int err = avformat_alloc_output_context2(&raw, nullptr, format, temp.c_str());
  if (err < 0 || !raw) return Status::error(path + ": " + av::error_string(err));
  m.oc.reset(raw);

  AVStream* vs = avformat_new_stream(raw, nullptr);
  if (!vs) return Status::error("out of memory");
  AVCodecParameters* vp = vs->codecpar;
  vp->codec_type = AVMEDIA_TYPE_VIDEO;
  vp->codec_id = desc->id;
  vp->width = params.width;
  vp->height = params.height;
  vp->format = AV_PIX_FMT_YUV420P;
  if (!params.extradata.empty()) {
    vp->extradata =
        static_cast<uint8_t*>(av_mallocz(params.extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (!vp->extradata) return Status::error("out of memory");
    std::memcpy(vp->extradata, params.extradata.data(), params.extradata.size());
    vp->extradata_size = int(params.extradata.size());
  }
  m.vtb = {params.time_base.num, params.time_base.den};
  vs->time_base = m.vtb;
  vs->avg_frame_rate = {params.frame_rate.num, params.frame_rate.den};
  vs->r_frame_rate = vs->avg_frame_rate;
  m.vs = vs;

  if (!options.copy_audio_from.empty()) {
    DYDCA_TRY(m.audio.open(options.copy_audio_from));
    if (m.audio.stream >= 0) {
      AVStream* in = m.audio.in->streams[m.audio.stream];
      if (avformat_query_codec(raw->oformat, in->codecpar->codec_id, FF_COMPLIANCE_NORMAL) != 1) {
        log_warning(std::string("audio codec ") + avcodec_get_name(in->codecpar->codec_id) +
                    " cannot be stored in " + format + "; audio dropped");
      } else {
        AVStream* as = avformat_new_stream(raw, nullptr);
        if (!as || avcodec_parameters_copy(as->codecpar, in->codecpar) < 0)
          return Status::error("out of memory");
        as->codecpar->codec_tag = 0;
        as->time_base = in->time_base;
        m.audio.out = as;
        m.copy_audio = true;
      }
    }
  }

  // Matroska writes its Attachments element in the header (FFmpeg 5.1's
  // mkv_write_header), and streams cannot be added after it: every attachment
  // must be known here.
  for (const Attachment& a : options.attachments) {
    AVStream* st = avformat_new_stream(raw, nullptr);
    if (!st) return Status::error("out of memory");
    st->codecpar->codec_type = AVMEDIA_TYPE_ATTACHMENT;
    st->codecpar->extradata =
        static_cast<uint8_t*>(av_mallocz(a.data.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (!st->codecpar->extradata) return Status::error("out of memory");
    std::memcpy(st->codecpar->extradata, a.data.data(), a.data.size());
    st->codecpar->extradata_size = int(a.data.size());
    av_dict_set(&st->metadata, "filename", a.filename.c_str(), 0);
    av_dict_set(&st->metadata, "mimetype", a.mimetype.c_str(), 0);
  }
  for (const auto& [k, v] : options.tags) av_dict_set(&raw->metadata, k.c_str(), v.c_str(), 0);

  if ((err = avio_open(&raw->pb, temp.c_str(), AVIO_FLAG_WRITE)) < 0)
    return Status::error("cannot write " + path + ": " + av::error_string(err));
  AVDictionary* hdr = nullptr;
  // MP4 drops tags it has no atom for unless asked to keep them.
  if (!matroska) av_dict_set(&hdr, "movflags", "+use_metadata_tags", 0);
  err = avformat_write_header(raw, &hdr);
  av_dict_free(&hdr);
  if (err < 0) return Status::error(path + ": cannot write header: " + av::error_string(err));
  return VideoFileWriter(std::move(impl));
}

Status VideoFileWriter::write(const EncodedPacket& p) {
  if (!impl_) return Status::error("video file writer: moved from");
  Impl& m = *impl_;
  if (m.finished || m.failed) return Status::error(m.path + ": write after finish or abort");
  const int64_t v_dts = p.dts != AV_NOPTS_VALUE ? p.dts : p.pts;
  Status s = m.write_audio_until(v_dts, false);
  if (!s) return m.fail(s);
  AVPacket* pkt = m.pkt.get();
  if (p.data.size() > size_t(INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE) ||
      av_new_packet(pkt, int(p.data.size())) < 0)
    return m.fail(Status::error("out of memory"));
  std::memcpy(pkt->data, p.data.data(), p.data.size());
  pkt->pts = p.pts;
  pkt->dts = p.dts;
  pkt->duration = p.duration;
  if (p.keyframe) pkt->flags |= AV_PKT_FLAG_KEY;
  pkt->stream_index = m.vs->index;
  av_packet_rescale_ts(pkt, m.vtb, m.vs->time_base);
  int err = av_interleaved_write_frame(m.oc.get(), pkt);
  av_packet_unref(pkt);
  if (err < 0) return m.fail(Status::error(m.path + ": write failed: " + av::error_string(err)));
  ++m.written;
  return Status::ok();
}

Status VideoFileWriter::finish() {
  if (!impl_) return Status::error("video file writer: moved from");
  Impl& m = *impl_;
  if (m.finished) return Status::ok();
  if (m.failed) return Status::error(m.path + ": finish after a failed write or abort");
  if (m.written == 0) return m.fail(Status::error(m.path + ": no video packets to write"));
  Status s = m.write_audio_until(0, true);
  if (!s) return m.fail(s);
  int err = av_write_trailer(m.oc.get());
  if (err < 0)
    return m.fail(Status::error(m.path + ": cannot finish file: " + av::error_string(err)));
  if ((err = avio_closep(&m.oc->pb)) < 0)
    return m.fail(Status::error(m.path + ": " + av::error_string(err)));
  m.oc.reset();
  if (Status moved = m.file->commit(); !moved) return m.fail(moved);
  m.finished = true;
  return Status::ok();
}

void VideoFileWriter::abort() {
  if (impl_) impl_->discard();
}

Status write_video_file(const std::string& path, const EncodedVideo& video,
                        const MuxOptions& options) {
  if (video.packets.empty()) return Status::error(path + ": no video packets to write");
  DYDCA_ASSIGN_OR_RETURN(auto writer, VideoFileWriter::open(path, video, options));
  for (const EncodedPacket& p : video.packets) DYDCA_TRY(writer.write(p));
  return writer.finish();
}

}  // namespace dydca
