// dydca container: the model blob, the routing blob, and the Matroska file
// that carries them beside the LR H.264 video. Byte-exact spec: docs/formats.md.
//
// Usage (server):
//   dydca::DydcaPayload payload;
//   payload.models.push_back(model);      // one dynamic model -> model.dydca
//   payload.routing = routing_map;        // -> routing.dydca
//   dydca::DydcaWriteParams params;
//   params.hr_width = 1920; params.hr_height = 1080;
//   params.model_blob.weights = dydca::WeightFormat::kFp16;
//   params.copy_audio_from = "in.mp4";
//   if (auto s = dydca::write_dydca_file("out.mkv", lr_video, payload, params); !s) fail(s);
// Usage (client):
//   auto file = dydca::read_dydca_file("out.mkv");
//   if (!file) { fprintf(stderr, "%s\n", file.error_message().c_str()); return 1; }
//   if (!file->has_dydca) { /* plain video: bicubic fallback, with a warning */ }
//   decode file->video, upscale with file->models[0] routed by *file->routing.
//
// QoS levels are not in the model blob: the model carries the paths (ordered
// cheap -> rich); which path each content chunk runs at each QoS level is a
// per-chunk table in the routing blob (RoutingMap::chunk_path).
//
// Every parser here takes untrusted bytes: sizes are capped before any
// allocation, the CRC is checked before the payload is used, and a failure is
// one Status with a one-line message. No libav type appears in this header.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dydca/media.h"
#include "dydca/model.h"
#include "dydca/routing.h"
#include "dydca/status.h"

