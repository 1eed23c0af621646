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
#include <optional>
#include <string>
#include <vector>

#include "dydca/media.h"
#include "dydca/model.h"
#include "dydca/routing.h"
#include "dydca/status.h"

namespace dydca {

// ---- limits (hard caps checked by the parsers and the writers) -------------
inline constexpr uint16_t kModelBlobVersion = 1;    // written, and the newest read
inline constexpr uint16_t kRoutingBlobVersion = 1;  // written, and the newest read
inline constexpr int kMaxChannels = 256;            // C
inline constexpr int kMaxInner = 1024;              // E
inline constexpr int kMaxBlocks = 64;               // N
inline constexpr int kMaxPaths = 16;
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

inline constexpr const char* kModelMimetype = "application/x-dydca-model";
inline constexpr const char* kRoutingMimetype = "application/x-dydca-routing";
inline constexpr const char* kRoutingFilename = "routing.dydca";
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

  int64_t model_bytes() const;
  int64_t routing_bytes() const { return int64_t(routing_blob.size()); }
};

// Demuxes the file, finds the dydca attachments by mimetype, parses and
// cross-checks them (tags, scale, LR size, routing vs model paths, frame
// count vs DYDCA_FRAMES and the routing). Any damage, truncation included, is
// an error; a file without dydca blobs or tags is a plain video
// (has_dydca == false).
Expected<DydcaFile> read_dydca_file(const std::string& path);

}  // namespace dydca
