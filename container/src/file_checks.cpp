#include "file_checks.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>

#include "model_internal.h"

#ifndef DYDCA_VERSION_STRING
#define DYDCA_VERSION_STRING "unknown"
#endif

namespace dydca::detail {

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

// "model.dydca" -> 0, "model<i>.dydca" -> i (i >= 1, no leading zeros); -1 otherwise.
int model_index_from_name(const std::string& name) {
  if (name == "model.dydca") return 0;
  const std::string prefix = "model", suffix = ".dydca";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  const std::string digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  int i = 0;
  if (digits[0] == '0' || !parse_int(digits, i) || i < 1 || i >= kMaxModelsPerFile) return -1;
  return i;
}

Status check_hr_size(int hr, int lr, int scale, const char* what) {
  // The encoder pads HR to a multiple of 2*scale (so LR has even sizes) and
  // the decoder crops back: LR*scale - HR is in [0, 2*scale).
  const int64_t padded = int64_t(lr) * scale;
  if (hr < 1 || hr > padded || padded - hr >= 2 * scale)
    return Status::error(std::string("HR ") + what + " " + std::to_string(hr) +
                         " does not match LR " + what + " " + std::to_string(lr) + " at scale " +
                         std::to_string(scale));
  return Status::ok();
}

Status check_routing_video(const RoutingMap& routing, const EncodedVideo& video) {
  if (routing.lr_width != video.width || routing.lr_height != video.height)
    return Status::error("routing is for " + std::to_string(routing.lr_width) + "x" +
                         std::to_string(routing.lr_height) + " but the video is " +
                         std::to_string(video.width) + "x" + std::to_string(video.height));
  return Status::ok();
}

}  // namespace

const std::string* find_tag(const std::map<std::string, std::string>& tags, const char* key) {
  for (const auto& [k, v] : tags)
    if (upper(k) == key) return &v;
  return nullptr;
}

bool parse_int(const std::string& s, int& out) {
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

bool starts_with_ebml_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(magic), 4);
  return in && magic[0] == 0x1a && magic[1] == 0x45 && magic[2] == 0xdf && magic[3] == 0xa3;
}

Status check_consistency(const EncodedVideo& video, const std::vector<Model>& models,
                         const RoutingMap* routing, int64_t frames, int hr_width, int hr_height,
                         int scale) {
  if (models.empty()) return Status::error("no model (model.dydca)");
  for (size_t i = 0; i < models.size(); ++i)
    if (models[i].arch.scale != scale)
      return Status::error(model_attachment_name(int(i)) + " has scale " +
                           std::to_string(models[i].arch.scale) + ", the file says " +
                           std::to_string(scale));
  DYDCA_TRY(check_hr_size(hr_width, video.width, scale, "width"));
  DYDCA_TRY(check_hr_size(hr_height, video.height, scale, "height"));
  if (!routing) return Status::ok();
  DYDCA_TRY(check_routing_video(*routing, video));
  if (models.size() == 1) {
    DYDCA_TRY(check_routing_fits_model(*routing, models[0].arch));
  } else {
    // Multi-model baselines: a routing "path" id may name a model instead of
    // a path; it must fit one of the two readings.
    ModelArch widest;
    widest.paths.resize(models.size());
    for (const Model& m : models)
      if (m.arch.paths.size() > widest.paths.size()) widest.paths.resize(m.arch.paths.size());
    DYDCA_TRY(check_routing_fits_model(*routing, widest));
  }
  if (frames != routing->frames)
    return Status::error("routing covers " + std::to_string(routing->frames) +
                         " frames but the video has " + std::to_string(frames));
  return Status::ok();
}

