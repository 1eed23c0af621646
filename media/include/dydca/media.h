// dydca media library: everything dydca does with libav* (decode any input,
// scale, x264 encode, H.264 decode, Y4M, MP4/MKV mux and demux). No libav type
// appears here; every object owns its libav state and is move-only.
//
// Usage:
//   auto reader = dydca::VideoReader::open("in.mp4");
//   if (!reader) { fprintf(stderr, "%s\n", reader.error_message().c_str()); return 1; }
//   dydca::Frame f;
//   while (true) {
//     auto got = reader->read(f);          // 8-bit 4:2:0 whatever the source
//     if (!got) return fail(got.status());  // real error
//     if (!*got) break;                     // end of stream, decoder drained
//   }
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dydca/log.h"
#include "dydca/status.h"

namespace dydca {

// Hard caps checked before any allocation driven by input data.
inline constexpr int kMaxDimension = 8192;
inline constexpr int64_t kMaxFramePixels = int64_t{8192} * 4352;

struct Rational {
  int num = 0;
  int den = 1;
  double to_double() const { return den ? double(num) / den : 0.0; }
  bool valid() const { return num > 0 && den > 0; }
};

// An 8-bit YUV 4:2:0 picture with tightly packed planes (stride == width).
// Chroma planes are ceil(w/2) x ceil(h/2), so odd sizes are representable.
struct Frame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> y, u, v;
  int64_t pts = 0;  // presentation index in the stream's time base

  static Frame blank(int width, int height, uint8_t luma = 16, uint8_t chroma = 128);
  int chroma_width() const { return (width + 1) / 2; }
  int chroma_height() const { return (height + 1) / 2; }
  bool empty() const { return width == 0 || height == 0; }
  size_t byte_size() const { return y.size() + u.size() + v.size(); }
  uint8_t* plane(int i) { return i == 0 ? y.data() : i == 1 ? u.data() : v.data(); }
  const uint8_t* plane(int i) const { return i == 0 ? y.data() : i == 1 ? u.data() : v.data(); }
  int plane_width(int i) const { return i == 0 ? width : chroma_width(); }
  int plane_height(int i) const { return i == 0 ? height : chroma_height(); }
  bool same_pixels(const Frame& o) const {
    return width == o.width && height == o.height && y == o.y && u == o.u && v == o.v;
  }
};

// ---- input -----------------------------------------------------------------

struct VideoInfo {
  std::string path;
  std::string format;       // demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;        // video codec name, e.g. "h264"
  std::string pixel_format; // source pixel format before conversion to 4:2:0
  int width = 0;
  int height = 0;
  Rational frame_rate;      // average rate (VFR sources are treated as constant at it)
  bool variable_frame_rate = false;
  int64_t frame_count = 0;  // from the container or duration*fps; 0 = unknown
  double duration_s = 0;
  bool has_audio = false;
  std::string audio_codec;
  int audio_channels = 0;
  int audio_sample_rate = 0;
};

// Opens anything FFmpeg reads and decodes its best video stream to 8-bit 4:2:0.
class VideoReader {
 public:
  static Expected<VideoReader> open(const std::string& path, int threads = 0);
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  ~VideoReader();

  const VideoInfo& info() const;
  // Next frame (true), or end of stream after the decoder is drained (false).
  // Corrupt packets are concealed by the decoder and logged, not fatal.
  Expected<bool> read(Frame& out);
  // Moves to the first frame at or after `seconds` from the stream's start
  // (seek to the keyframe before it, then decode and drop up to it). Frame
  // pts after a seek count from round(seconds * frame rate). An input that
  // cannot seek gives an error (and stays where it was).
  Status seek(double seconds);