namespace dydca {

// ---- limits (hard caps checked by the parsers and the writers) -------------
inline constexpr uint16_t kModelBlobVersion = 2;    // newest read; v1 written when act is empty
inline constexpr uint16_t kRoutingBlobVersion = 1;  // written, and the newest read
inline constexpr uint16_t kModelDeltaVersion = 2;   // model update (DYDCADLT); v1 written when act is empty
inline constexpr uint16_t kSegmentsBlobVersion = 1; // segment table blob (DYDCASEG)
inline constexpr int kDydcaFormatVersion = 2;       // .mkv layout: written, and the newest read
// (Architecture limits: kMaxChannels, kMaxInner, kMaxBlocks, kMaxPaths in model.h.)
inline constexpr int kMaxTensors = 1024;
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 24;
inline constexpr uint32_t kMaxModelPayloadBytes = 64u << 20;  // decompressed
inline constexpr int kMaxRoutingChunks = 255;                 // chunk ids are uint8
inline constexpr int kMaxLevels = 16;
inline constexpr int kMaxTileSize = 1024;
inline constexpr int kMaxRoutingFrames = 1 << 22;
inline constexpr int64_t kMaxRoutingTiles = int64_t{1} << 26;   // frames * tiles per frame
inline constexpr uint32_t kMaxRoutingPayloadBytes = 64u << 20;  // decompressed
inline constexpr int kMaxModelsPerFile = 64;
inline constexpr int kMaxSegments = 1 << 16;
inline constexpr int kMaxSegmentFrames = kMaxRoutingFrames;      // frames of one segment
inline constexpr int64_t kMaxFileFrames = int64_t{1} << 30;      // frames of a whole file
inline constexpr uint32_t kMaxSegmentsPayloadBytes = 64u << 20;  // decompressed (= attachment cap)

inline constexpr const char* kModelMimetype = "application/x-dydca-model";
inline constexpr const char* kRoutingMimetype = "application/x-dydca-routing";
inline constexpr const char* kRoutingFilename = "routing.dydca";
inline constexpr const char* kSegmentsMimetype = "application/x-dydca-segments";
inline constexpr const char* kSegmentsFilename = "segments.dydca";
// "model.dydca" for index 0, "model<i>.dydca" after it.
std::string model_attachment_name(int index);

// ---- model blob ------------------------------------------------------------

// How weight tensors (rank >= 2) are stored. Biases (rank 1) are always fp32:
// they are a few hundred bytes and quantizing them gains nothing.
//   kFp32: exact.
//   kFp16: IEEE binary16, round to nearest even; |x - x'| <= max(|x| * 2^-11, 2^-25).
//          Values beyond +-65504 are refused by the writer.
//   kInt8: symmetric per output channel (dim 0): scale_o = max|w_o| / 127,
//          q = round(w / scale_o) in [-127, 127]; |x - x'| <= scale_o / 2 (+ fp32 rounding).
enum class WeightFormat : uint8_t { kFp32 = 0, kFp16 = 1, kInt8 = 2 };
const char* weight_format_name(WeightFormat f);

struct ModelBlobOptions {
  WeightFormat weights = WeightFormat::kFp16;
  int zstd_level = 19;
};

// What a blob says about itself beyond the Model (for `dydca info`).
struct ModelBlobInfo {
  uint16_t version = 0;
  size_t blob_bytes = 0;                       // the whole blob as stored
  size_t payload_bytes = 0;                    // decompressed payload
  WeightFormat weights = WeightFormat::kFp32;  // format of the weight tensors (rank >= 2)
};

// Architecture sanity, every tensor the architecture needs present with its
// shape (model.h lists them), no duplicates, finite values, caps respected.
// Extra tensors are allowed (ignored by the runtime).
Status validate_model(const Model& model);
Expected<std::vector<uint8_t>> serialize_model(const Model& model,
                                               const ModelBlobOptions& options = {});
// The returned tensors hold fp32 values (dequantized when stored as fp16/int8).
Expected<Model> parse_model(const uint8_t* data, size_t size, ModelBlobInfo* info = nullptr);
inline Expected<Model> parse_model(const std::vector<uint8_t>& blob,
                                   ModelBlobInfo* info = nullptr) {
  return parse_model(blob.data(), blob.size(), info);
}

// ---- model update blob ("delta", DYDCADLT) -----------------------------------

struct ModelDeltaOptions {
  int zstd_level = 19;
  // The quantization step per output channel. false: max|d_o| / 127, the
  // finest the int8 codes allow (every code is used: a dense update costs as
  // much as a full int8 model). true: max(max|d_o|, max|target_o|) / 127, the
  // precision of a full int8 model of the target: a small change then codes
  // as small integers (mostly 0 and +-1) that zstd squeezes, while the error
  // stays within a full int8 model's. The decoder is the same either way.
  bool model_step = false;
};

// An update of `reference` towards `target` (same architecture, same tensor
// names and shapes). Every tensor of rank >= 2 is stored as an int8 difference
// quantized per output channel (dim 0): d = target - reference (fp32),
// scale_o = max|d_o| / 127 (fp32), q = round_half_even(d / scale_o) in
// [-127, 127] (ModelDeltaOptions::model_step widens the step to the target's
// own int8 step); rank-1 tensors (biases) as fp32 absolute values. Tensors whose
// quantized difference is all zero (biases: bit-identical) are omitted. The
// blob names the reference by a CRC32 fingerprint of its architecture and
// tensors, so an update applied to any other model is refused.
// Deterministic: the same inputs give the same bytes.
Expected<std::vector<uint8_t>> serialize_model_delta(const Model& reference, const Model& target,
                                                     const ModelDeltaOptions& options = {});
// reference + update = the model the client runs. Per weight
//   w' = float(double(w) + double(q) * double(scale_o))
// The product is exact in binary64 (8-bit q times a 24-bit significand), so a
// fused multiply-add gives the same bits as separate operations: the encoder
// (which evaluates exactly this) and every client compute identical fp32
// weights. |target - w'| <= scale_o / 2 plus fp32 rounding. Tensors keep the
// reference's order. Validation is as strict as parse_model: envelope, CRC,
// fingerprint, every name present in the reference with the same shape, in
// the reference's order, no duplicates, finite values, caps; the result is
// validated as a model. `info->weights` is kInt8.
Expected<Model> apply_model_delta(const Model& reference, const uint8_t* data, size_t size,
                                  ModelBlobInfo* info = nullptr);
inline Expected<Model> apply_model_delta(const Model& reference, const std::vector<uint8_t>& blob,
                                         ModelBlobInfo* info = nullptr) {
  return apply_model_delta(reference, blob.data(), blob.size(), info);
}
// The fingerprint an update carries (CRC32 over the architecture and every
// tensor's name, shape and fp32 bits, in order; docs/formats.md §5).
uint32_t model_fingerprint(const Model& model);

// ---- routing blob ----------------------------------------------------------

// Sizes, caps, chunk ids < K, path ids < kMaxPaths, one table of K entries
// per level, chunk_ids.size() == frames * tiles per frame.
Status validate_routing(const RoutingMap& routing);
// Path ids < number of model paths.
Status check_routing_fits_model(const RoutingMap& routing, const ModelArch& arch);
Expected<std::vector<uint8_t>> serialize_routing(const RoutingMap& routing, int zstd_level = 19);
Expected<RoutingMap> parse_routing(const uint8_t* data, size_t size);
inline Expected<RoutingMap> parse_routing(const std::vector<uint8_t>& blob) {
  return parse_routing(blob.data(), blob.size());
}

// ---- segment table blob (DYDCASEG) ---------------------------------------------

// One temporal segment of a format-2 file: a run of frames starting on an IDR
// frame, with its own model (full or an update of the previous segment's) and
// its own routing. The architecture is the same for the whole file.
struct SegmentRecord {
  int first_frame = 0;  // segments are contiguous from frame 0, in order
  int frames = 0;       // >= 1
  // model: a DYDCADLT update of the previous segment's model (never for
  // segment 0) or a full DYDCAMDL blob.
  bool model_is_delta = false;
  std::vector<uint8_t> model;    // the blob bytes as stored
  std::vector<uint8_t> routing;  // a DYDCARTG blob for this segment's frames only (its
                                 // frames == this->frames); empty = no routing (static model)
};

// Checks the table's structure: 1..kMaxSegments segments, contiguous from
// frame 0, frames 1..kMaxSegmentFrames each, total <= kMaxFileFrames, a model
// blob in every segment, no update in segment 0. The blobs themselves are not
// parsed here (the file reader and writer do that).
Status validate_segment_table(const std::vector<SegmentRecord>& segments);
// The blobs are stored as given (already compressed), so the outer zstd level
// matters little; 3 keeps writing a large table fast.
Expected<std::vector<uint8_t>> serialize_segments(const std::vector<SegmentRecord>& segments,
                                                  int zstd_level = 3);
// Structure only (validate_segment_table); nested blobs are checked by the reader.
Expected<std::vector<SegmentRecord>> parse_segments(const uint8_t* data, size_t size);
inline Expected<std::vector<SegmentRecord>> parse_segments(const std::vector<uint8_t>& blob) {
  return parse_segments(blob.data(), blob.size());
}

// ---- Matroska file -----------------------------------------------------------

struct DydcaPayload {
  // model.dydca, model1.dydca, ... (several only for the multi-model
  // baselines; the dydca codec itself writes one dynamic model).
  std::vector<Model> models;
  std::optional<RoutingMap> routing;  // routing.dydca; none for a static model
};

struct DydcaWriteParams {
  int hr_width = 0;  // the size the client reconstructs (LR * scale minus padding)
  int hr_height = 0;
  ModelBlobOptions model_blob;
  int routing_zstd_level = 19;
  std::string copy_audio_from;  // input whose first audio stream is copied; "" = none
  std::map<std::string, std::string> extra_tags;
};

// Tags written on every dydca file (Matroska global tags).
inline constexpr const char* kTagVersion = "DYDCA_VERSION";
inline constexpr const char* kTagHrWidth = "DYDCA_HR_WIDTH";
inline constexpr const char* kTagHrHeight = "DYDCA_HR_HEIGHT";
inline constexpr const char* kTagScale = "DYDCA_SCALE";
inline constexpr const char* kTagBlobs = "DYDCA_BLOBS";    // comma-separated attachment names
inline constexpr const char* kTagFrames = "DYDCA_FRAMES";  // video frame count (truncation check)
// "2" in format-2 files; absent means 1. A reader refuses versions it does not know.
inline constexpr const char* kTagFormat = "DYDCA_FORMAT";

// Serializes the blobs, checks that video, models and routing agree (scale,
// LR size, paths), and writes an .mkv atomically (temp file + rename).
Status write_dydca_file(const std::string& path, const EncodedVideo& lr_video,
                        const DydcaPayload& payload, const DydcaWriteParams& params);
// Same with blobs already serialized (written byte for byte; they are parsed
// once to check them).
Status write_dydca_file_blobs(const std::string& path, const EncodedVideo& lr_video,
                              const std::vector<std::vector<uint8_t>>& model_blobs,
                              const std::vector<uint8_t>* routing_blob,
                              const DydcaWriteParams& params);

// Format 2: the LR video, one `segments.dydca` attachment (the segment table,
// with every segment's model and routing blobs), tags as format 1 plus
// DYDCA_FORMAT=2. Written by DydcaFileWriter (streaming) or
// write_dydca_file_v2 (a whole EncodedVideo in memory).
struct DydcaV2WriteParams {
  int hr_width = 0;  // the size the client reconstructs (LR * scale minus padding)
  int hr_height = 0;
  std::string copy_audio_from;  // input whose first audio stream is copied; "" = none
  std::map<std::string, std::string> extra_tags;
};

// Checks the segments against the video (see DydcaFileWriter::open) and
// writes the file atomically. The video's packets are the LR stream, every
// segment starting on a keyframe.
Status write_dydca_file_v2(const std::string& path, const EncodedVideo& lr_video,
                           const std::vector<SegmentRecord>& segments,
                           const DydcaV2WriteParams& params);

struct DydcaFile {
  std::string format;  // demuxer name ("matroska,webm" for dydca files)
  EncodedVideo video;  // the LR video track, all packets
  bool has_audio = false;
  int64_t audio_bytes = 0;
  double duration_s = 0;
  std::map<std::string, std::string> tags;