Expected<FileHeader> read_file_header(const std::map<std::string, std::string>& tags,
                                      const std::vector<Attachment>& attachments,
                                      const std::string& video_codec) {
  FileHeader h;
  const std::string* version = find_tag(tags, kTagVersion);
  const std::string* format = find_tag(tags, kTagFormat);
  std::vector<const Attachment*> model_att(size_t(kMaxModelsPerFile), nullptr);
  int model_count = 0;
  for (const Attachment& a : attachments) {
    if (a.mimetype == kModelMimetype) {
      const int i = model_index_from_name(a.filename);
      if (i < 0)
        return Status::error("model attachment has an unexpected name \"" +
                             blob::printable(a.filename) + "\"");
      if (model_att[size_t(i)]) return Status::error(a.filename + " appears twice");
      model_att[size_t(i)] = &a;
      model_count = std::max(model_count, i + 1);
    } else if (a.mimetype == kRoutingMimetype) {
      if (h.routing) return Status::error("more than one routing attachment");
      h.routing = &a;
    } else if (a.mimetype == kSegmentsMimetype) {
      if (h.segments) return Status::error("more than one segment table attachment");
      h.segments = &a;
    }
  }
  if (!version && !format && model_count == 0 && !h.routing && !h.segments)
    return h;  // plain video

  // Tags first: they say what must be there.
  if (!version) return Status::error("dydca attachments without the DYDCA_VERSION tag");
  h.writer_version = *version;
  h.format_version = 1;
  if (format && (!parse_int(*format, h.format_version) || h.format_version < 1))
    return Status::error(std::string("tag ") + kTagFormat + " has an invalid value");
  if (h.format_version > kDydcaFormatVersion)
    return Status::error("dydca file format " + std::to_string(h.format_version) +
                         " is not supported (this dydca reads formats 1.." +
                         std::to_string(kDydcaFormatVersion) + "; the file needs a newer dydca)",
                         StatusCode::kUnsupported);
  auto int_tag = [&](const char* key, int& value) -> Status {
    const std::string* v = find_tag(tags, key);
    if (!v) return Status::error(std::string("missing tag ") + key);
    if (!parse_int(*v, value) || value < 1 || value > 4 * kMaxDimension)
      return Status::error(std::string("tag ") + key + " has an invalid value");
    return Status::ok();
  };
  DYDCA_TRY(int_tag(kTagHrWidth, h.hr_width));
  DYDCA_TRY(int_tag(kTagHrHeight, h.hr_height));
  DYDCA_TRY(int_tag(kTagScale, h.scale));
  {
    const std::string* frames = find_tag(tags, kTagFrames);
    if (!frames || !parse_int(*frames, h.frames) || h.frames < 1 || h.frames > kMaxFileFrames)
      return Status::error(std::string("missing or invalid tag ") + kTagFrames);
  }
  if (const std::string* blobs = find_tag(tags, kTagBlobs)) {
    size_t start = 0;
    while (start <= blobs->size()) {
      size_t end = std::min(blobs->find(',', start), blobs->size());
      const std::string name = blobs->substr(start, end - start);
      const int i = model_index_from_name(name);
      const bool present = name == kRoutingFilename    ? h.routing != nullptr
                           : name == kSegmentsFilename ? h.segments != nullptr
                           : i >= 0                    ? model_att[size_t(i)] != nullptr
                                                       : true;  // unknown names: newer writers
      if (!present) return Status::error("missing attachment " + name);
      start = end + 1;
    }
  }
  if (h.format_version == 1) {
    if (h.segments)
      return Status::error(std::string(kSegmentsFilename) + " in a format-1 file (no " +
                           kTagFormat + " tag)");
    if (model_count == 0) return Status::error("missing attachment model.dydca");
    for (int i = 0; i < model_count; ++i) {
      if (!model_att[size_t(i)])
        return Status::error("missing attachment " + model_attachment_name(i));
      h.models.push_back(model_att[size_t(i)]);
    }
  } else {
    if (model_count > 0 || h.routing)
      return Status::error(std::string("a format-2 file carries ") +
                           (model_count > 0 ? "model" : "routing") +
                           " attachments (its models and routing belong in " +
                           kSegmentsFilename + ")");
    if (!h.segments) return Status::error(std::string("missing attachment ") + kSegmentsFilename);
  }
  if (video_codec != "h264")
    return Status::error("the video track is " + video_codec + ", dydca needs h264",
                         StatusCode::kUnsupported);
  return h;
}

Expected<V1Blobs> load_v1_blobs(const FileHeader& header, const EncodedVideo& video) {
  V1Blobs out;
  for (size_t i = 0; i < header.models.size(); ++i) {
    const std::string name = model_attachment_name(int(i));
    ModelBlobInfo info;
    auto m = parse_model(header.models[i]->data, &info);
    if (!m) return m.status().with_context(name);
    out.models.push_back(std::move(*m));
    out.model_info.push_back(info);
    out.model_blobs.push_back(header.models[i]->data);
  }
  if (header.routing) {
    auto r = parse_routing(header.routing->data);
    if (!r) return r.status().with_context(kRoutingFilename);
    out.routing = std::move(*r);
    out.routing_blob = header.routing->data;
  }
  DYDCA_TRY(check_consistency(video, out.models, out.routing ? &*out.routing : nullptr,
                              header.frames, header.hr_width, header.hr_height, header.scale));
  return out;
}