 private:
  struct Impl;
  explicit VideoReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct ReadOptions {
  int64_t max_frames = 0;                    // 0 = all
  int64_t max_bytes = int64_t{12} << 30;     // refuse to hold more than this in memory
  int threads = 0;
};
// Whole clip in memory (used by the encoder, tests and benches).
Expected<std::vector<Frame>> read_all_frames(const std::string& path, VideoInfo* info = nullptr,
                                             const ReadOptions& options = {},
                                             const ProgressFn& progress = {});

// ---- geometry and scaling ----------------------------------------------------

enum class ScaleFilter { kArea, kBicubic, kBilinear, kLanczos, kPoint };

// Pads right/bottom by replicating the last column/row so both sizes become
// multiples of `multiple` (dydca pads HR to a multiple of 2*scale so that the
// LR picture has even sizes, as x264's 4:2:0 needs; the decoder crops back).
Frame pad_to_multiple(const Frame& in, int multiple);
// Top-left crop to width x height (must not exceed the input).
Frame crop(const Frame& in, int width, int height);
// swscale resize of all three planes (chroma follows luma's 4:2:0 geometry).
Expected<Frame> resize(const Frame& in, int width, int height, ScaleFilter filter);
// Divides both sizes by `scale` (1..4; 1 returns the frame); they must be exact multiples.
Expected<Frame> downscale(const Frame& in, int scale, ScaleFilter filter = ScaleFilter::kArea);

// ---- compressed video ----------------------------------------------------------

struct EncodedPacket {
  std::vector<uint8_t> data;
  int64_t pts = 0;
  int64_t dts = 0;
  int64_t duration = 1;
  bool keyframe = false;
};

// An H.264 elementary stream with its parameters (avcC extradata).
struct EncodedVideo {
  std::string codec = "h264";
  int width = 0;
  int height = 0;
  Rational frame_rate{25, 1};
  Rational time_base{1, 25};  // packet timestamps are in this unit
  std::vector<uint8_t> extradata;
  std::vector<EncodedPacket> packets;

  int64_t total_bytes() const;
  double duration_s() const;
  double bitrate_kbps() const;  // payload bits / duration
};

struct X264Config {
  std::string preset = "medium";
  std::string tune;         // empty = none
  int crf = 23;             // used when bitrate_kbps == 0
  int bitrate_kbps = 0;     // > 0 selects average bitrate mode
  bool two_pass = false;    // only with bitrate_kbps
  int gop = 250;            // max keyframe interval
  int threads = 0;          // 0 = libx264's choice
};

// Streaming x264 encoder through libavcodec (single pass; see encode_h264).
class VideoEncoder {
 public:
  static Expected<VideoEncoder> open(int width, int height, Rational frame_rate,
                                     const X264Config& config, int pass = 0,
                                     const std::string& stats_path = {});
  VideoEncoder(VideoEncoder&&) noexcept;
  VideoEncoder& operator=(VideoEncoder&&) noexcept;
  ~VideoEncoder();
  // Encodes one frame; finished packets are appended to the output.
  Status encode(const Frame& frame);
  // Drains the encoder; after this the stream is complete.
  Status finish();
  // The stream so far (extradata is valid right after open()).
  EncodedVideo& output();
  // Moves the finished packets out of output() (decode order), leaving it
  // empty: a streaming caller takes them after every encode() and finish()
  // so that the encoder holds no more than x264's own lookahead.
  std::vector<EncodedPacket> take_packets();

 private:
  struct Impl;
  explicit VideoEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Encodes all frames (one or two passes); packets out == frames in.
Expected<EncodedVideo> encode_h264(const std::vector<Frame>& frames, Rational frame_rate,
                                   const X264Config& config, const ProgressFn& progress = {});

// Streaming H.264 decoder for an EncodedVideo's packets.
class VideoDecoder {
 public:
  static Expected<VideoDecoder> open(const EncodedVideo& stream_params, int threads = 0);
  VideoDecoder(VideoDecoder&&) noexcept;
  VideoDecoder& operator=(VideoDecoder&&) noexcept;
  ~VideoDecoder();
  // Feeds one packet; nullptr signals end of stream (drain).
  Status send(const EncodedPacket* packet);
  // Next decoded frame (true), or none ready / drained (false).
  Expected<bool> receive(Frame& out);

