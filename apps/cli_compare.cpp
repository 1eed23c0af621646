// `dydca compare REF TEST`: full-frame PSNR-Y / PSNR-YUV / SSIM-Y of two clips.
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "dydca/media.h"
#include "dydca/metrics.h"

namespace dydca::cli {

Subcommand add_compare(CLI::App& app) {
  struct Opts {
    std::string reference, test;
    bool json = false;
    bool per_frame = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("compare", "Full-frame PSNR-Y, PSNR-YUV (6:1:1), SSIM-Y");
  sub->add_option("reference", o->reference, "Reference clip")->required();
  sub->add_option("test", o->test, "Clip to measure (same size and frame count)")->required();
  sub->add_flag("--json", o->json, "Machine-readable output");
  sub->add_flag("--per-frame", o->per_frame, "Also print every frame's values");
  return {sub, [o]() -> int {
            auto ref = VideoReader::open(o->reference, globals().threads);
            if (!ref) return fail(ref.status());
            auto tst = VideoReader::open(o->test, globals().threads);
            if (!tst) return fail(tst.status());
            QualityAccumulator acc;
            Frame a, b;
            auto progress = make_progress();
            int64_t n = 0;
            while (true) {
              auto ga = ref->read(a);
              if (!ga) return fail(ga.status());
              auto gb = tst->read(b);
              if (!gb) return fail(gb.status());
              if (*ga != *gb)
                return fail(Status::error("the clips have different frame counts (" +
                                          std::to_string(n + (*ga ? 1 : 0)) + " vs " +
                                          std::to_string(n + (*gb ? 1 : 0)) + "+)"));
              if (!*ga) break;
              Status s = acc.add(a, b);
              if (!s) return fail(s);
              ++n;
              if (progress) progress({"compare", n, ref->info().frame_count});
            }
            ClipQuality q = acc.result();
            if (o->json) {
              nlohmann::json j = {{"frames", q.frames},
                                  {"psnr_y", q.psnr_y},
                                  {"psnr_y_frame_mean", q.psnr_y_frame_mean},
                                  {"psnr_yuv", q.psnr_yuv},
                                  {"psnr_yuv_frame_mean", q.psnr_yuv_frame_mean},
                                  {"ssim_y", q.ssim_y}};
              if (o->per_frame) {
                auto& arr = j["per_frame"] = nlohmann::json::array();
                for (const auto& f : q.per_frame)
                  arr.push_back({{"psnr_y", f.psnr_y}, {"psnr_yuv", f.psnr_yuv}, {"ssim_y", f.ssim_y}});
              }
              std::printf("%s\n", j.dump(2).c_str());
            } else {
              if (o->per_frame)
                for (size_t i = 0; i < q.per_frame.size(); ++i)
                  std::printf("frame %zu: PSNR-Y %.4f  PSNR-YUV %.4f  SSIM-Y %.6f\n", i,
                              q.per_frame[i].psnr_y, q.per_frame[i].psnr_yuv, q.per_frame[i].ssim_y);
              std::printf(
                  "%d frames: PSNR-Y %.4f dB (mean of frames %.4f), PSNR-YUV %.4f dB (%.4f), "
                  "SSIM-Y %.6f\n",
                  q.frames, q.psnr_y, q.psnr_y_frame_mean, q.psnr_yuv, q.psnr_yuv_frame_mean,
                  q.ssim_y);
            }
            return 0;
          }};
}

}  // namespace dydca::cli
