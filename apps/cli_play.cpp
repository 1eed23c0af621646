// `dydca play IN.mkv`: the upscaled video in an SDL2 window, paced at the
// stream's frame rate, with the QoS controller choosing the level per frame
// (or `--level N` pinning one). Keys: space pause, q / Esc quit. A line at the
// top of the picture (and the window title) shows fps, level and late frames.
//
// A thin tool over libdydca (dydca/dydca.h): the library decodes on its own
// threads and runs the QoS controller (level -1); the player polls
// dydca_get_picture (nonblocking) from its render loop and owns SDL (events,
// texture, present) and the clock. A picture is shown at anchor + n / fps; a
// picture that is not ready by then is late (the player stutters: the anchor
// slides, lateness does not cascade), and the player tells the library
// (dydca_report_late; settings.caller_reports_late makes those reports the
// controller's only source of lateness). Late pictures are counted apart at
// segment switches (the first picture of every segment after the first,
// whose SR moved to the next segment's runtime: DydcaPictureStats).
//
// Audio is not played: media/ has no audio decoder yet (the audio track stays
// in the file; `dydca decode x.mkv -o out.mp4` keeps it).
#include <SDL.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "cli_common.h"

namespace dydca::cli {

namespace {

using Clock = std::chrono::steady_clock;

// ---- a 5x7 bitmap font for the status line (SDL has no text) ----
struct Glyph {
  char c;
  uint8_t rows[7];
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}}, {'D', {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}}, {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}}, {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}}, {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}}, {'.', {0, 0, 0, 0, 0, 0x0C, 0x0C}},
    {':', {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}},          {'/', {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'-', {0, 0, 0, 0x1F, 0, 0, 0}},
};

const Glyph* find_glyph(char c) {
  for (const Glyph& g : kFont)
    if (g.c == c) return &g;
  return nullptr;  // space and anything unknown: blank
}

// Draws `text` at (x, y) in pixels of `px` screen pixels, on a dark band.
void draw_text(SDL_Renderer* r, int x, int y, int px, const std::string& text) {
  SDL_SetRenderDrawBlendMode(r, SDL_BLENDMODE_BLEND);
  SDL_SetRenderDrawColor(r, 0, 0, 0, 160);
  SDL_Rect band{x - 2 * px, y - 2 * px, int(text.size()) * 6 * px + 3 * px, 11 * px};
  SDL_RenderFillRect(r, &band);
  SDL_SetRenderDrawColor(r, 255, 255, 255, 255);
  for (size_t i = 0; i < text.size(); ++i) {
    const Glyph* g = find_glyph(text[i]);
    if (!g) continue;
    for (int row = 0; row < 7; ++row)
      for (int col = 0; col < 5; ++col)
        if (g->rows[row] >> (4 - col) & 1) {
          SDL_Rect p{x + (int(i) * 6 + col) * px, y + row * px, px, px};
          SDL_RenderFillRect(r, &p);
        }
  }
}

Status save_screenshot(SDL_Renderer* r, int w, int h, const std::string& path) {
  cv::Mat bgra(h, w, CV_8UC4);
  if (SDL_RenderReadPixels(r, nullptr, SDL_PIXELFORMAT_ARGB8888, bgra.data, int(bgra.step)) != 0)
    return Status::error(std::string("screenshot: ") + SDL_GetError());
  cv::Mat bgr;
  cv::cvtColor(bgra, bgr, cv::COLOR_BGRA2BGR);  // ARGB8888 is B,G,R,A in memory (little endian)
  if (!cv::imwrite(path, bgr)) return Status::error("cannot write " + path);
  return Status::ok();
}

}  // namespace

