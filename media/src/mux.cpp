#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "av_ptr.h"
#include "dydca/media.h"

namespace dydca {
namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

struct TempFileGuard {
  std::string path;
  bool keep = false;
  ~TempFileGuard() {
    if (!keep && !path.empty()) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  }
};

// Audio packets copied from another input, held until they are interleaved.
struct AudioSource {
  av::InputFormatPtr fmt;
  int stream = -1;
  std::vector<av::PacketPtr> packets;
};

Status load_audio(const std::string& path, AudioSource& src) {
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err < 0) return Status::error("cannot open " + path + ": " + av::error_string(err));
  src.fmt.reset(raw);
  if ((err = avformat_find_stream_info(raw, nullptr)) < 0)
    return Status::error(path + ": " + av::error_string(err));
  src.stream = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (src.stream < 0) return Status::ok();
  int64_t bytes = 0;
  while (true) {
    av::PacketPtr p(av_packet_alloc());
    err = av_read_frame(raw, p.get());
    if (err == AVERROR_EOF) break;
    if (err < 0) return Status::error(path + ": " + av::error_string(err));
    if (p->stream_index != src.stream) continue;
    bytes += p->size;
    if (bytes > (int64_t{1} << 30)) return Status::error(path + ": audio track too large");
    src.packets.push_back(std::move(p));
  }
  return Status::ok();
}

}  // namespace

