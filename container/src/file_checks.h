// Checks shared by every reader and writer of dydca .mkv files (the batch
// read_dydca_file / write_dydca_file*, the streaming DydcaReader and
// DydcaFileWriter): what the tags and attachments say, the v1 blobs, and the
// v2 segment table. One home, so every path gives the same one-line errors.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dydca/container.h"

namespace dydca::detail {

// Matroska tag names are case-insensitive in practice (muxers differ).
const std::string* find_tag(const std::map<std::string, std::string>& tags, const char* key);
bool parse_int(const std::string& s, int& out);
bool starts_with_ebml_magic(const std::string& path);

// Scale, HR size vs LR size, routing vs video (LR size, `frames`) and models
// (path ids; with several models an id may name a model instead).
Status check_consistency(const EncodedVideo& video, const std::vector<Model>& models,
                         const RoutingMap* routing, int64_t frames, int hr_width, int hr_height,
                         int scale);

// What the tags and the attachments of a file say, before any blob is parsed.
struct FileHeader {
  int format_version = 0;  // 0: plain video (no dydca tag, no dydca attachment)
  std::string writer_version;
  int hr_width = 0;
  int hr_height = 0;
  int scale = 0;
  int frames = 0;                               // DYDCA_FRAMES
  std::vector<const Attachment*> models;        // v1, index = model number, no gaps
  const Attachment* routing = nullptr;          // v1, optional
  const Attachment* segments = nullptr;         // v2
};
// Tags present and valid, DYDCA_FORMAT known, the attachments DYDCA_BLOBS
// names present, v1 and v2 blobs not mixed, the video codec is h264.
// Pointers point into `attachments`.
Expected<FileHeader> read_file_header(const std::map<std::string, std::string>& tags,
                                      const std::vector<Attachment>& attachments,
                                      const std::string& video_codec);

// v1: every model and the routing parsed and cross-checked.
struct V1Blobs {
  std::vector<Model> models;
  std::vector<ModelBlobInfo> model_info;
  std::vector<std::vector<uint8_t>> model_blobs;
  std::optional<RoutingMap> routing;
  std::vector<uint8_t> routing_blob;
};
Expected<V1Blobs> load_v1_blobs(const FileHeader& header, const EncodedVideo& video);

// v2: the table's structure, then every segment in order: its model parses
// (an update applies to the previous segment's model), the architecture is
// segment 0's, its routing parses, covers the segment's frames, fits the LR
// size and the paths; scale and HR size agree with the file; the segments
// cover `frames` frames. `visit` (optional) sees each segment's model and
// routing as they are checked. Returns segment 0's model.
using SegmentVisitor = std::function<void(size_t k, const Model& model, const ModelBlobInfo& info,
                                          std::optional<RoutingMap>&& routing)>;
Expected<Model> check_segments(const std::vector<SegmentRecord>& segments,
                               const EncodedVideo& video, int hr_width, int hr_height, int scale,
                               int64_t frames, const SegmentVisitor& visit = {});

// Segment k's model from the previous one (or from nothing when it is full);
// errors name the segment.
Expected<Model> segment_model_from(const std::vector<SegmentRecord>& segments, size_t k,
                                   const Model* previous, ModelBlobInfo* info = nullptr);
// "segment 3 (frames 120..179)"
std::string segment_name(const std::vector<SegmentRecord>& segments, size_t k);

// The tags and the attachment of a v2 file.
MuxOptions v2_mux_options(const std::vector<uint8_t>& segments_blob, int hr_width, int hr_height,
                          int scale, int64_t frames, const DydcaV2WriteParams& params);

}  // namespace dydca::detail
