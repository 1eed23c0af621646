// The dydca Matroska file, batch form: LR H.264 video (+ copied audio), the
// blobs as attachments, dydca tags. Muxing and demuxing go through media's
// write_video_file / demux_file; the checks live in file_checks.cpp.
#include <algorithm>

#include "dydca/container.h"
#include "file_checks.h"

#ifndef DYDCA_VERSION_STRING
#define DYDCA_VERSION_STRING "unknown"
#endif

namespace dydca {

using detail::check_consistency;

std::string model_attachment_name(int index) {
  return index == 0 ? "model.dydca" : "model" + std::to_string(index) + ".dydca";
}

int64_t DydcaFile::model_bytes() const {
  int64_t n = 0;
  if (format_version >= 2) {
    for (const SegmentRecord& s : segments) n += int64_t(s.model.size());
    return n;
  }
  for (const auto& b : model_blobs) n += int64_t(b.size());
  return n;
}

int64_t DydcaFile::routing_bytes() const {
  if (format_version < 2) return int64_t(routing_blob.size());
  int64_t n = 0;
  for (const SegmentRecord& s : segments) n += int64_t(s.routing.size());
  return n;
}

Status write_dydca_file_blobs(const std::string& path, const EncodedVideo& lr_video,
                              const std::vector<std::vector<uint8_t>>& model_blobs,
                              const std::vector<uint8_t>* routing_blob,
                              const DydcaWriteParams& params) {
  auto fail = [&](const Status& s) { return s.with_context("cannot write " + path); };
  if (model_blobs.empty() || model_blobs.size() > size_t(kMaxModelsPerFile))
    return fail(Status::error(std::to_string(model_blobs.size()) + " models (1.." +
                              std::to_string(kMaxModelsPerFile) + " allowed)"));
  std::vector<Model> models;
  for (size_t i = 0; i < model_blobs.size(); ++i) {
    auto m = parse_model(model_blobs[i]);
    if (!m) return fail(m.status().with_context(model_attachment_name(int(i))));
    models.push_back(std::move(*m));
  }
  std::optional<RoutingMap> routing;
  if (routing_blob) {
    auto r = parse_routing(*routing_blob);
    if (!r) return fail(r.status().with_context(kRoutingFilename));
    routing = std::move(*r);
  }
  const int scale = models[0].arch.scale;
  DYDCA_TRY(fail(check_consistency(lr_video, models, routing ? &*routing : nullptr,
                                   int64_t(lr_video.packets.size()), params.hr_width,
                                   params.hr_height, scale)));

  MuxOptions mux;
  mux.copy_audio_from = params.copy_audio_from;
  mux.tags = params.extra_tags;
  std::string names;
  for (size_t i = 0; i < model_blobs.size(); ++i) {
    mux.attachments.push_back({model_attachment_name(int(i)), kModelMimetype, model_blobs[i]});
    names += (i ? "," : "") + model_attachment_name(int(i));
  }
  if (routing_blob) {
    mux.attachments.push_back({kRoutingFilename, kRoutingMimetype, *routing_blob});
    names += std::string(",") + kRoutingFilename;
  }
  mux.tags[kTagVersion] = DYDCA_VERSION_STRING;
  mux.tags[kTagHrWidth] = std::to_string(params.hr_width);
  mux.tags[kTagHrHeight] = std::to_string(params.hr_height);
  mux.tags[kTagScale] = std::to_string(scale);
  mux.tags[kTagBlobs] = names;
  mux.tags[kTagFrames] = std::to_string(lr_video.packets.size());
  return write_video_file(path, lr_video, mux);
}

Status write_dydca_file(const std::string& path, const EncodedVideo& lr_video,
                        const DydcaPayload& payload, const DydcaWriteParams& params) {
  std::vector<std::vector<uint8_t>> model_blobs;
  for (size_t i = 0; i < payload.models.size(); ++i) {
    auto b = serialize_model(payload.models[i], params.model_blob);
    if (!b) return b.status().with_context("cannot write " + path);
    model_blobs.push_back(std::move(*b));
  }
  std::vector<uint8_t> routing_blob;
  if (payload.routing) {
    auto b = serialize_routing(*payload.routing, params.routing_zstd_level);
    if (!b) return b.status().with_context("cannot write " + path);
    routing_blob = std::move(*b);
  }
  return write_dydca_file_blobs(path, lr_video, model_blobs,
                                payload.routing ? &routing_blob : nullptr, params);
}

Status write_dydca_file_v2(const std::string& path, const EncodedVideo& lr_video,
                           const std::vector<SegmentRecord>& segments,
                           const DydcaV2WriteParams& params) {
  if (!segments.empty()) {
    const int64_t covered = int64_t(segments.back().first_frame) + segments.back().frames;
    if (covered != int64_t(lr_video.packets.size()))
      return Status::error("cannot write " + path + ": the segments cover " +
                           std::to_string(covered) + " frames but the video has " +
                           std::to_string(lr_video.packets.size()));
  }
  DYDCA_ASSIGN_OR_RETURN(auto writer, DydcaFileWriter::open(path, lr_video, segments, params));
  for (const EncodedPacket& p : lr_video.packets) DYDCA_TRY(writer.write_packet(p));
  return writer.finish();
}

Expected<DydcaFile> read_dydca_file(const std::string& path) {
  auto demuxed = demux_file(path);
  if (!demuxed) {
    // libavformat's message for a cut Matroska file is a bare "Input/output
    // error"; say what it most likely means.
    if (detail::starts_with_ebml_magic(path))
      return Status::error(demuxed.error_message() + " (damaged or truncated Matroska file)");
    return demuxed.status();
  }
  auto fail = [&](const Status& s) { return s.with_context(path); };
  DemuxedFile& d = *demuxed;

  DydcaFile out;
  out.format = d.format;
  out.has_audio = d.has_audio;
  out.audio_bytes = d.audio_bytes;
  out.duration_s = d.duration_s;
  out.tags = d.tags;
  out.video = std::move(d.video);

  auto header = detail::read_file_header(out.tags, d.attachments, out.video.codec);
  if (!header) return fail(header.status());
  if (header->format_version == 0) return out;  // plain video
  out.has_dydca = true;
  out.format_version = header->format_version;
  out.writer_version = header->writer_version;
  out.hr_width = header->hr_width;
  out.hr_height = header->hr_height;
  out.scale = header->scale;
  if (int64_t(out.video.packets.size()) != header->frames)
    return fail(Status::error("the video has " + std::to_string(out.video.packets.size()) +
                              " of " + std::to_string(header->frames) +
                              " frames (truncated or damaged file)"));

  if (header->format_version == 1) {
    auto blobs = detail::load_v1_blobs(*header, out.video);
    if (!blobs) return fail(blobs.status());
    out.models = std::move(blobs->models);
    out.model_info = std::move(blobs->model_info);
    out.model_blobs = std::move(blobs->model_blobs);
    out.routing = std::move(blobs->routing);
    out.routing_blob = std::move(blobs->routing_blob);
    return out;
  }

  auto segments = parse_segments(header->segments->data);
  if (!segments) return fail(segments.status().with_context(kSegmentsFilename));
  out.segments = std::move(*segments);
  auto first = detail::check_segments(
      out.segments, out.video, out.hr_width, out.hr_height, out.scale, header->frames,
      [&](size_t, const Model& m, const ModelBlobInfo& info, std::optional<RoutingMap>&& r) {
        out.segment_models.push_back(m);
        out.segment_model_info.push_back(info);
        out.segment_routing.push_back(std::move(r));
      });
  if (!first) return fail(first.status().with_context(kSegmentsFilename));
  out.models = {std::move(*first)};
  out.model_info = {out.segment_model_info[0]};
  out.model_blobs = {out.segments[0].model};
  return out;
}

}  // namespace dydca