  // false: a plain video without dydca blobs (not an error; the decoder can
  // fall back to bicubic). Everything below is then empty / zero.
  bool has_dydca = false;
  std::string writer_version;
  int hr_width = 0;
  int hr_height = 0;
  int scale = 0;
  std::vector<Model> models;
  std::vector<ModelBlobInfo> model_info;
  std::vector<std::vector<uint8_t>> model_blobs;  // as stored
  std::optional<RoutingMap> routing;
  std::vector<uint8_t> routing_blob;  // as stored; empty without routing

  // 0 for a plain video, 1 or 2 (DYDCA_FORMAT).
  int format_version = 0;
  // Format 2 (empty in format 1). models / model_info / model_blobs above
  // then hold segment 0's model only (the file's architecture), and routing is
  // empty: per-segment data is here.
  std::vector<SegmentRecord> segments;                // as stored
  std::vector<Model> segment_models;                  // updates applied in order
  std::vector<ModelBlobInfo> segment_model_info;
  std::vector<std::optional<RoutingMap>> segment_routing;

  // Totals as stored (every segment's blobs in format 2).
  int64_t model_bytes() const;
  int64_t routing_bytes() const;
};

// Demuxes the whole file into memory (tests and tools; clients use
// DydcaReader), finds the dydca attachments by mimetype, parses and
// cross-checks them (tags, scale, LR size, routing vs model paths, frame
// count vs DYDCA_FRAMES and the routing; format 2: the segment table, every
// segment's model and routing). Any damage, truncation included, is an
// error; a file without dydca blobs or tags is a plain video
// (has_dydca == false).
Expected<DydcaFile> read_dydca_file(const std::string& path);

// ---- streaming client reader and format-2 writer --------------------------------------

// A segment as the reader lists it (the blobs stay inside the reader).
struct DydcaSegment {
  int first_frame = 0;
  int frames = 0;
  bool model_is_delta = false;
  int64_t model_bytes = 0;
  int64_t routing_bytes = 0;
};

// Reads a dydca file (format 1 or 2) or a plain video as a stream: open()
// reads the header (tags, attachments: libavformat reads Matroska
// attachments before the first cluster), parses and checks every blob, and
// keeps the segment table (the blobs as stored) - never the video, which
// read_packet() hands out one packet at a time. Every cap, CRC and one-line
// error of read_dydca_file holds; a file with fewer packets than
// DYDCA_FRAMES fails at the end of read_packet.
//
//   auto r = dydca::DydcaReader::open("in.mkv");
//   if (!r) return fail(r.status());
//   auto model = r->segment_model(0);          // plan once: r->arch()
//   dydca::EncodedPacket p;
//   while (true) {
//     auto got = r->read_packet(p);
//     if (!got) return fail(got.status());      // damaged or truncated
//     if (!*got) break;                         // end, every frame there
//     ... r->segment_of_frame(n++) says which model and routing apply
//   }
//
// Threads: segment_model(), segment_routing() and model() may run on one
// thread (e.g. the decoder preparing the next segment) while read_packet()
// runs on another: they touch disjoint state (the model cache has its own
// lock, so these three are also safe against each other). read_packet()
// itself is for one thread at a time. Moving the reader is not concurrent
// with anything.
class DydcaReader {
 public:
  // Failure codes (Status::code): kIo (cannot open or read), kInvalidData
  // (damaged, truncated or inconsistent file), kUnsupported (a newer format,
  // not H.264, no video), kOutOfMemory.
  static Expected<DydcaReader> open(const std::string& path);
  // Same from a caller's bytes (memory, the C API's read/seek callbacks); the
  // reader owns the source. `name` names the input in messages. A plain video
  // opened this way has its header only: decode_file reopens plain videos by
  // path, so it cannot decode them.
  static Expected<DydcaReader> open(std::unique_ptr<ByteSource> source, const std::string& name);
  DydcaReader(DydcaReader&&) noexcept;
  DydcaReader& operator=(DydcaReader&&) noexcept;
  ~DydcaReader();

