// Segment table blob: envelope "DYDCASEG" around one record per segment
// (frame range, model blob, routing blob). Layout in docs/formats.md §6.
#include "byte_io.h"
#include "dydca/container.h"
#include "envelope.h"

namespace dydca {

namespace {

constexpr blob::EnvelopeKind kSegmentsEnvelope{"DYDCASEG", "segment table", kSegmentsBlobVersion,
                                               kMaxSegmentsPayloadBytes};
constexpr uint8_t kFlagModelIsDelta = 0x01;
constexpr size_t kRecordHeadBytes = 4 + 4 + 1 + 4 + 4;

}  // namespace

Status validate_segment_table(const std::vector<SegmentRecord>& segments) {
  if (segments.empty() || segments.size() > size_t(kMaxSegments))
    return Status::error("segment table has " + std::to_string(segments.size()) +
                         " segments (1.." + std::to_string(kMaxSegments) + " allowed)");
  int64_t next = 0;
  for (size_t k = 0; k < segments.size(); ++k) {
    const SegmentRecord& s = segments[k];
    const std::string where = "segment " + std::to_string(k);
    if (s.first_frame != next)
      return Status::error(where + " starts at frame " + std::to_string(s.first_frame) +
                           ", the previous one ends before frame " + std::to_string(next) +
                           " (segments must be contiguous from frame 0)");
    if (s.frames < 1 || s.frames > kMaxSegmentFrames)
      return Status::error(where + " has " + std::to_string(s.frames) + " frames (1.." +
                           std::to_string(kMaxSegmentFrames) + " allowed)");
    next += s.frames;
    if (next > kMaxFileFrames)
      return Status::error("segments cover more than " + std::to_string(kMaxFileFrames) +
                           " frames");
    if (s.model.empty()) return Status::error(where + " has no model");
    if (k == 0 && s.model_is_delta)
      return Status::error("segment 0 has a model update; the first segment needs a full model");
  }
  return Status::ok();
}

Expected<std::vector<uint8_t>> serialize_segments(const std::vector<SegmentRecord>& segments,
                                                  int zstd_level) {
  DYDCA_TRY(validate_segment_table(segments).with_context("cannot write segment table"));
  size_t bytes = 4;
  for (const SegmentRecord& s : segments) {
    if (s.model.size() > kMaxSegmentsPayloadBytes || s.routing.size() > kMaxSegmentsPayloadBytes)
      return Status::error("cannot write segment table: a blob is larger than the table's cap");
    bytes += kRecordHeadBytes + s.model.size() + s.routing.size();
  }
  if (bytes > kMaxSegmentsPayloadBytes)
    return Status::error("cannot write segment table: " + std::to_string(bytes) +
                         " bytes exceed the cap of " + std::to_string(kMaxSegmentsPayloadBytes));
  blob::ByteWriter w;
  w.buffer().reserve(bytes);
  w.u32(uint32_t(segments.size()));
  for (const SegmentRecord& s : segments) {
    w.u32(uint32_t(s.first_frame));
    w.u32(uint32_t(s.frames));
    w.u8(s.model_is_delta ? kFlagModelIsDelta : 0);
    w.u32(uint32_t(s.model.size()));
    w.u32(uint32_t(s.routing.size()));
    w.bytes(s.model.data(), s.model.size());
    w.bytes(s.routing.data(), s.routing.size());
  }
  return blob::seal_envelope(kSegmentsEnvelope, w.buffer(), zstd_level);
}

Expected<std::vector<SegmentRecord>> parse_segments(const uint8_t* data, size_t size) {
  DYDCA_ASSIGN_OR_RETURN(auto opened, blob::open_envelope(kSegmentsEnvelope, data, size));
  const std::vector<uint8_t>& payload = opened.payload;
  blob::ByteReader r(payload.data(), payload.size());
  auto truncated = [] { return Status::error("segment table payload is truncated"); };

  const uint32_t count = r.u32();
  if (!r.ok()) return truncated();
  if (count < 1 || count > uint32_t(kMaxSegments))
    return Status::error("segment table declares " + std::to_string(count) + " segments (1.." +
                         std::to_string(kMaxSegments) + " allowed)");
  // Every record costs its head: the count is bounded by the payload too.
  if (uint64_t(count) * kRecordHeadBytes > r.remaining()) return truncated();
  std::vector<SegmentRecord> out(count);
  for (uint32_t k = 0; k < count; ++k) {
    SegmentRecord& s = out[k];
    const uint32_t first = r.u32(), frames = r.u32();
    const uint8_t flags = r.u8();
    const uint32_t model_size = r.u32(), routing_size = r.u32();
    if (!r.ok()) return truncated();
    if (first > uint32_t(kMaxFileFrames) || frames > uint32_t(kMaxSegmentFrames))
      return Status::error("segment " + std::to_string(k) + " has an invalid frame range");
    if (flags & ~kFlagModelIsDelta)
      return Status::error("segment " + std::to_string(k) + " has flags " +
                           std::to_string(flags) + " that version 1 does not define");
    s.first_frame = int(first);
    s.frames = int(frames);
    s.model_is_delta = flags & kFlagModelIsDelta;
    const uint8_t* model = r.bytes(model_size);
    const uint8_t* routing = r.bytes(routing_size);
    if (!r.ok()) return truncated();
    s.model.assign(model, model + model_size);
    if (routing_size) s.routing.assign(routing, routing + routing_size);
  }
  if (!r.at_end())
    return Status::error("segment table payload has " + std::to_string(r.remaining()) +
                         " unexpected trailing bytes");
  DYDCA_TRY(validate_segment_table(out).with_context("segment table"));
  return out;
}

}  // namespace dydca