 private:
  struct Impl;
  explicit VideoDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

Expected<std::vector<Frame>> decode_h264(const EncodedVideo& video, int threads = 0);

// ---- Y4M -----------------------------------------------------------------------

// Writes 4:2:0 Y4M to a file, or to stdout when path is "-".
class Y4mWriter {
 public:
  static Expected<Y4mWriter> open(const std::string& path, int width, int height,
                                  Rational frame_rate);
  Y4mWriter(Y4mWriter&&) noexcept;
  Y4mWriter& operator=(Y4mWriter&&) noexcept;
  ~Y4mWriter();
  Status write(const Frame& frame);
  Status close();

 private:
  struct Impl;
  explicit Y4mWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// MD5 of every plane of every frame, rows tightly packed, in order: the bytes
// a y4m file carries without its headers (equals `ffmpeg -f md5` on 8-bit
// 4:2:0 rawvideo, and the md5 muxer of `dydca decode`, like dav1d's).
class FrameMd5 {
 public:
  FrameMd5();
  FrameMd5(FrameMd5&&) noexcept;
  FrameMd5& operator=(FrameMd5&&) noexcept;
  ~FrameMd5();
  void add(const Frame& frame);
  std::string hex();  // finishes the hash: 32 lowercase hex digits

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads 8-bit 4:2:0 Y4M from a file or stdin ("-").
class Y4mReader {
 public:
  static Expected<Y4mReader> open(const std::string& path);
  Y4mReader(Y4mReader&&) noexcept;
  Y4mReader& operator=(Y4mReader&&) noexcept;
  ~Y4mReader();
  int width() const;
  int height() const;
  Rational frame_rate() const;
  Expected<bool> read(Frame& out);

 private:
  struct Impl;
  explicit Y4mReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- mux / demux -----------------------------------------------------------------

struct Attachment {
  std::string filename;
  std::string mimetype;
  std::vector<uint8_t> data;
};

struct MuxOptions {
  std::map<std::string, std::string> tags;  // global metadata
  std::vector<Attachment> attachments;      // Matroska only
  std::string copy_audio_from;              // input file whose first audio stream is copied
};

// Writes MP4 or MKV (by extension) packet by packet. The file appears at `path`
// only when finish() succeeds (it is written under a temporary name beside it,
// "<path>.part<pid>-<n>", and renamed); abort() or the destructor without
// finish() removes the temporary file. Tags and attachments are written at
// open() (Matroska writes its Attachments element in the header, and no stream
// can be added once the header is out). Audio from options.copy_audio_from is
// read packet by packet and interleaved as the video advances; what is left of
// it after the last video packet is written by finish(). Memory is bounded by
// FFmpeg's interleaving queue, never by the video's length.
//
//   auto w = VideoFileWriter::open("out.mkv", encoder.output());
//   for (...) { DYDCA_TRY(encoder.encode(f)); for (auto& p : encoder.take_packets()) DYDCA_TRY(w->write(p)); }
//   DYDCA_TRY(w->finish());
class VideoFileWriter {
 public:
  // params: codec, width, height, frame_rate, time_base, extradata (its packets
  // are ignored). Fails on an unknown extension, attachments outside .mkv, an
  // unreadable audio source or an unwritable folder (nothing is left behind).
  static Expected<VideoFileWriter> open(const std::string& path, const EncodedVideo& params,
                                        const MuxOptions& options = {});
  VideoFileWriter(VideoFileWriter&&) noexcept;
  VideoFileWriter& operator=(VideoFileWriter&&) noexcept;
  ~VideoFileWriter();  // removes the temporary file unless finish() succeeded

  // One packet, in decode order, timestamps in params.time_base.
  Status write(const EncodedPacket& packet);
  // Writes the remaining audio and the trailer, then renames the file into
  // place. Fails (and removes the temporary file) when no packet was written.
  Status finish();
  // Drops everything written so far; no file is left. Safe to call twice.
  void abort();
  int64_t packets_written() const;

