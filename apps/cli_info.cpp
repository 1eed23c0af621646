// `dydca info FILE.mkv`: what a dydca file carries: the LR video, HR size,
// scale, the model (architecture, paths with their cost, bytes), the routing
// (chunks, QoS levels, bytes) and how the bitrate splits between them.
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "dydca/container.h"

namespace dydca::cli {

namespace {

double kbps(int64_t bytes, double seconds) {
  return seconds > 0 ? bytes * 8.0 / seconds / 1000 : 0;
}

// MACs per HR output pixel of a path (what a client pays per displayed pixel).
double macs_per_hr_pixel(const ModelArch& a, int path) {
  return double(a.macs_per_lr_pixel(path)) / (a.scale * a.scale);
}

std::string path_name(const PathSpec& p) {
  return "d" + std::to_string(p.depth) + " w" + std::to_string(p.width);
}

}  // namespace

Subcommand add_info(CLI::App& app) {
  struct Opts {
    std::string input;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "info", "Show a dydca file: video, HR size, model, paths, routing, bitrate split");
  sub->add_option("input", o->input, "A .mkv written by dydca (plain videos are reported as such)")
      ->required();
  sub->add_flag("--json", o->json, "Machine-readable output");
  return {
      sub, [o]() -> int {
        auto file = read_dydca_file(o->input);
        if (!file) return fail(file.status());
        const DydcaFile& f = *file;
        const EncodedVideo& v = f.video;
        const double seconds = v.duration_s() > 0 ? v.duration_s() : f.duration_s;
        const int64_t video_bytes = v.total_bytes();
        const int64_t model_bytes = f.model_bytes(), routing_bytes = f.routing_bytes();
        const double total_kbps =
            kbps(video_bytes + model_bytes + routing_bytes + f.audio_bytes, seconds);
        if (o->json) {
          using nlohmann::json;
          json models = json::array();
          for (size_t i = 0; i < f.models.size(); ++i) {
            const ModelArch& a = f.models[i].arch;
            json paths = json::array();
            for (size_t p = 0; p < a.paths.size(); ++p)
              paths.push_back({{"depth", a.paths[p].depth},
                               {"width", a.paths[p].width},
                               {"macs_per_lr_pixel", a.macs_per_lr_pixel(int(p))},
                               {"macs_per_hr_pixel", macs_per_hr_pixel(a, int(p))}});
            models.push_back({{"attachment", model_attachment_name(int(i))},
                              {"bytes", f.model_blobs[i].size()},
                              {"format_version", f.model_info[i].version},
                              {"weights", weight_format_name(f.model_info[i].weights)},
                              {"scale", a.scale},
                              {"channels", a.channels},
                              {"inner", a.inner},
                              {"blocks", a.blocks},
                              {"tensors", f.models[i].tensors.size()},
                              {"paths", paths}});
          }
          json routing = nullptr;
          if (f.routing) {
            const RoutingMap& r = *f.routing;
            routing = {{"bytes", routing_bytes}, {"tile_size", r.tile_size},
                       {"tiles_x", r.tiles_x()}, {"tiles_y", r.tiles_y()},
                       {"frames", r.frames},     {"chunks", r.num_chunks},
                       {"levels", r.levels()},   {"chunk_path", r.chunk_path}};
          }
          json j = {{"path", o->input},
                    {"format", f.format},
                    {"dydca", f.has_dydca},
                    {"writer_version", f.writer_version},
                    {"video",
                     {{"codec", v.codec},
                      {"width", v.width},
                      {"height", v.height},
                      {"fps", v.frame_rate.to_double()},
                      {"frames", v.packets.size()},
                      {"duration_s", seconds}}},
                    {"hr_width", f.hr_width},
                    {"hr_height", f.hr_height},
                    {"scale", f.scale},
                    {"audio", f.has_audio},
                    {"models", models},
                    {"model_bytes", model_bytes},
                    {"routing", routing},
                    {"routing_bytes", routing_bytes},
                    {"kbps",
                     {{"video", kbps(video_bytes, seconds)},
                      {"model", kbps(model_bytes, seconds)},
                      {"routing", kbps(routing_bytes, seconds)},
                      {"audio", kbps(f.audio_bytes, seconds)},
                      {"total", total_kbps}}}};
          std::printf("%s\n", j.dump(2).c_str());
          return 0;
        }

        std::printf("%s: %s\n", o->input.c_str(),
                    f.has_dydca ? ("dydca file (written by dydca " + f.writer_version + ")").c_str()
                                : "plain video, no dydca model (a decoder falls back to bicubic)");
        std::printf("  video    %s %dx%d, %.3f fps, %zu frames, %.2f s%s\n", v.codec.c_str(),
                    v.width, v.height, v.frame_rate.to_double(), v.packets.size(), seconds,
                    f.has_audio ? ", with audio" : "");
        if (f.has_dydca) {
          std::printf("  output   %dx%d (scale x%d)\n", f.hr_width, f.hr_height, f.scale);
          for (size_t i = 0; i < f.models.size(); ++i) {
            const ModelArch& a = f.models[i].arch;
            std::printf("  model    %s: %zu bytes, %s weights, C=%d E=%d N=%d, %zu paths\n",
                        model_attachment_name(int(i)).c_str(), f.model_blobs[i].size(),
                        weight_format_name(f.model_info[i].weights), a.channels, a.inner, a.blocks,
                        a.paths.size());
            for (size_t p = 0; p < a.paths.size(); ++p)
              std::printf("    path %zu  %-8s %7lld MACs/LR px  %8.1f MACs/HR px\n", p,
                          path_name(a.paths[p]).c_str(), (long long)a.macs_per_lr_pixel(int(p)),
                          macs_per_hr_pixel(a, int(p)));
          }
          if (f.routing) {
            const RoutingMap& r = *f.routing;
            std::printf(
                "  routing  %lld bytes, %d chunks, %d QoS levels, %dx%d tiles of %d px, "
                "%d frames\n",
                (long long)routing_bytes, r.num_chunks, r.levels(), r.tiles_x(), r.tiles_y(),
                r.tile_size, r.frames);
            for (int l = 0; l < r.levels(); ++l) {
              std::string table;
              for (uint8_t p : r.chunk_path[size_t(l)]) table += " " + std::to_string(p);
              std::printf("    level %d  chunk->path%s\n", l, table.c_str());
            }
          } else {
            std::printf("  routing  none (one path for every tile)\n");
          }
        }
        std::printf("  bitrate  video %.1f + model %.1f + routing %.2f + audio %.1f = %.1f kb/s\n",
                    kbps(video_bytes, seconds), kbps(model_bytes, seconds),
                    kbps(routing_bytes, seconds), kbps(f.audio_bytes, seconds), total_kbps);
        return 0;
      }};
}

}  // namespace dydca::cli
