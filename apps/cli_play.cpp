// `dydca play IN.mkv`: the upscaled video in an SDL2 window, paced at the
// stream's frame rate, with the QoS controller choosing the level per frame
// (or `--level N` pinning one). Keys: space pause, q / Esc quit. A line at the
// top of the picture (and the window title) shows fps, level and late frames.
//
// The file is read once: one DydcaReader sizes the window and builds the QoS
// policy from its header, then decode_file streams its packets. Late frames
// are counted apart at segment switches (the first frame of every segment
// after the first, whose SR swaps to the next segment's runtime).
//
// Threads: decode_file runs its pipeline (decode, SR, output) on a worker
// thread; its sink hands each HR frame to the main thread through a one-frame
// mailbox. The main thread owns SDL (events, texture, present) and the clock:
// a frame is shown at anchor + n / fps; a frame that is not ready by then is
// late (the player stutters: the anchor slides, lateness does not cascade),
// and the QoS policy hears about it.
//
// Audio is not played: media/ has no audio decoder yet (the audio track stays
// in the file; `dydca decode x.mkv -o out.mp4` keeps it).
#include <SDL.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "cli_common.h"
#include "dydca/container.h"
#include "dydca/decoder.h"
#include "dydca/qos.h"

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

// One-frame hand-over from the pipeline's output thread to the main thread.
struct Mailbox {
  std::mutex m;
  std::condition_variable cv;
  Frame frame;
  bool full = false;
  bool quit = false;  // main thread asks the pipeline to stop
  bool done = false;  // pipeline returned
};

class WindowSink final : public FrameSink {
 public:
  explicit WindowSink(Mailbox& box) : box_(box) {}
  Status open(const SinkFormat&) override { return Status::ok(); }
  Status write(const Frame& frame) override {
    std::unique_lock lock(box_.m);
    box_.cv.wait(lock, [&] { return !box_.full || box_.quit; });
    if (box_.quit) return Status::cancelled();
    box_.frame.width = frame.width;
    box_.frame.height = frame.height;
    box_.frame.y.assign(frame.y.begin(), frame.y.end());
    box_.frame.u.assign(frame.u.begin(), frame.u.end());
    box_.frame.v.assign(frame.v.begin(), frame.v.end());
    box_.frame.pts = frame.pts;
    box_.full = true;
    box_.cv.notify_all();
    return Status::ok();
  }
  Status finish() override { return Status::ok(); }

