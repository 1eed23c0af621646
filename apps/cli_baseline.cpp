// `dydca baseline IN`: what dydca must beat on this clip. Encodes the LR
// picture (HR / scale) with x264, upscales the decoded LR with bicubic, and
// compares with HR x264 spending the same number of bits.
#include <chrono>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "dydca/media.h"
#include "dydca/metrics.h"

namespace dydca::cli {

Subcommand add_baseline(CLI::App& app) {
  struct Opts {
    std::string input;
    int scale = 2;
    int crf = 23;
    int bitrate = 0;
    std::string preset = "medium";
    int64_t max_frames = 120;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "baseline", "LR x264 + bicubic vs HR x264 at the same bitrate (what SR has to beat)");
  sub->add_option("input", o->input, "Any file FFmpeg reads")->required();
  sub->add_option("-s,--scale", o->scale, "Downscale factor")->check(CLI::IsMember({2, 3, 4}))
      ->capture_default_str();
  sub->add_option("--crf", o->crf, "x264 CRF of the LR stream")->check(CLI::Range(0, 51))
      ->capture_default_str();
  sub->add_option("--bitrate", o->bitrate, "Target kb/s of the LR stream (2-pass; overrides --crf)")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--preset", o->preset, "x264 preset")->capture_default_str();
  sub->add_option("--max-frames", o->max_frames, "Frames to use (0 = all)")->capture_default_str();
  sub->add_flag("--json", o->json, "Machine-readable output");
  return {sub, [o]() -> int {
            auto t0 = std::chrono::steady_clock::now();
            VideoInfo info;
            ReadOptions ro;
            ro.max_frames = o->max_frames;
            ro.threads = globals().threads;
            auto progress = make_progress();
            auto frames = read_all_frames(o->input, &info, ro, progress);
            if (!frames) return fail(frames.status());
            const int s = o->scale;
            if (info.width < 16 * s || info.height < 16 * s)
              return fail(Status::error(o->input + ": " + std::to_string(info.width) + "x" +
                                        std::to_string(info.height) + " is too small for scale " +
                                        std::to_string(s)));
            std::vector<Frame> hr, lr;
            for (auto& f : *frames) {
              hr.push_back(pad_to_multiple(f, 2 * s));
              auto d = downscale(hr.back(), s, ScaleFilter::kLanczos);  // as the encoder (--downscale auto)
              if (!d) return fail(d.status());
              lr.push_back(std::move(*d));
            }
            frames->clear();
            X264Config cfg;
            cfg.preset = o->preset;
            cfg.crf = o->crf;
            cfg.threads = globals().threads;
            if (o->bitrate > 0) {
              cfg.bitrate_kbps = o->bitrate;
              cfg.two_pass = true;
            }
            auto lr_enc = encode_h264(lr, info.frame_rate, cfg, progress);
            if (!lr_enc) return fail(lr_enc.status());
            auto lr_dec = decode_h264(*lr_enc, globals().threads);
            if (!lr_dec) return fail(lr_dec.status());
            QualityAccumulator bicubic;
            for (size_t i = 0; i < hr.size(); ++i) {
              auto up = resize((*lr_dec)[i], hr[i].width, hr[i].height, ScaleFilter::kBicubic);
              if (!up) return fail(up.status());
              // Quality is measured on the picture the viewer sees: HR size
              // before padding.
              Status st = bicubic.add(crop(hr[i], info.width, info.height),
                                      crop(*up, info.width, info.height));
              if (!st) return fail(st);
            }
            // HR x264 at the LR stream's bitrate (2-pass, same preset).
            X264Config hcfg = cfg;
            hcfg.bitrate_kbps = std::max(1, int(lr_enc->bitrate_kbps() + 0.5));
            hcfg.two_pass = true;
            std::vector<Frame> hr_even;
            for (auto& f : hr) hr_even.push_back(std::move(f));
            auto hr_enc = encode_h264(hr_even, info.frame_rate, hcfg, progress);
            if (!hr_enc) return fail(hr_enc.status());
            auto hr_dec = decode_h264(*hr_enc, globals().threads);
            if (!hr_dec) return fail(hr_dec.status());
            QualityAccumulator hrq;
            for (size_t i = 0; i < hr_even.size(); ++i) {
              Status st = hrq.add(crop(hr_even[i], info.width, info.height),
                                  crop((*hr_dec)[i], info.width, info.height));
              if (!st) return fail(st);
            }
            ClipQuality b = bicubic.result(), h = hrq.result();
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (o->json) {
              nlohmann::json j = {
                  {"input", o->input}, {"frames", b.frames}, {"scale", s},
                  {"hr", {info.width, info.height}}, {"lr", {lr[0].width, lr[0].height}},
                  {"lr_x264_bicubic", {{"kbps", lr_enc->bitrate_kbps()}, {"psnr_y", b.psnr_y},
                                       {"psnr_yuv", b.psnr_yuv}, {"ssim_y", b.ssim_y}}},
                  {"hr_x264", {{"kbps", hr_enc->bitrate_kbps()}, {"psnr_y", h.psnr_y},
                               {"psnr_yuv", h.psnr_yuv}, {"ssim_y", h.ssim_y}}},
                  {"seconds", secs}};
              std::printf("%s\n", j.dump(2).c_str());
            } else {
              std::printf("%s: %d frames, HR %dx%d, LR %dx%d (x%d), preset %s\n", o->input.c_str(),
                          b.frames, info.width, info.height, lr[0].width, lr[0].height, s,
                          o->preset.c_str());
              std::printf("  LR x264 + bicubic : %8.1f kb/s  PSNR-Y %6.2f dB  PSNR-YUV %6.2f  SSIM-Y %.4f\n",
                          lr_enc->bitrate_kbps(), b.psnr_y, b.psnr_yuv, b.ssim_y);
              std::printf("  HR x264 (2-pass)  : %8.1f kb/s  PSNR-Y %6.2f dB  PSNR-YUV %6.2f  SSIM-Y %.4f\n",
                          hr_enc->bitrate_kbps(), h.psnr_y, h.psnr_yuv, h.ssim_y);
              std::printf("  gap SR must close : %+.2f dB PSNR-Y (plus its own model bits)\n",
                          h.psnr_y - b.psnr_y);
              std::printf("  time %.1f s\n", secs);
            }
            return 0;
          }};
}

}  // namespace dydca::cli