std::string segment_name(const std::vector<SegmentRecord>& segments, size_t k) {
  const SegmentRecord& s = segments[k];
  return "segment " + std::to_string(k) + " (frames " + std::to_string(s.first_frame) + ".." +
         std::to_string(int64_t(s.first_frame) + s.frames - 1) + ")";
}

Expected<Model> segment_model_from(const std::vector<SegmentRecord>& segments, size_t k,
                                   const Model* previous, ModelBlobInfo* info) {
  const SegmentRecord& s = segments[k];
  if (!s.model_is_delta) {
    auto m = parse_model(s.model, info);
    if (!m) return m.status().with_context(segment_name(segments, k) + ": model");
    return m;
  }
  if (!previous)
    return Status::error(segment_name(segments, k) +
                         ": a model update needs the previous segment's model");
  auto m = apply_model_delta(*previous, s.model, info);
  if (!m) return m.status().with_context(segment_name(segments, k));
  return m;
}

Expected<Model> check_segments(const std::vector<SegmentRecord>& segments,
                               const EncodedVideo& video, int hr_width, int hr_height, int scale,
                               int64_t frames, const SegmentVisitor& visit) {
  DYDCA_TRY(validate_segment_table(segments));
  std::optional<Model> first, previous;
  int levels = 0;  // of the first routed segment: the client's QoS levels are one set per file
  for (size_t k = 0; k < segments.size(); ++k) {
    const std::string where = segment_name(segments, k);
    ModelBlobInfo info;
    DYDCA_ASSIGN_OR_RETURN(auto m,
                           segment_model_from(segments, k, previous ? &*previous : nullptr, &info));
    if (!first) {
      DYDCA_TRY(check_consistency(video, {m}, nullptr, frames, hr_width, hr_height, scale)
                    .with_context(where));
      first = m;
    } else if (!blob::same_arch(m.arch, first->arch)) {
      return Status::error(where + ": the model's architecture (" + blob::arch_string(m.arch) +
                           ") differs from segment 0's (" + blob::arch_string(first->arch) +
                           "); a file has one architecture");
    }
    std::optional<RoutingMap> routing;
    if (!segments[k].routing.empty()) {
      auto r = parse_routing(segments[k].routing);
      if (!r) return r.status().with_context(where + ": routing");
      DYDCA_TRY(check_routing_video(*r, video).with_context(where));
      DYDCA_TRY(check_routing_fits_model(*r, m.arch).with_context(where));
      if (r->frames != segments[k].frames)
        return Status::error(where + ": routing covers " + std::to_string(r->frames) +
                             " frames, the segment has " + std::to_string(segments[k].frames));
      if (levels == 0) levels = r->levels();
      if (r->levels() != levels)
        return Status::error(where + ": routing has " + std::to_string(r->levels()) +
                             " QoS levels, an earlier segment " + std::to_string(levels) +
                             "; a file has one set of levels");
      routing = std::move(*r);
    }
    if (visit) visit(k, m, info, std::move(routing));
    previous = std::move(m);
  }
  const int64_t covered = int64_t(segments.back().first_frame) + segments.back().frames;
  if (covered != frames)
    return Status::error("the segments cover " + std::to_string(covered) +
                         " frames but the video has " + std::to_string(frames));
  return std::move(*first);
}

MuxOptions v2_mux_options(const std::vector<uint8_t>& segments_blob, int hr_width, int hr_height,
                          int scale, int64_t frames, const DydcaV2WriteParams& params) {
  MuxOptions mux;
  mux.copy_audio_from = params.copy_audio_from;
  mux.tags = params.extra_tags;
  mux.attachments.push_back({kSegmentsFilename, kSegmentsMimetype, segments_blob});
  mux.tags[kTagVersion] = DYDCA_VERSION_STRING;
  mux.tags[kTagFormat] = std::to_string(kDydcaFormatVersion);
  mux.tags[kTagHrWidth] = std::to_string(hr_width);
  mux.tags[kTagHrHeight] = std::to_string(hr_height);
  mux.tags[kTagScale] = std::to_string(scale);
  mux.tags[kTagBlobs] = kSegmentsFilename;
  mux.tags[kTagFrames] = std::to_string(frames);
  return mux;
}

}  // namespace dydca::detail