  int format_version() const;  // 0 = plain video (no dydca data), 1, 2
  bool has_dydca() const;
  const std::string& format() const;  // demuxer name
  const EncodedVideo& video() const;  // parameters, no packets
  const std::map<std::string, std::string>& tags() const;
  bool has_audio() const;
  double duration_s() const;
  std::string writer_version() const;
  // Zero for a plain video.
  int hr_width() const;
  int hr_height() const;
  int scale() const;
  int64_t frames() const;  // DYDCA_FRAMES; 0 for a plain video

  // The file's architecture (segment 0's model; format-1 multi-model files:
  // model 0's). Only with has_dydca().
  const ModelArch& arch() const;
  // Format 1: one segment covering every frame. Empty for a plain video.
  const std::vector<DydcaSegment>& segments() const;
  // The segment holding `frame` (0 <= frame < frames()), -1 outside.
  int segment_of_frame(int64_t frame) const;
  int64_t model_bytes() const;  // totals as stored
  int64_t routing_bytes() const;

  // Segment k's model. Format 2 applies the updates in order from the last
  // full model; the reader keeps the last reconstructed model, so asking in
  // increasing k costs one update each (any k works, a step back replays
  // from the nearest full model). Bit-identical to what the encoder
  // evaluated (apply_model_delta).
  Expected<Model> segment_model(int k);
  // Segment k's routing (its frames only), or none for a static model.
  // Format 1: the whole file's routing.
  Expected<std::optional<RoutingMap>> segment_routing(int k);

