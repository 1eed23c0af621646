// The one header of libav deleters: every libav object dydca creates is owned
// by one of these unique_ptrs. Private to the media library (and container/).
#pragma once

#include <cerrno>
#include <memory>
#include <string>

#include "dydca/status.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/md5.h>
#include <libswscale/swscale.h>
}

namespace dydca::av {

struct InputFormatDeleter {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
struct OutputFormatDeleter {
  void operator()(AVFormatContext* c) const {
    if (c && c->pb && !(c->oformat->flags & AVFMT_NOFILE)) avio_closep(&c->pb);
    avformat_free_context(c);
  }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct Md5Deleter {
  void operator()(AVMD5* m) const { av_free(m); }
};
struct AvioContextDeleter {
  void operator()(AVIOContext* c) const {
    if (c) av_freep(&c->buffer);
    avio_context_free(&c);
  }
};

using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatDeleter>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using Md5Ptr = std::unique_ptr<AVMD5, Md5Deleter>;

using AvioContextPtr = std::unique_ptr<AVIOContext, AvioContextDeleter>;

// The Status code of a failed libav call.
inline StatusCode status_code(int err) {
  if (err == AVERROR(ENOMEM)) return StatusCode::kOutOfMemory;
  if (err == AVERROR_INVALIDDATA || err == AVERROR_EOF) return StatusCode::kInvalidData;
  if (err == AVERROR_DEMUXER_NOT_FOUND || err == AVERROR_DECODER_NOT_FOUND ||
      err == AVERROR_PATCHWELCOME || err == AVERROR(ENOSYS))
    return StatusCode::kUnsupported;
  return StatusCode::kIo;
}

inline std::string error_string(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

}  // namespace dydca::av