Status write_video_file(const std::string& path, const EncodedVideo& video,
                        const MuxOptions& options) {
  std::string ext = lower_extension(path);
  const char* format = ext == ".mkv" ? "matroska" : (ext == ".mp4" || ext == ".m4v") ? "mp4"
                       : ext == ".mov" ? "mov" : nullptr;
  if (!format) return Status::error(path + ": output must end in .mkv or .mp4");
  if (!options.attachments.empty() && std::string(format) != "matroska")
    return Status::error(path + ": attachments need a Matroska (.mkv) file");
  if (video.packets.empty()) return Status::error(path + ": no video packets to write");
  if (video.width <= 0 || video.height <= 0 || !video.time_base.valid())
    return Status::error(path + ": invalid video parameters");

  std::random_device rd;
  TempFileGuard tmp{path + ".part" + std::to_string(rd() % 100000)};

  AVFormatContext* raw = nullptr;
  int err = avformat_alloc_output_context2(&raw, nullptr, format, tmp.path.c_str());
  if (err < 0 || !raw) return Status::error(path + ": " + av::error_string(err));
  av::OutputFormatPtr oc(raw);

  AVStream* vs = avformat_new_stream(raw, nullptr);
  if (!vs) return Status::error("out of memory");
  AVCodecParameters* vp = vs->codecpar;
  vp->codec_type = AVMEDIA_TYPE_VIDEO;
  vp->codec_id = AV_CODEC_ID_H264;
  vp->width = video.width;
  vp->height = video.height;
  vp->format = AV_PIX_FMT_YUV420P;
  if (!video.extradata.empty()) {
    vp->extradata = static_cast<uint8_t*>(
        av_mallocz(video.extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (!vp->extradata) return Status::error("out of memory");
    std::memcpy(vp->extradata, video.extradata.data(), video.extradata.size());
    vp->extradata_size = int(video.extradata.size());
  }
  const AVRational vtb{video.time_base.num, video.time_base.den};
  vs->time_base = vtb;
  vs->avg_frame_rate = {video.frame_rate.num, video.frame_rate.den};
  vs->r_frame_rate = vs->avg_frame_rate;

  AudioSource audio;
  AVStream* as = nullptr;
  if (!options.copy_audio_from.empty()) {
    DYDCA_TRY(load_audio(options.copy_audio_from, audio));
    if (audio.stream >= 0) {
      AVStream* in = audio.fmt->streams[audio.stream];
      if (avformat_query_codec(raw->oformat, in->codecpar->codec_id, FF_COMPLIANCE_NORMAL) != 1) {
        log_warning(std::string("audio codec ") + avcodec_get_name(in->codecpar->codec_id) +
                    " cannot be stored in " + format + "; audio dropped");
        audio.packets.clear();
      } else {
        as = avformat_new_stream(raw, nullptr);
        if (!as || avcodec_parameters_copy(as->codecpar, in->codecpar) < 0)
          return Status::error("out of memory");
        as->codecpar->codec_tag = 0;
        as->time_base = in->time_base;
      }
    }
  }

  for (const Attachment& a : options.attachments) {
    if (a.data.empty() || int64_t(a.data.size()) > kMaxAttachmentBytes)
      return Status::error("attachment " + a.filename + " is empty or too large");
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

  if ((err = avio_open(&raw->pb, tmp.path.c_str(), AVIO_FLAG_WRITE)) < 0)
    return Status::error("cannot write " + path + ": " + av::error_string(err));
  AVDictionary* hdr = nullptr;
  // MP4 drops tags it has no atom for unless asked to keep them.
  if (std::string(format) != "matroska") av_dict_set(&hdr, "movflags", "+use_metadata_tags", 0);
  err = avformat_write_header(raw, &hdr);
  av_dict_free(&hdr);
  if (err < 0)
    return Status::error(path + ": cannot write header: " + av::error_string(err));

  av::PacketPtr pkt(av_packet_alloc());
  size_t ai = 0;
  AVRational atb = as ? audio.fmt->streams[audio.stream]->time_base : AVRational{1, 1};
  auto write_audio_until = [&](int64_t v_dts, bool all) -> Status {
    while (as && ai < audio.packets.size()) {
      AVPacket* ap = audio.packets[ai].get();
      int64_t a_dts = ap->dts != AV_NOPTS_VALUE ? ap->dts : ap->pts;
      if (!all && a_dts != AV_NOPTS_VALUE && av_compare_ts(a_dts, atb, v_dts, vtb) > 0) break;
      ap->stream_index = as->index;
      av_packet_rescale_ts(ap, atb, as->time_base);
      ap->pos = -1;
      int e = av_interleaved_write_frame(raw, ap);
      if (e < 0) return Status::error(path + ": audio write failed: " + av::error_string(e));
      ++ai;
    }
    return Status::ok();
  };
  for (const EncodedPacket& p : video.packets) {
    DYDCA_TRY(write_audio_until(p.dts, false));
    if (av_new_packet(pkt.get(), int(p.data.size())) < 0) return Status::error("out of memory");
    std::memcpy(pkt->data, p.data.data(), p.data.size());
    pkt->pts = p.pts;
    pkt->dts = p.dts;
    pkt->duration = p.duration;
    if (p.keyframe) pkt->flags |= AV_PKT_FLAG_KEY;
    pkt->stream_index = vs->index;
    av_packet_rescale_ts(pkt.get(), vtb, vs->time_base);
    err = av_interleaved_write_frame(raw, pkt.get());
    if (err < 0) return Status::error(path + ": write failed: " + av::error_string(err));
  }
  DYDCA_TRY(write_audio_until(0, true));
  if ((err = av_write_trailer(raw)) < 0)
    return Status::error(path + ": cannot finish file: " + av::error_string(err));
  if ((err = avio_closep(&raw->pb)) < 0)
    return Status::error(path + ": " + av::error_string(err));
  std::error_code ec;
  std::filesystem::rename(tmp.path, path, ec);
  if (ec) return Status::error("cannot move output into place at " + path + ": " + ec.message());
  tmp.keep = true;
  return Status::ok();
}

Expected<DemuxedFile> demux_file(const std::string& path) {
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err < 0) return Status::error("cannot open " + path + ": " + av::error_string(err));
  av::InputFormatPtr fmt(raw);
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
  if (err < 0) return Status::error(path + ": cannot read stream info: " + av::error_string(err));
  DemuxedFile out;
  out.format = raw->iformat->name;
  if (raw->duration > 0) out.duration_s = raw->duration / double(AV_TIME_BASE);
  const AVDictionaryEntry* t = nullptr;
  while ((t = av_dict_get(raw->metadata, "", t, AV_DICT_IGNORE_SUFFIX)))
    out.tags[t->key] = t->value;
  int video = -1, audio = -1;
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
        return Status::error(path + ": attachment " + a.filename + " is too large");
      if (cp->extradata) a.data.assign(cp->extradata, cp->extradata + cp->extradata_size);
      out.attachments.push_back(std::move(a));
    }
    if (int(i) != video && int(i) != audio) st->discard = AVDISCARD_ALL;
  }
  if (video < 0) return Status::error(path + ": no video stream");
  AVStream* vs = raw->streams[video];
  EncodedVideo& v = out.video;
  v.codec = avcodec_get_name(vs->codecpar->codec_id);
  v.width = vs->codecpar->width;
  v.height = vs->codecpar->height;
  AVRational rate = av_guess_frame_rate(raw, vs, nullptr);
  if (rate.num > 0 && rate.den > 0) v.frame_rate = {rate.num, rate.den};
  v.time_base = {vs->time_base.num, vs->time_base.den};
  if (vs->codecpar->extradata_size > 0)
    v.extradata.assign(vs->codecpar->extradata,
                       vs->codecpar->extradata + vs->codecpar->extradata_size);
  out.has_audio = audio >= 0;
  av::PacketPtr pkt(av_packet_alloc());
  int64_t bytes = 0;
  while (true) {
    err = av_read_frame(raw, pkt.get());
    if (err == AVERROR_EOF) break;
    if (err < 0) {
      log_warning(path + ": stopped reading at a damaged spot: " + av::error_string(err));
      break;
    }
    if (pkt->stream_index == video) {
      bytes += pkt->size;
      if (bytes > (int64_t{4} << 30)) return Status::error(path + ": video track too large");
      EncodedPacket p;
      p.data.assign(pkt->data, pkt->data + pkt->size);
      p.pts = pkt->pts;
      p.dts = pkt->dts;
      p.duration = pkt->duration;
      p.keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
      v.packets.push_back(std::move(p));
    } else if (pkt->stream_index == audio) {
      out.audio_bytes += pkt->size;
    }
    av_packet_unref(pkt.get());
  }
  // Matroska stores presentation times only: the demuxer leaves the decode
  // times of reordered (B-frame) packets unset. Rebuild them so the stream can
  // be muxed again: dts[i] = i-th smallest pts - D, with the smallest D >= 0
  // that keeps every dts <= its pts (monotonic by construction).
  auto& pk = v.packets;
  bool missing = false;
  for (const auto& p : pk) missing |= p.dts == AV_NOPTS_VALUE || p.pts == AV_NOPTS_VALUE;
  if (missing) {
    bool have_pts = true;
    for (const auto& p : pk) have_pts &= p.pts != AV_NOPTS_VALUE;
    if (have_pts && !pk.empty()) {
      std::vector<int64_t> sorted;
      for (const auto& p : pk) sorted.push_back(p.pts);
      std::sort(sorted.begin(), sorted.end());
      int64_t shift = 0;
      for (size_t i = 0; i < pk.size(); ++i) shift = std::max(shift, sorted[i] - pk[i].pts);
      for (size_t i = 0; i < pk.size(); ++i) pk[i].dts = sorted[i] - shift;
    }
  }
  return out;
}

}  // namespace dydca
