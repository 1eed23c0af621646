// `dydca probe FILE`: what dydca sees in an input (streams, size, rate, frames).
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "dydca/media.h"

namespace dydca::cli {

Subcommand add_probe(CLI::App& app) {
  struct Opts {
    std::string input;
    bool json = false;
    bool count = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("probe", "Show an input's video stream: size, rate, frames");
  sub->add_option("input", o->input, "Any file FFmpeg reads")->required();
  sub->add_flag("--json", o->json, "Machine-readable output");
  sub->add_flag("--count", o->count, "Decode every frame to count them exactly");
  return {sub, [o]() -> int {
            auto reader = VideoReader::open(o->input, globals().threads);
            if (!reader) return fail(reader.status());
            VideoInfo info = reader->info();
            if (o->count) {
              Frame f;
              int64_t n = 0;
              while (true) {
                auto got = reader->read(f);
                if (!got) return fail(got.status());
                if (!*got) break;
                ++n;
              }
              info.frame_count = n;
            }
            if (o->json) {
              nlohmann::json j = {{"path", info.path},
                                  {"format", info.format},
                                  {"codec", info.codec},
                                  {"pixel_format", info.pixel_format},
                                  {"width", info.width},
                                  {"height", info.height},
                                  {"fps", info.frame_rate.to_double()},
                                  {"fps_num", info.frame_rate.num},
                                  {"fps_den", info.frame_rate.den},
                                  {"variable_frame_rate", info.variable_frame_rate},
                                  {"frames", info.frame_count},
                                  {"frames_exact", o->count},
                                  {"duration_s", info.duration_s},
                                  {"audio", info.has_audio ? nlohmann::json{{"codec", info.audio_codec},
                                                                             {"channels", info.audio_channels},
                                                                             {"sample_rate", info.audio_sample_rate}}
                                                           : nlohmann::json(nullptr)}};
              std::printf("%s\n", j.dump(2).c_str());
            } else {
              std::printf("%s: %s, video %s %dx%d %s, %.3f fps%s, %lld frames%s, %.2f s\n",
                          info.path.c_str(), info.format.c_str(), info.codec.c_str(), info.width,
                          info.height, info.pixel_format.c_str(), info.frame_rate.to_double(),
                          info.variable_frame_rate ? " (variable)" : "",
                          (long long)info.frame_count, o->count ? "" : " (estimated)",
                          info.duration_s);
              if (info.has_audio)
                std::printf("  audio %s, %d ch, %d Hz\n", info.audio_codec.c_str(),
                            info.audio_channels, info.audio_sample_rate);
            }
            return 0;
          }};
}

}  // namespace dydca::cli