Subcommand add_play(CLI::App& app) {
  struct Opts {
    std::string input;
    LibraryFlags flags{"auto", "auto", "auto"};
    double target_fps = 0;
    std::string screenshot;
    int64_t screenshot_frame = -1;
    std::string trace;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "play", "Play a dydca file in a window at its frame rate, QoS level chosen per frame");
  sub->add_option("input", o->input, "A .mkv written by dydca encode (plain videos: bicubic)")
      ->required();
  sub->add_option("--level", o->flags.level,
                  "QoS level: auto (controller) or a fixed N (0 = richest)")
      ->capture_default_str();
  sub->add_option("--target-fps", o->target_fps, "Frame rate to hold; 0 = the stream's")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  sub->add_option("--screenshot", o->screenshot, "Write the window as PNG at --screenshot-frame");
  sub->add_option("--screenshot-frame", o->screenshot_frame,
                  "Frame of the screenshot; -1 = one second in (or the last frame)")
      ->capture_default_str();
  sub->add_option("--max-frames", o->flags.max_frames, "Stop after N frames (0 = all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  sub->add_option("--simd", o->flags.simd, "SR kernels: auto, none, avx2, avx512")
      ->check(CLI::IsMember({"auto", "none", "avx2", "avx512"}))
      ->capture_default_str();
  sub->add_option("--precision", o->flags.precision,
                  "SR arithmetic: auto (int8 when the model has int8 scales), int8, fp32")
      ->check(CLI::IsMember({"auto", "fp32", "int8"}))
      ->capture_default_str();
  sub->add_option("--trace", o->trace, "Write the QoS level trace (CSV) here");
  sub->add_option("--scale", o->flags.scale, "Plain videos: bicubic factor")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  sub->footer("Keys: space pause, q or Esc quit. --threads (global) sets the SR workers.\n"
              "Headless: Xvfb :99 & DISPLAY=:99 dydca play x.mkv --screenshot shot.png");
  return {sub, [o]() -> int {
            const Clock::time_point t_launch = Clock::now();
            auto settings = library_settings(o->flags);
            if (!settings) return fail(settings.status());
            settings->target_fps = o->target_fps;  // the QoS controller's deadline
            settings->nonblocking = 1;             // polled from the render loop
            settings->caller_reports_late = 1;     // the player sees the deadlines
            // Opening sizes the window and, at level auto, calibrates the controller.
            auto opened = open_library(o->input, *settings);
            if (!opened) return fail(opened.status());
            Context& ctx = opened->ctx;
            const DydcaInfo& info = opened->info;
            if (opened->stats.has_audio)
              print_log(LogLevel::kWarning,
                        "the audio track is not played (no audio decoder in dydca yet)");
            // Auto needs the controller (single-model dydca files); otherwise
            // the library runs level 0.
            const bool auto_level = settings->level < 0 && info.auto_level;
            const int pinned_level = std::max(settings->level, 0);
            const double stream_fps =
                info.fps_num > 0 && info.fps_den > 0 ? double(info.fps_num) / info.fps_den : 25.0;
            const double fps = o->target_fps > 0 ? o->target_fps : stream_fps;
            const int hr_w = info.width, hr_h = info.height;

            if (SDL_Init(SDL_INIT_VIDEO | SDL_INIT_EVENTS) != 0)
              return fail(Status::error(std::string("SDL: ") + SDL_GetError()));
            struct SdlQuit {
              ~SdlQuit() { SDL_Quit(); }
            } sdl_quit;
            SDL_Window* win = SDL_CreateWindow("dydca play", SDL_WINDOWPOS_CENTERED,
                                               SDL_WINDOWPOS_CENTERED, hr_w, hr_h,
                                               SDL_WINDOW_RESIZABLE);
            if (!win) return fail(Status::error(std::string("SDL window: ") + SDL_GetError()));
            std::unique_ptr<SDL_Window, void (*)(SDL_Window*)> win_owner(win, SDL_DestroyWindow);
            SDL_Renderer* ren = SDL_CreateRenderer(win, -1, 0);
            if (!ren) ren = SDL_CreateRenderer(win, -1, SDL_RENDERER_SOFTWARE);
            if (!ren) return fail(Status::error(std::string("SDL renderer: ") + SDL_GetError()));
            std::unique_ptr<SDL_Renderer, void (*)(SDL_Renderer*)> ren_owner(ren,
                                                                            SDL_DestroyRenderer);
            if (SDL_RendererInfo ri{}; SDL_GetRendererInfo(ren, &ri) == 0)
              print_log(LogLevel::kInfo, std::string("SDL renderer: ") + ri.name);
            SDL_RenderSetLogicalSize(ren, hr_w, hr_h);
            SDL_Texture* tex = SDL_CreateTexture(ren, SDL_PIXELFORMAT_IYUV,
                                                 SDL_TEXTUREACCESS_STREAMING, hr_w, hr_h);
            if (!tex) return fail(Status::error(std::string("SDL texture: ") + SDL_GetError()));
            std::unique_ptr<SDL_Texture, void (*)(SDL_Texture*)> tex_owner(tex, SDL_DestroyTexture);

            const double period = 1.0 / fps;
            const int64_t shot_frame =
                o->screenshot_frame >= 0 ? o->screenshot_frame : int64_t(std::lround(fps));
            const int font_px = std::max(2, hr_h / 270);
            DydcaPicture next{};  // the next picture to show, once the library handed it out
            bool have = false, end = false;
            Status failure;  // a decode error (not the end, not a quit)
            int64_t shown = 0, late = 0, late_at_switch = 0, switches_shown = 0;
            int shown_level = pinned_level;
            std::vector<int64_t> level_frames(size_t(std::max(info.levels, 1)), 0);
            int64_t level_switches = 0;
            bool paused = false, quit = false, shot_taken = o->screenshot.empty();
            Clock::time_point anchor{}, t_first{}, fps_t0 = Clock::now(), title_t = Clock::now();
            int64_t fps_frames = 0;
            double show_ms = 0;  // texture upload + render + present
            double measured_fps = 0;
            auto status_line = [&] {
              char buf[160];
              std::snprintf(buf, sizeof buf, "FPS %.1f/%.0f  LEVEL %d %s  LATE %lld %.1f%%%s",
                            measured_fps, fps, shown_level, auto_level ? "AUTO" : "PIN",
                            (long long)late, shown ? 100.0 * double(late) / double(shown) : 0.0,
                            paused ? "  PAUSED" : "");
              return std::string(buf);
            };
            auto render = [&] {
              SDL_RenderClear(ren);
              SDL_RenderCopy(ren, tex, nullptr, nullptr);
              draw_text(ren, 4 * font_px, 4 * font_px, font_px, status_line());
            };

            while (!quit) {
              SDL_Event ev;
              while (SDL_PollEvent(&ev)) {
                if (ev.type == SDL_QUIT) quit = true;
                if (ev.type == SDL_KEYDOWN) {
                  const SDL_Keycode k = ev.key.keysym.sym;
                  if (k == SDLK_q || k == SDLK_ESCAPE) quit = true;
                  if (k == SDLK_SPACE) {
                    paused = !paused;
                    // Resume on the next frame without counting the pause as lateness.
                    if (!paused) anchor = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                                             std::chrono::duration<double>(shown * period));
                    if (shown) {
                      render();
                      SDL_RenderPresent(ren);
                    }
                  }
                }
              }
              if (quit) break;
              if (!have && !end) {
                const int err = dydca_get_picture(ctx.get(), &next);
                if (err == DYDCA_OK) {
                  have = true;
                } else if (err == DYDCA_ERR_EOS) {
                  end = true;
                } else if (err != DYDCA_ERR_AGAIN) {
                  failure = library_error(ctx.get(), err);
                  break;
                }
              }
              if (paused || !have) {
                if (end && !have) break;  // every picture shown
                SDL_Delay(1);
                continue;
              }
              const Clock::time_point now = Clock::now();
              if (shown == 0) {
                anchor = t_first = now;
                const double after_s = std::chrono::duration<double>(now - t_launch).count();
                print_log(LogLevel::kInfo,
                          "first picture " + std::to_string(after_s) + " s after start");
              }
              const Clock::time_point due =
                  anchor + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(double(shown) * period));
              if (now < due) {
                const double wait_ms = std::chrono::duration<double, std::milli>(due - now).count();
                SDL_Delay(Uint32(std::clamp(wait_ms - 0.5, 0.0, 5.0)));
                continue;
              }
              // A picture ready more than 2 ms after its time is late: the
              // presentation clock slides so that lateness does not cascade.
              auto pst = library_struct<DydcaPictureStats>();
              (void)dydca_get_picture_stats(&next, &pst);
              switches_shown += pst.segment_switch;
              if (shown > 0 && now - due > std::chrono::milliseconds(2)) {
                ++late;
                late_at_switch += pst.segment_switch;
                if (auto_level) (void)dydca_report_late(ctx.get(), next.frame);
                anchor += now - due;
              }
              if (shown > 0 && next.level != shown_level) ++level_switches;
              shown_level = next.level;
              if (level_frames.size() <= size_t(shown_level))
                level_frames.resize(size_t(shown_level) + 1);
              ++level_frames[size_t(shown_level)];
              const Clock::time_point show_t0 = Clock::now();
              SDL_UpdateYUVTexture(tex, nullptr, next.planes[0], int(next.stride[0]),
                                   next.planes[1], int(next.stride[1]), next.planes[2],
                                   int(next.stride[2]));
              dydca_picture_unref(&next);
              have = false;
              ++shown;
              ++fps_frames;
              const double fps_dt = std::chrono::duration<double>(now - fps_t0).count();
              if (fps_dt >= 1.0) {
                measured_fps = double(fps_frames) / fps_dt;
                fps_frames = 0;
                fps_t0 = now;
              }
              render();
              if (!shot_taken && shown - 1 >= shot_frame) {
                if (Status s = save_screenshot(ren, hr_w, hr_h, o->screenshot); !s)
                  print_log(LogLevel::kError, s.message());
                else
                  print_log(LogLevel::kInfo, "screenshot of frame " + std::to_string(shown - 1) +
                                                 ": " + o->screenshot);
                shot_taken = true;
              }
              SDL_RenderPresent(ren);
              show_ms += std::chrono::duration<double, std::milli>(Clock::now() - show_t0).count();
              if (now - title_t > std::chrono::milliseconds(500)) {
                SDL_SetWindowTitle(win, ("dydca play  " + status_line()).c_str());
                title_t = now;
              }
            }
            if (have) dydca_picture_unref(&next);
            if (!failure) return fail(failure);
            // The last frame as screenshot when the stream was shorter.
            if (!shot_taken && shown > 0) {
              render();
              if (Status s = save_screenshot(ren, hr_w, hr_h, o->screenshot); !s)
                print_log(LogLevel::kError, s.message());
            }
            // The controller's trace: complete after the end, up to the
            // pictures decoded so far after a quit.
            if (auto_level && !o->trace.empty()) {
              const int err = dydca_write_qos_trace(ctx.get(), o->trace.c_str());
              if (err != DYDCA_OK) return fail(library_error(ctx.get(), err));
            }
            ctx.reset();  // stops a decode still running (after q / Esc)
            std::string levels;
            if (auto_level) {
              for (size_t l = 0; l < level_frames.size(); ++l)
                levels += " " + std::to_string(l) + ":" + std::to_string(level_frames[l]);
              levels += ", " + std::to_string(level_switches) + " switches";
            } else {
              levels = " pinned " + std::to_string(pinned_level);
            }
            if (shown > 0)
              print_log(LogLevel::kInfo, "display: " + std::to_string(show_ms / double(shown)) +
                                             " ms per frame (texture upload, render, present)");
            if (!globals().quiet)
              std::fprintf(stderr,
                           "played %lld frames at %.2f fps target (first picture %.2f s after "
                           "start), %lld late (%.2f %%): %lld at segment switches (%lld switches "
                           "shown), %lld elsewhere; levels%s\n",
                           (long long)shown, fps,
                           shown ? std::chrono::duration<double>(t_first - t_launch).count() : 0.0,
                           (long long)late,
                           shown ? 100.0 * double(late) / double(shown) : 0.0,
                           (long long)late_at_switch, (long long)switches_shown,
                           (long long)(late - late_at_switch), levels.c_str());
            return 0;
          }};
}

}  // namespace dydca::cli
