// `dydca info FILE.mkv`: what a dydca file carries: the LR video, HR size,
// scale, the model (architecture, paths with their cost, bytes), the segments
// (format 2: frames, full model or update, bytes; listed with -v or --json),
// the routing (chunks, QoS levels, bytes) and how the bitrate splits between
// them. Read as a stream: the header and blobs, then the video packets
// counted one at a time.
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "dydca/container.h"

namespace dydca::cli {

namespace {

double kbps(int64_t bytes, double seconds) {
  return seconds > 0 ? bytes * 8.0 / seconds / 1000 : 0;
}

std::string path_name(const PathSpec& p) {
  return "d" + std::to_string(p.depth) + " w" + std::to_string(p.width);
}

// The video track's size, counted packet by packet (nothing is held).
struct VideoCount {
  int64_t frames = 0;
  int64_t bytes = 0;
};
Expected<VideoCount> count_video(DydcaReader& reader) {
  VideoCount c;
  EncodedPacket p;
  while (true) {
    DYDCA_ASSIGN_OR_RETURN(auto got, reader.read_packet(p));
    if (!got) return c;
    ++c.frames;
    c.bytes += int64_t(p.data.size());
  }
}

nlohmann::json arch_json(const ModelArch& a) {
  nlohmann::json paths = nlohmann::json::array();
  for (size_t p = 0; p < a.paths.size(); ++p)
    paths.push_back({{"depth", a.paths[p].depth},
                     {"width", a.paths[p].width},
                     {"macs_per_lr_pixel", a.macs_per_lr_pixel(int(p))},
                     {"macs_per_hr_pixel", a.macs_per_hr_pixel(int(p))}});
  return {{"scale", a.scale},   {"channels", a.channels}, {"inner", a.inner},
          {"blocks", a.blocks}, {"paths", paths}};
}

nlohmann::json routing_json(const RoutingMap& r) {
  return {{"tile_size", r.tile_size}, {"tiles_x", r.tiles_x()}, {"tiles_y", r.tiles_y()},
          {"frames", r.frames},       {"chunks", r.num_chunks}, {"levels", r.levels()},
          {"chunk_path", r.chunk_path}};
}

}  // namespace

Subcommand add_info(CLI::App& app) {
  struct Opts {
    std::string input;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "info", "Show a dydca file: video, HR size, model, paths, segments, routing, bitrate split");
  sub->add_option("input", o->input, "A .mkv written by dydca (plain videos are reported as such)")
      ->required();
  sub->add_flag("--json", o->json, "Machine-readable output (every segment listed)");
  sub->footer("-v (global) lists every segment in the text output.");
  return {
      sub, [o]() -> int {
        // Header and blobs at open; the video is then counted packet by
        // packet for the bitrate split, never held.
        auto reader = DydcaReader::open(o->input);
        if (!reader) return fail(reader.status());
        DydcaReader& r = *reader;
        const bool dydca = r.has_dydca();
        // Models and routing before the packets (read_packet may fail at the
        // end of a truncated file; the header is still worth a clear error).
        std::vector<Model> models;
        std::optional<RoutingMap> routing;  // format 1: the file's; format 2: segment 0's
        if (dydca) {
          for (int i = 0; i < r.model_count(); ++i) {
            auto m = r.model(i);
            if (!m) return fail(m.status());
            models.push_back(std::move(*m));
          }
          auto rt = r.segment_routing(0);
          if (!rt) return fail(rt.status());
          routing = std::move(*rt);
        }
        auto count = count_video(r);
        if (!count) return fail(count.status());
        const EncodedVideo& v = r.video();
        const double fps = v.frame_rate.to_double();
        const double seconds = fps > 0 && count->frames > 0 ? double(count->frames) / fps
                                                            : r.duration_s();
        const int64_t video_bytes = count->bytes, audio_bytes = r.audio_bytes_read();
        const int64_t model_bytes = r.model_bytes(), routing_bytes = r.routing_bytes();
        const double total_kbps =
            kbps(video_bytes + model_bytes + routing_bytes + audio_bytes, seconds);
        const std::vector<DydcaSegment>& segments = r.segments();
        int updates = 0;
        for (const DydcaSegment& s : segments) updates += s.model_is_delta;

        if (o->json) {
          using nlohmann::json;
          json jmodels = json::array();
          for (size_t i = 0; i < models.size(); ++i) {
            json m = arch_json(models[i].arch);
            m["attachment"] = r.format_version() == 2 ? std::string(kSegmentsFilename)
                                                      : model_attachment_name(int(i));
            m["tensors"] = models[i].tensors.size();
            m["int8_scales"] = !models[i].act.empty();  // runs in int8 with --precision auto
            if (models.size() == 1) m["bytes"] = model_bytes;
            jmodels.push_back(std::move(m));
          }
          json jsegments = json::array();
          for (const DydcaSegment& s : segments)
            jsegments.push_back({{"first_frame", s.first_frame},
                                 {"frames", s.frames},
                                 {"model", s.model_is_delta ? "update" : "full"},
                                 {"model_bytes", s.model_bytes},
                                 {"routing_bytes", s.routing_bytes}});
          json jrouting = nullptr;
          if (routing) {
            jrouting = routing_json(*routing);
            jrouting["bytes"] = routing_bytes;
            if (r.format_version() == 2) jrouting["segment"] = 0;
          }
          json j = {{"path", o->input},
                    {"format", r.format()},
                    {"dydca", dydca},
                    {"format_version", r.format_version()},
                    {"writer_version", r.writer_version()},
                    {"video",
                     {{"codec", v.codec},
                      {"width", v.width},
                      {"height", v.height},
                      {"fps", fps},
                      {"frames", count->frames},
                      {"duration_s", seconds}}},
                    {"hr_width", r.hr_width()},
                    {"hr_height", r.hr_height()},
                    {"scale", r.scale()},
                    {"audio", r.has_audio()},
                    {"models", jmodels},
                    {"model_bytes", model_bytes},
                    {"segments", jsegments},
                    {"routing", jrouting},
                    {"routing_bytes", routing_bytes},
                    {"kbps",
                     {{"video", kbps(video_bytes, seconds)},
                      {"model", kbps(model_bytes, seconds)},
                      {"routing", kbps(routing_bytes, seconds)},
                      {"audio", kbps(audio_bytes, seconds)},
                      {"total", total_kbps}}}};
          std::printf("%s\n", j.dump(2).c_str());
          return 0;
        }

        if (dydca)
          std::printf("%s: dydca file, format %d (written by dydca %s)\n", o->input.c_str(),
                      r.format_version(), r.writer_version().c_str());
        else
          std::printf("%s: plain video, no dydca model (a decoder falls back to bicubic)\n",
                      o->input.c_str());
        std::printf("  video    %s %dx%d, %.3f fps, %lld frames, %.2f s%s\n", v.codec.c_str(),
                    v.width, v.height, fps, (long long)count->frames, seconds,
                    r.has_audio() ? ", with audio" : "");
        if (dydca) {
          std::printf("  output   %dx%d (scale x%d)\n", r.hr_width(), r.hr_height(), r.scale());
          for (size_t i = 0; i < models.size(); ++i) {
            const ModelArch& a = models[i].arch;
            const std::string name = r.format_version() == 2
                                         ? "segment 0's (" + std::string(kSegmentsFilename) + ")"
                                         : model_attachment_name(int(i));
            std::string bytes;
            if (models.size() == 1) bytes = std::to_string(model_bytes) + " bytes in all, ";
            std::printf("  model    %s: %sC=%d E=%d N=%d, %zu paths, %s\n", name.c_str(),
                        bytes.c_str(), a.channels, a.inner, a.blocks, a.paths.size(),
                        models[i].act.empty() ? "no int8 scales (fp32 only)"
                                              : "int8 scales (int8 with --precision auto)");
            for (size_t p = 0; p < a.paths.size(); ++p)
              std::printf("    path %zu  %-8s %7lld MACs/LR px  %8.1f MACs/HR px\n", p,
                          path_name(a.paths[p]).c_str(), (long long)a.macs_per_lr_pixel(int(p)),
                          a.macs_per_hr_pixel(int(p)));
          }
          if (r.format_version() == 2) {
            std::printf("  segments %zu: %zu full model%s + %d update%s, %.1f frames each on average\n",
                        segments.size(), segments.size() - size_t(updates),
                        segments.size() - size_t(updates) == 1 ? "" : "s", updates,
                        updates == 1 ? "" : "s",
                        segments.empty() ? 0.0 : double(r.frames()) / double(segments.size()));
            if (globals().verbosity > 0)
              for (size_t k = 0; k < segments.size(); ++k) {
                const DydcaSegment& s = segments[k];
                std::printf("    segment %zu  frames %d..%d (%d)  model %s %lld bytes  routing %lld bytes\n",
                            k, s.first_frame, s.first_frame + s.frames - 1, s.frames,
                            s.model_is_delta ? "update" : "full  ", (long long)s.model_bytes,
                            (long long)s.routing_bytes);
              }
          }
          if (routing) {
            const RoutingMap& rm = *routing;
            std::printf(
                "  routing  %lld bytes%s, %d chunks, %d QoS levels, %dx%d tiles of %d px, "
                "%d frames%s\n",
                (long long)routing_bytes, r.format_version() == 2 ? " in all" : "", rm.num_chunks,
                rm.levels(), rm.tiles_x(), rm.tiles_y(), rm.tile_size, rm.frames,
                r.format_version() == 2 ? " (segment 0)" : "");
            for (int l = 0; l < rm.levels(); ++l) {
              std::string table;
              for (uint8_t p : rm.chunk_path[size_t(l)]) table += " " + std::to_string(p);
              std::printf("    level %d  chunk->path%s\n", l, table.c_str());
            }
          } else {
            std::printf("  routing  none%s (one path for every tile)\n",
                        r.format_version() == 2 ? " in segment 0" : "");
          }
        }
        std::printf("  bitrate  video %.1f + model %.1f + routing %.2f + audio %.1f = %.1f kb/s\n",
                    kbps(video_bytes, seconds), kbps(model_bytes, seconds),
                    kbps(routing_bytes, seconds), kbps(audio_bytes, seconds), total_kbps);
        return 0;
      }};
}

}  // namespace dydca::cli
