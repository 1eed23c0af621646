// Output sinks of the decoder: y4m (file or stdout), x264 .mp4/.mkv, null
// (the md5 of output frames is media's FrameMd5).


#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "dydca/atomic_file.h"
#include "dydca/decoder.h"

namespace dydca {

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// y4m to a file (written under a temporary name, renamed by finish: a
// PendingFile) or to stdout ("-", streamed: a pipe cannot be taken back).
class Y4mSink final : public FrameSink {
 public:
  explicit Y4mSink(std::string path) : path_(std::move(path)) {}
  ~Y4mSink() override { abort(); }
  Status open(const SinkFormat& f) override {
    if (path_ != "-") pending_.emplace(path_);
    DYDCA_ASSIGN_OR_RETURN(auto w, Y4mWriter::open(pending_ ? pending_->temp_path() : path_,
                                                   f.width, f.height, f.frame_rate));
    writer_.emplace(std::move(w));
    return Status::ok();
  }
  Status write(const Frame& frame) override {
    if (!writer_) return Status::error("y4m: not open");
    return writer_->write(frame);
  }
  Status finish() override {
    if (!writer_) return Status::error("y4m: not open");
    Status s = writer_->close();
    writer_.reset();
    if (s && pending_) s = pending_->commit();
    pending_.reset();  // removes the temporary file unless committed
    return s;
  }
  void abort() override {
    if (writer_) {
      (void)writer_->close();
      writer_.reset();
    }
    pending_.reset();
  }

 private:
  std::string path_;
  std::optional<PendingFile> pending_;
  std::optional<Y4mWriter> writer_;
};

// x264 straight into an .mp4/.mkv, packet by packet as the encoder hands them
// out (with the input's audio interleaved); nothing grows with the video's
// length. The file appears only at finish (VideoFileWriter renames a
// temporary file; abort or destruction removes it).
class VideoFileSink final : public FrameSink {
 public:
  VideoFileSink(std::string path, int crf, std::string preset)
      : path_(std::move(path)), crf_(crf), preset_(std::move(preset)) {}
  Status open(const SinkFormat& f) override {
    X264Config cfg;
    cfg.preset = preset_;
    cfg.crf = crf_;
    // x264 needs even 4:2:0 sizes: odd HR sizes are padded by one replicated
    // row/column (the y4m and md5 outputs keep the exact size).
    const int w = (f.width + 1) & ~1, h = (f.height + 1) & ~1;
    if (w != f.width || h != f.height) {
      log_warning(path_ + ": x264 needs even sizes; " + std::to_string(f.width) + "x" +
                  std::to_string(f.height) + " padded to " + std::to_string(w) + "x" +
                  std::to_string(h));
      padded_ = Frame::blank(w, h);
    }
    auto e = VideoEncoder::open(w, h, f.frame_rate, cfg);
    if (!e) return e.status().with_context("x264 for " + path_);
    // The avcC extradata exists from open(), so the file's header can be
    // written before the first packet.
    MuxOptions mux;
    mux.copy_audio_from = f.audio_from;
    DYDCA_ASSIGN_OR_RETURN(auto wr, VideoFileWriter::open(path_, e->output(), mux));
    encoder_.emplace(std::move(*e));
    writer_.emplace(std::move(wr));
    return Status::ok();
  }
  Status write(const Frame& frame) override {
    if (!encoder_ || !writer_) return Status::error("x264: not open");
    if (padded_.empty()) {
      DYDCA_TRY(encoder_->encode(frame));
      return write_packets();
    }
    for (int p = 0; p < 3; ++p) {  // copy, replicating the last row and column
      const int iw = frame.plane_width(p), ih = frame.plane_height(p);
      const int ow = padded_.plane_width(p), oh = padded_.plane_height(p);
      for (int r = 0; r < oh; ++r) {
        uint8_t* dst = padded_.plane(p) + size_t(r) * ow;
        std::memcpy(dst, frame.plane(p) + size_t(std::min(r, ih - 1)) * iw, size_t(iw));
        for (int c = iw; c < ow; ++c) dst[c] = dst[iw - 1];
      }
    }
    padded_.pts = frame.pts;
    DYDCA_TRY(encoder_->encode(padded_));
    return write_packets();
  }
  Status finish() override {
    if (!encoder_ || !writer_) return Status::error("x264: not open");
    Status s = encoder_->finish();
    if (s) s = write_packets();
    if (s) s = writer_->finish();  // on failure it removes its temporary file
    if (!s) writer_->abort();
    writer_.reset();
    encoder_.reset();
    return s;
  }
  void abort() override {
    if (writer_) writer_->abort();
    writer_.reset();
    encoder_.reset();
  }

 private:
  Status write_packets() {
    for (const EncodedPacket& p : encoder_->take_packets()) DYDCA_TRY(writer_->write(p));
    return Status::ok();
  }

  std::string path_;
  int crf_;
  std::string preset_;
  std::optional<VideoEncoder> encoder_;
  std::optional<VideoFileWriter> writer_;
  Frame padded_;  // even-sized copy of odd frames, allocated once
};

class NullSink final : public FrameSink {
 public:
  Status open(const SinkFormat&) override { return Status::ok(); }
  Status write(const Frame&) override { return Status::ok(); }
  Status finish() override { return Status::ok(); }
};

}  // namespace

Expected<Muxer> parse_muxer(const std::string& name) {
  if (name == "auto" || name.empty()) return Muxer::kAuto;
  if (name == "y4m") return Muxer::kY4m;
  if (name == "mp4" || name == "mkv") return Muxer::kVideo;
  if (name == "md5") return Muxer::kMd5;
  if (name == "null") return Muxer::kNull;
  return Status::error("unknown muxer '" + name + "' (auto, y4m, mp4, mkv, md5, null)");
}

Expected<std::unique_ptr<FrameSink>> make_sink(Muxer muxer, const std::string& output,
                                               const DecodeOptions& options) {
  if (muxer == Muxer::kMd5 || muxer == Muxer::kNull)
    return std::unique_ptr<FrameSink>(new NullSink);
  if (output.empty())
    return Status::error("no output: give -o FILE (.y4m, .mp4, .mkv, -) or --muxer md5|null");
  if (muxer == Muxer::kAuto) {
    const std::string ext = lower_extension(output);
    if (output == "-" || ext == ".y4m") {
      muxer = Muxer::kY4m;
    } else if (ext == ".mp4" || ext == ".mkv") {
      muxer = Muxer::kVideo;
    } else {
      return Status::error("output " + output +
                           ": unknown extension (use .y4m, .mp4, .mkv, - for y4m on stdout, "
                           "or --muxer)");
    }
  }
  if (muxer == Muxer::kY4m) return std::unique_ptr<FrameSink>(new Y4mSink(output));
  if (output == "-") return Status::error("mp4/mkv cannot be written to stdout; use y4m");
  const std::string ext = lower_extension(output);
  if (ext != ".mp4" && ext != ".mkv")
    return Status::error("output " + output + ": mp4/mkv output needs a .mp4 or .mkv name");
  if (options.video_crf < 0 || options.video_crf > 51)
    return Status::error("video CRF must be 0..51");
  return std::unique_ptr<FrameSink>(
      new VideoFileSink(output, options.video_crf, options.video_preset));
}

}  // namespace dydca