  // Format-1 multi-model baseline files (model.dydca, model1.dydca, ...):
  // every model, and the whole routing. Format 2: one model (segment 0's)
  // and no routing.
  int model_count() const;
  Expected<Model> model(int i) const;
  const std::optional<RoutingMap>& v1_routing() const;

  // Next LR packet in decode order (true), or the end (false). At the end,
  // fewer packets than DYDCA_FRAMES is an error ("the video has 7 of 10
  // frames (truncated or damaged file)"), as are more.
  Expected<bool> read_packet(EncodedPacket& out);
  int64_t packets_read() const;
  int64_t audio_bytes_read() const;

 private:
  struct Impl;
  explicit DydcaReader(std::unique_ptr<Impl> impl);
  // Everything after the packet reader opened, shared by both open()s.
  // starts_with_ebml: the input starts with the Matroska magic (for the
  // message of a header libavformat could not read).
  static Expected<DydcaReader> open_packets(Expected<PacketReader> packets,
                                            const std::string& name, bool starts_with_ebml);
  std::unique_ptr<Impl> impl_;
};

// Writes a format-2 file as packets come: the segment table (small: a few kB
// per segment) is known at open, because Matroska's attachments precede the
// clusters; the LR packets then stream through to the file. The file appears
// at `path` only when finish() succeeds (temporary file + rename).
class DydcaFileWriter {
 public:
  // Checks everything before writing: segments contiguous, every model and
  // routing parses, updates apply in order, one architecture, its scale fits
  // the LR and HR sizes, routing frames == segment frames, path ids fit the
  // model. `video_params`: codec, size, rates, time_base, extradata (its
  // packets are ignored).
  static Expected<DydcaFileWriter> open(const std::string& path, const EncodedVideo& video_params,
                                        const std::vector<SegmentRecord>& segments,
                                        const DydcaV2WriteParams& params);
  DydcaFileWriter(DydcaFileWriter&&) noexcept;
  DydcaFileWriter& operator=(DydcaFileWriter&&) noexcept;
  ~DydcaFileWriter();  // abort() unless finish() succeeded

  // One LR packet in decode order; the first packet of every segment must be
  // a keyframe, and no more packets than the segments' frames.
  Status write_packet(const EncodedPacket& packet);
  // The packet count must equal the segments' total frames; then the file is
  // renamed into place.
  Status finish();
  void abort();  // no file is left; safe to call twice
  int64_t packets_written() const;

 private:
  struct Impl;
  explicit DydcaFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dydca