 private:
  struct Impl;
  explicit VideoFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes MP4 or MKV (chosen by the extension). The file appears only when it is
// complete: it is written to a temporary name beside it and renamed at the end.
// (A VideoFileWriter fed with every packet of `video`.)
Status write_video_file(const std::string& path, const EncodedVideo& video,
                        const MuxOptions& options = {});

struct DemuxedFile {
  std::string format;
  EncodedVideo video;  // first video stream's packets
  std::map<std::string, std::string> tags;
  std::vector<Attachment> attachments;
  bool has_audio = false;
  int64_t audio_bytes = 0;
  double duration_s = 0;
};
inline constexpr int64_t kMaxAttachmentBytes = int64_t{64} << 20;

// Streaming demuxer: header (tags, attachments, stream parameters) at open,
// then the first video stream's packets one at a time, as they are needed.
struct DemuxHeader {
  std::string format;                       // demuxer name
  EncodedVideo video;                       // parameters only (codec, size, rates, time_base, extradata); packets empty
  std::map<std::string, std::string> tags;  // global metadata
  std::vector<Attachment> attachments;      // each <= kMaxAttachmentBytes
  bool has_audio = false;
  double duration_s = 0;
};

// Bytes of an input from somewhere other than a path: memory, or a caller's
// I/O (the C API's read/seek callbacks). PacketReader calls it on the thread
// that opens the reader, then on the thread that reads packets.
class ByteSource {
 public:
  // `whence` of seek() asking for the total size instead of moving (FFmpeg's AVSEEK_SIZE).
  static constexpr int kSeekSize = 0x10000;
  virtual ~ByteSource() = default;
  // Up to `size` bytes into buf: how many were read, 0 at the end, < 0 on a failure.
  virtual int read(uint8_t* buf, int size) = 0;
  // SEEK_SET / SEEK_CUR / SEEK_END: the new position; kSeekSize: the total
  // size. < 0 when it cannot (unseekable sources return -1 always).
  virtual int64_t seek(int64_t offset, int whence) = 0;
};

// Reads the first video stream (attached pictures excepted) packet by packet.
// Holds at most kPacketLookahead packets: Matroska stores presentation times
// only, so the decode times of reordered packets are rebuilt from the smallest
// presentation times still to come, which needs a look ahead as deep as the
// stream's reordering (H.264 allows at most 16 frames).
class PacketReader {
 public:
  static constexpr int kPacketLookahead = 32;

  // Fails on an unreadable file, a file without video or an oversized attachment.
  // Codes: kIo (cannot open or read), kInvalidData (not a readable media
  // file), kUnsupported (no video stream), kOutOfMemory.
  static Expected<PacketReader> open(const std::string& path);
  // Same from a byte source (owned by the reader from here on); `name` names
  // the input in messages. The format is probed from the bytes.
  static Expected<PacketReader> open(std::unique_ptr<ByteSource> source, const std::string& name);
  PacketReader(PacketReader&&) noexcept;
  PacketReader& operator=(PacketReader&&) noexcept;
  ~PacketReader();

  const DemuxHeader& header() const;
  // Next packet of the video stream (true) or end of file (false). Timestamps
  // in header().video.time_base, with the same timestamp fix-ups demux_file
  // does (missing dts of reordered Matroska packets rebuilt: dts[i] = i-th
  // smallest pts - D. When the file fits in the look-ahead window, D >= 0 is
  // the smallest shift keeping every dts <= pts; otherwise D is the larger of
  // that over the window and the stream's declared reorder depth times the
  // nominal frame duration. A stream reordering deeper than it declares gets
  // clamped dts and a logged warning.)
  // A damaged spot ends the stream early with a logged warning, as in
  // demux_file; a truncated file therefore gives fewer packets, not an error.
  Expected<bool> read(EncodedPacket& out);
  int64_t audio_bytes_read() const;  // audio payload bytes skipped so far

 private:
  struct Impl;
  explicit PacketReader(std::unique_ptr<Impl> impl);
  static Expected<PacketReader> open_impl(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads all packets of the first video stream plus attachments and tags
// (a PacketReader read to the end; refuses more than 4 GiB of video).
Expected<DemuxedFile> demux_file(const std::string& path);

}  // namespace dydca