 private:
  Mailbox& box_;
};

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
    std::string level = "auto";
    double target_fps = 0;
    std::string screenshot;
    int64_t screenshot_frame = -1;
    int64_t max_frames = 0;
    std::string simd = "auto";
    std::string precision = "auto";
    std::string trace;
    int scale = 2;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "play", "Play a dydca file in a window at its frame rate, QoS level chosen per frame");
  sub->add_option("input", o->input, "A .mkv written by dydca encode (plain videos: bicubic)")
      ->required();
  sub->add_option("--level", o->level, "QoS level: auto (controller) or a fixed N (0 = richest)")
      ->capture_default_str();
  sub->add_option("--target-fps", o->target_fps, "Frame rate to hold; 0 = the stream's")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  sub->add_option("--screenshot", o->screenshot, "Write the window as PNG at --screenshot-frame");
  sub->add_option("--screenshot-frame", o->screenshot_frame,
                  "Frame of the screenshot; -1 = one second in (or the last frame)")
      ->capture_default_str();
  sub->add_option("--max-frames", o->max_frames, "Stop after N frames (0 = all)")
      ->capture_default_str();
  sub->add_option("--simd", o->simd, "SR kernels: auto, none, avx2, avx512")->capture_default_str();
  sub->add_option("--precision", o->precision,
                  "SR arithmetic: auto (int8 when the model has int8 scales), int8, fp32")
      ->check(CLI::IsMember({"auto", "fp32", "int8"}))
      ->capture_default_str();
  sub->add_option("--trace", o->trace, "Write the QoS level trace (CSV) here");
  sub->add_option("--scale", o->scale, "Plain videos: bicubic factor")->capture_default_str();
  sub->footer("Keys: space pause, q or Esc quit. --threads (global) sets the SR workers.\n"
              "Headless: Xvfb :99 & DISPLAY=:99 dydca play x.mkv --screenshot shot.png");
  return {sub, [o]() -> int {
            const Clock::time_point t_launch = Clock::now();
            // One reader for the whole run: the header sizes the window and
            // builds the QoS policy, then decode_file streams the packets.
            auto reader = DydcaReader::open(o->input);
            if (!reader) return fail(reader.status());
            const bool dydca = reader->has_dydca();
            const EncodedVideo& video = reader->video();
            const Rational rate = video.frame_rate.valid() ? video.frame_rate : Rational{25, 1};
            const double fps = o->target_fps > 0 ? o->target_fps : rate.to_double();
            const int hr_w = dydca ? reader->hr_width() : video.width * o->scale;
            const int hr_h = dydca ? reader->hr_height() : video.height * o->scale;
            if (reader->has_audio())
              log_warning("the audio track is not played (no audio decoder in dydca yet)");
            // First frames of segments 1.. (their SR swaps to the next runtime).
            std::vector<int64_t> switch_frames;
            for (size_t k = 1; k < reader->segments().size(); ++k)
              switch_frames.push_back(reader->segments()[k].first_frame);

            DecodeOptions opt;
            opt.threads = globals().threads;
            opt.plain_scale = o->scale;
            opt.max_frames = o->max_frames;
            auto simd = parse_simd_level(o->simd);
            if (!simd) return fail(simd.status());
            opt.simd = *simd;
            auto precision = parse_precision(o->precision);
            if (!precision) return fail(precision.status());
            opt.precision = *precision;

            std::shared_ptr<QosLevelPolicy> qos;
            bool pinned = true;
            if (o->level == "auto") {
              if (dydca && reader->model_count() == 1) {
                // Segment 0's model and routing (one architecture per file).
                auto model = reader->segment_model(0);
                if (!model) return fail(model.status());
                auto routing0 = reader->segment_routing(0);
                if (!routing0) return fail(routing0.status());
                QosParams qp;
                qp.target_fps = fps;
                const RoutingMap* routing = *routing0 ? &**routing0 : nullptr;
                auto p = QosLevelPolicy::create(model->arch, routing, video.width, video.height,
                                                rate, qp);
                if (!p) return fail(p.status());
                qos = *p;
                RuntimeOptions ro;
                ro.tile_size = routing ? routing->tile_size : 32;
                ro.threads = opt.threads;
                ro.simd = opt.simd;
                ro.precision = opt.precision;  // calibrate the levels at the speed that will run
                ro.max_lr_width = video.width;
                ro.max_lr_height = video.height;
                if (Status s = qos->calibrate(*model, ro); !s) return fail(s);
                qos->set_sink_reports_late(true);
                opt.policy = qos;
                pinned = false;
              }  // plain videos and multi-model files: level 0
            } else {
              try {
                size_t used = 0;
                opt.level = std::stoi(o->level, &used);
                if (used != o->level.size() || opt.level < 0) throw std::invalid_argument("");
              } catch (const std::exception&) {
                return fail(Status::error("--level must be auto or a number >= 0, not '" +
                                          o->level + "'"));
              }
            }

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
            if (SDL_RendererInfo info{}; SDL_GetRendererInfo(ren, &info) == 0)
              log_info(std::string("SDL renderer: ") + info.name);
            SDL_RenderSetLogicalSize(ren, hr_w, hr_h);
            SDL_Texture* tex = SDL_CreateTexture(ren, SDL_PIXELFORMAT_IYUV,
                                                 SDL_TEXTUREACCESS_STREAMING, hr_w, hr_h);
            if (!tex) return fail(Status::error(std::string("SDL texture: ") + SDL_GetError()));
            std::unique_ptr<SDL_Texture, void (*)(SDL_Texture*)> tex_owner(tex, SDL_DestroyTexture);

            Mailbox box;
            WindowSink sink(box);
            Expected<DecodeStats> result = Status::error("not run");
            std::thread worker([&] {
              auto progress = [&](const Progress&) {
                std::lock_guard lock(box.m);
                return !box.quit;
              };
              auto r = decode_file(std::move(*reader), o->input, opt, sink, progress);
              std::lock_guard lock(box.m);
              result = std::move(r);
              box.done = true;
              box.cv.notify_all();
            });

            const double period = 1.0 / fps;
            const int64_t shot_frame =
                o->screenshot_frame >= 0 ? o->screenshot_frame : int64_t(std::lround(fps));
            const int font_px = std::max(2, hr_h / 270);
            Frame shown_frame;
            int64_t shown = 0, late = 0, late_at_switch = 0;
            size_t next_switch = 0;  // index in switch_frames of the next switch to show
            bool paused = false, quit = false, shot_taken = o->screenshot.empty();
            Clock::time_point anchor{}, t_first{}, fps_t0 = Clock::now(), title_t = Clock::now();
            int64_t fps_frames = 0;
            double show_ms = 0;  // texture upload + render + present, main thread
            double measured_fps = 0;
            auto status_line = [&] {
              const int level = qos ? qos->current_level() : opt.level;
              char buf[160];
              std::snprintf(buf, sizeof buf, "FPS %.1f/%.0f  LEVEL %d %s  LATE %lld %.1f%%%s",
                            measured_fps, fps, level, pinned ? "PIN" : "AUTO", (long long)late,
                            shown ? 100.0 * double(late) / double(shown) : 0.0,
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
              bool have = false, done = false;
              {
                std::lock_guard lock(box.m);
                have = box.full;
                done = box.done;
              }
              if (paused || !have) {
                if (done && !have) break;  // end of stream
                SDL_Delay(1);
                continue;
              }
              const Clock::time_point now = Clock::now();
              if (shown == 0) {
                anchor = t_first = now;
                log_info("first picture " +
                         std::to_string(std::chrono::duration<double>(now - t_launch).count()) +
                         " s after start");
              }
              const Clock::time_point due =
                  anchor + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(double(shown) * period));
              if (now < due) {
                const double wait_ms = std::chrono::duration<double, std::milli>(due - now).count();
                SDL_Delay(Uint32(std::clamp(wait_ms - 0.5, 0.0, 5.0)));
                continue;
              }
              // A frame ready more than 2 ms after its time is late: the
              // presentation clock slides so that lateness does not cascade.
              while (next_switch < switch_frames.size() && switch_frames[next_switch] < shown)
                ++next_switch;
              const bool at_switch =
                  next_switch < switch_frames.size() && switch_frames[next_switch] == shown;
              if (shown > 0 && now - due > std::chrono::milliseconds(2)) {
                ++late;
                late_at_switch += at_switch;
                if (qos) qos->note_late();
                anchor += now - due;
              }
              {
                std::lock_guard lock(box.m);
                std::swap(shown_frame, box.frame);
                box.full = false;
                box.cv.notify_all();
              }
              const Clock::time_point show_t0 = Clock::now();
              SDL_UpdateYUVTexture(tex, nullptr, shown_frame.y.data(), shown_frame.width,
                                   shown_frame.u.data(), shown_frame.chroma_width(),
                                   shown_frame.v.data(), shown_frame.chroma_width());
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
                  log_error(s.message());
                else
                  log_info("screenshot of frame " + std::to_string(shown - 1) + ": " + o->screenshot);
                shot_taken = true;
              }
              SDL_RenderPresent(ren);
              show_ms += std::chrono::duration<double, std::milli>(Clock::now() - show_t0).count();
              if (now - title_t > std::chrono::milliseconds(500)) {
                SDL_SetWindowTitle(win, ("dydca play  " + status_line()).c_str());
                title_t = now;
              }
            }
            // The last frame as screenshot when the stream was shorter.
            if (!shot_taken && shown > 0) {
              render();
              if (Status s = save_screenshot(ren, hr_w, hr_h, o->screenshot); !s)
                log_error(s.message());
            }
            {
              std::lock_guard lock(box.m);
              box.quit = true;
              box.cv.notify_all();
            }
            worker.join();
            if (!result && !(quit && result.status().is_cancelled()))
              return fail(result.status());
            if (result && qos && !result->timings.empty()) qos->finish(result->timings.back());
            std::string levels;
            if (qos) {
              const QosSummary s = summarize_qos_trace(qos->controller().trace(),
                                                       qos->controller().num_levels());
              for (size_t l = 0; l < s.level_frames.size(); ++l)
                levels += " " + std::to_string(l) + ":" + std::to_string(s.level_frames[l]);
              levels += ", " + std::to_string(s.switches) + " switches";
              if (!o->trace.empty())
                if (Status st = write_qos_trace_csv(o->trace, qos->controller().trace()); !st)
                  return fail(st);
            } else {
              levels = " pinned " + std::to_string(opt.level);
            }
            if (shown > 0)
              log_info("display: " + std::to_string(show_ms / double(shown)) +
                       " ms per frame (texture upload, render, present)");
            int64_t switches_shown = 0;
            for (int64_t f : switch_frames) switches_shown += f < shown;
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
