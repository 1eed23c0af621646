// The dydca Matroska file: LR H.264 video (+ copied audio), the blobs as
// attachments, dydca tags. Muxing and demuxing go through media's
// write_video_file / demux_file; this file adds naming, validation and the
// cross-checks between video, models and routing.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>

#include "dydca/container.h"

#ifndef DYDCA_VERSION_STRING
#define DYDCA_VERSION_STRING "unknown"
#endif

namespace dydca {

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

// Matroska tag names are case-insensitive in practice (muxers differ).
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

// Consistency of everything a dydca file carries. Used by the writer (before
// anything is written) and by the reader.
Status check_consistency(const EncodedVideo& video, const std::vector<Model>& models,
                         const RoutingMap* routing, int hr_width, int hr_height, int scale) {
  if (models.empty()) return Status::error("no model (model.dydca)");
  for (size_t i = 0; i < models.size(); ++i)
    if (models[i].arch.scale != scale)
      return Status::error(model_attachment_name(int(i)) + " has scale " +
                           std::to_string(models[i].arch.scale) + ", the file says " +
                           std::to_string(scale));
  DYDCA_TRY(check_hr_size(hr_width, video.width, scale, "width"));
  DYDCA_TRY(check_hr_size(hr_height, video.height, scale, "height"));
  if (!routing) return Status::ok();
  if (routing->lr_width != video.width || routing->lr_height != video.height)
    return Status::error("routing is for " + std::to_string(routing->lr_width) + "x" +
                         std::to_string(routing->lr_height) + " but the video is " +
                         std::to_string(video.width) + "x" + std::to_string(video.height));
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
  if (int64_t(video.packets.size()) != routing->frames)
    return Status::error("routing covers " + std::to_string(routing->frames) +
                         " frames but the video has " + std::to_string(video.packets.size()));
  return Status::ok();
}

bool starts_with_ebml_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(magic), 4);
  return in && magic[0] == 0x1a && magic[1] == 0x45 && magic[2] == 0xdf && magic[3] == 0xa3;
}

}  // namespace

std::string model_attachment_name(int index) {
  return index == 0 ? "model.dydca" : "model" + std::to_string(index) + ".dydca";
}

int64_t DydcaFile::model_bytes() const {
  int64_t n = 0;
  for (const auto& b : model_blobs) n += int64_t(b.size());
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
  DYDCA_TRY(fail(check_consistency(lr_video, models, routing ? &*routing : nullptr, params.hr_width,
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

Expected<DydcaFile> read_dydca_file(const std::string& path) {
  auto demuxed = demux_file(path);
  if (!demuxed) {
    // libavformat's message for a cut Matroska file is a bare "Input/output
    // error"; say what it most likely means.
    if (starts_with_ebml_magic(path))
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

  const std::string* version = find_tag(out.tags, kTagVersion);
  std::vector<const Attachment*> model_att(size_t(kMaxModelsPerFile), nullptr);
  const Attachment* routing_att = nullptr;
  int model_count = 0;
  for (const Attachment& a : d.attachments) {
    if (a.mimetype == kModelMimetype) {
      const int i = model_index_from_name(a.filename);
      if (i < 0)
        return fail(Status::error("model attachment has an unexpected name \"" +
                                  a.filename.substr(0, 64) + "\""));
      if (model_att[size_t(i)]) return fail(Status::error(a.filename + " appears twice"));
      model_att[size_t(i)] = &a;
      model_count = std::max(model_count, i + 1);
    } else if (a.mimetype == kRoutingMimetype) {
      if (routing_att) return fail(Status::error("more than one routing attachment"));
      routing_att = &a;
    }
  }
  if (!version && model_count == 0 && !routing_att) return out;  // plain video
  out.has_dydca = true;

  // Tags first: they say what must be there.
  if (!version) return fail(Status::error("dydca attachments without the DYDCA_VERSION tag"));
  out.writer_version = *version;
  auto int_tag = [&](const char* key, int& value) -> Status {
    const std::string* v = find_tag(out.tags, key);
    if (!v) return Status::error(std::string("missing tag ") + key);
    if (!parse_int(*v, value) || value < 1 || value > 4 * kMaxDimension)
      return Status::error(std::string("tag ") + key + " has an invalid value");
    return Status::ok();
  };
  DYDCA_TRY(fail(int_tag(kTagHrWidth, out.hr_width)));
  DYDCA_TRY(fail(int_tag(kTagHrHeight, out.hr_height)));
  DYDCA_TRY(fail(int_tag(kTagScale, out.scale)));
  {
    const std::string* frames = find_tag(out.tags, kTagFrames);
    int expected = 0;
    if (!frames || !parse_int(*frames, expected) || expected < 1)
      return fail(Status::error(std::string("missing or invalid tag ") + kTagFrames));
    if (int64_t(out.video.packets.size()) != expected)
      return fail(Status::error("the video has " + std::to_string(out.video.packets.size()) +
                                " of " + std::to_string(expected) +
                                " frames (truncated or damaged file)"));
  }
  if (const std::string* blobs = find_tag(out.tags, kTagBlobs)) {
    size_t start = 0;
    while (start <= blobs->size()) {
      size_t end = std::min(blobs->find(',', start), blobs->size());
      const std::string name = blobs->substr(start, end - start);
      const int i = model_index_from_name(name);
      const bool present = name == kRoutingFilename ? routing_att != nullptr
                           : i >= 0                 ? model_att[size_t(i)] != nullptr
                                                    : true;  // unknown names: newer writers
      if (!present) return fail(Status::error("missing attachment " + name));
      start = end + 1;
    }
  }
  if (model_count == 0) return fail(Status::error("missing attachment model.dydca"));

  for (int i = 0; i < model_count; ++i) {
    const std::string name = model_attachment_name(i);
    if (!model_att[size_t(i)]) return fail(Status::error("missing attachment " + name));
    ModelBlobInfo info;
    auto m = parse_model(model_att[size_t(i)]->data, &info);
    if (!m) return fail(m.status().with_context(name));
    out.models.push_back(std::move(*m));
    out.model_info.push_back(info);
    out.model_blobs.push_back(model_att[size_t(i)]->data);
  }
  if (routing_att) {
    auto r = parse_routing(routing_att->data);
    if (!r) return fail(r.status().with_context(kRoutingFilename));
    out.routing = std::move(*r);
    out.routing_blob = routing_att->data;
  }
  if (out.video.codec != "h264")
    return fail(Status::error("the video track is " + out.video.codec + ", dydca needs h264"));
  DYDCA_TRY(fail(check_consistency(out.video, out.models, out.routing ? &*out.routing : nullptr,
                                   out.hr_width, out.hr_height, out.scale)));
  return out;
}

}  // namespace dydca
