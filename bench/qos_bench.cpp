// dydca_qos_bench: the QoS proof experiment (issue 8). Plays a dydca file at
// its frame rate (decode done up front; per frame: bicubic chroma + SR luma,
// paced in real time, no window), starts a CPU hog pinned to one core in the
// middle of the run and stops it later, and records per frame the SR time,
// the deadline miss, the level and PSNR-Y against the HR source. Three
// decoders play the same schedule one after the other:
//   qos         dydca with the QoS controller (one model, level = table lookup);
//   fixed0      dydca pinned at level 0;
// Segmented (format-2) files: every segment's model and routing drive its
// frames in qos/fixed0 (models planned up front); multimodel slices segment
// 0's model. Every frame runs through the client's own FrameUpscaler (one
// worker pool, one session), as `dydca decode` runs it.
//   multimodel  the per-segment multi-model baseline: one static model per
//               size (the dynamic network's paths sliced into separate,
//               smaller networks), the same controller choosing the model, a
//               switch = parse the smaller model's blob + plan a new SrModel
//               (paid inside the frame, as a client that holds one model would).
// The hog is on during the same wall-clock interval for all three runs.
// Pacing: frame i is due at slot_i + 1/fps; a late frame makes the player
// stutter (the next slot starts when it finishes), so lateness does not
// cascade. Output: CSV per frame, a summary (stdout + JSON), a gnuplot PNG.
//
//   dydca_qos_bench out/city.mkv --source samples/cache/cityCC0.mpg --loops 6 -o /tmp/qos
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "dydca/container.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/qos.h"
#include "dydca/routing.h"
#include "dydca/runtime.h"
#include "dydca/runtime_frame.h"

using namespace dydca;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A busy child process pinned to one CPU: the "other program" of the
// experiment. It is forked once, before the bench holds any large buffer, and
// stopped at once; start() / stop() are SIGCONT / SIGSTOP, so that switching
// it on or off costs the playback loop one system call (a fork inside the
// loop copied the page tables of a 2 GB process and made frames late).
class CpuHog {
 public:
  explicit CpuHog(int cpu) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof set, &set);
      raise(SIGSTOP);
      volatile uint64_t x = 0;
      for (;;) x = x + 1;
    }
    if (pid_ > 0) {
      int st = 0;
      waitpid(pid_, &st, WUNTRACED);  // stopped before it ever spins
    }
  }
  ~CpuHog() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  CpuHog(const CpuHog&) = delete;
  CpuHog& operator=(const CpuHog&) = delete;
  bool ok() const { return pid_ > 0; }
  void start() {
    if (pid_ > 0 && !running_) kill(pid_, SIGCONT), running_ = true;
  }
  void stop() {
    if (pid_ > 0 && running_) kill(pid_, SIGSTOP), running_ = false;
  }
  bool running() const { return running_; }

 private:
  pid_t pid_ = -1;
  bool running_ = false;
};

// The static network of one path of the dynamic model, as its own smaller
// model (what a per-segment multi-model codec would ship).
Model slice_path(const Model& m, const PathSpec& p) {
  const ModelArch& a = m.arch;
  const int s2 = a.scale * a.scale;
  Model out;
  out.arch.scale = a.scale;
  auto take = [&](const std::string& name, std::vector<int> shape) {
    const Tensor* t = m.find(name);
    Tensor r;
    r.name = name;
    r.shape = shape;
    size_t n = 1;
    for (int d : shape) n *= size_t(d);
    r.data.assign(n, 0.f);
    if (!t) return r;
    // Copy the leading [o, i] block of a [O, I, kh, kw] (or [O]) tensor.
    const int O = t->shape[0], I = t->shape.size() > 1 ? t->shape[1] : 1;
    const int k = t->shape.size() > 2 ? t->shape[2] * t->shape[3] : 1;
    const int o_n = shape[0], i_n = shape.size() > 1 ? shape[1] : 1;
    for (int o = 0; o < std::min(o_n, O); ++o)
      for (int i = 0; i < std::min(i_n, I); ++i)
        for (int q = 0; q < k; ++q)
          r.data[(size_t(o) * i_n + i) * k + q] = t->data[(size_t(o) * I + i) * k + q];
    return r;
  };
  if (p.width == 0) {  // global path alone: a 1-channel dummy body that is never run
    out.arch.channels = out.arch.inner = 1;
    out.arch.blocks = 0;
    out.arch.paths = {{0, 0}};
    Tensor h = take("head.weight", {1, 1, 3, 3});
    std::fill(h.data.begin(), h.data.end(), 0.f);
    out.tensors.push_back(h);
    Tensor hb = take("head.bias", {1});
    out.tensors.push_back(hb);
    Tensor t = take("tail.weight", {s2, 1, 3, 3});
    std::fill(t.data.begin(), t.data.end(), 0.f);
    out.tensors.push_back(t);
  } else {
    const int w = p.width, e = a.inner_width(w);
    out.arch.channels = w;
    out.arch.inner = std::max(e, 1);
    out.arch.blocks = p.depth;
    out.arch.paths = {p};
    out.tensors.push_back(take("head.weight", {w, 1, 3, 3}));
    out.tensors.push_back(take("head.bias", {w}));
    for (int i = 0; i < p.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      out.tensors.push_back(take(b + "conv1.weight", {e, w, 3, 3}));
      out.tensors.push_back(take(b + "conv1.bias", {e}));
      out.tensors.push_back(take(b + "conv2.weight", {w, e, 3, 3}));
      out.tensors.push_back(take(b + "conv2.bias", {w}));
    }
    out.tensors.push_back(take("tail.weight", {s2, w, 3, 3}));
  }
  out.tensors.push_back(take("tail.bias", {s2}));
  out.tensors.push_back(take("skip.weight", {s2, 1, 5, 5}));
  out.tensors.push_back(take("skip.bias", {s2}));
  return out;
}

struct FrameRow {
  int64_t frame = 0;
  double t_s = 0;           // work on the frame started (s since playback start)
  int level = 0;
  double sr_ms = 0, overhead_ms = 0, switch_ms = 0;
  double work_ms = 0;       // start to ready, wall time (SR + chroma + whatever else)
  double slack_ms = 0;      // due time minus ready time (< 0: late by that much)
  bool late = false, hog = false;
  double mse_y = 0;
};

struct RunResult {
  std::string name;
  std::vector<FrameRow> rows;
  int64_t switches = 0;
  double switch_ms = 0;
  double stall_ms = 0;      // the presentation clock's total slide (what a viewer waits)
  std::vector<QosFrameRecord> trace;
};

struct Setup {
  int scale = 2, lw = 0, lh = 0, hw = 0, hh = 0;  // LR and HR (cropped) sizes
  std::vector<Frame> lr;   // decoded LR frames of the clip
  std::vector<Frame> hr;   // HR source (may be empty)
  int64_t frames = 0;      // frames played (clip looped)
  double fps = 25;
  double hog_start = 0.33, hog_end = 0.67;  // fractions of the run
  int ahead = 4;           // frames the decoder may run ahead of the display
  RuntimeOptions rt;
  std::shared_ptr<WorkerPool> pool;  // the SR's workers, for every decoder
};

// What a decoder does per frame: choose a level (maybe switching models),
// and upscale the luma of LR frame f into hr.y (hr: its bicubic frame, from
// FrameUpscaler::chroma). replay redoes a frame's SR after the run (for
// PSNR, off the playback path).
struct Decoder {
  std::function<int(int64_t f)> choose;  // returns the level; may pay a switch inside
  std::function<Status(const Frame& lr, int64_t f, int level, Frame& hr)> upscale;
  std::function<Status(const Frame& lr, int64_t f, int level, Frame& hr)> replay;
  std::function<void(const QosFrameTiming&)> report;
  double pending_switch_ms = 0;
};

// Late-frame rule (docs/qos.md): a player shows frame i at anchor + i/fps.
// The decoder works ahead of the display by at most `ahead` frames (dydca
// play: its pipeline's queues and the window's mailbox); frame i's work
// starts when frame i-1 is done and frame i-ahead has been shown. A frame
// ready more than 2 ms after its time is late: it is shown when ready and
// the presentation clock slides by the delay (the viewer sees a stall;
// lateness does not cascade). ahead = 1 is a player without read-ahead: each
// frame starts at the previous one's presentation.
Expected<RunResult> play(const std::string& name, const Setup& S, FrameUpscaler& fu, Decoder& dec,
                         CpuHog& hog) {
  using Sec = std::chrono::duration<double>;
  RunResult res;
  res.name = name;
  const int s = S.scale, lw = S.lw;
  const double period = 1.0 / S.fps, tolerance = 0.002;
  const int ahead = std::max(1, S.ahead);
  Frame hr;
  // The hog runs at the same wall-clock times for every decoder: the share
  // [hog_start, hog_end) of the clip's nominal duration.
  const double duration = double(S.frames) / S.fps;
  const double hog_on = S.hog_start * duration, hog_off = S.hog_end * duration;
  bool hog_done = false;
  const Clock::time_point t0 = Clock::now();
  auto at = [&](double sec) { return t0 + std::chrono::duration_cast<Clock::duration>(Sec(sec)); };
  double anchor = -1;                      // display time of frame 0, seconds from t0
  std::vector<double> shown(size_t(S.frames), 0.0);  // display time of each frame
  double prev_done = 0;
  int prev_level = -1;
  for (int64_t i = 0; i < S.frames; ++i) {
    const double may_start = i >= ahead ? std::max(prev_done, shown[size_t(i - ahead)]) : prev_done;
    std::this_thread::sleep_until(at(may_start));
    const double now_s = Sec(Clock::now() - t0).count();
    if (!hog_done && !hog.running() && now_s >= hog_on) hog.start();
    if (hog.running() && now_s >= hog_off) {
      hog.stop();
      hog_done = true;
    }
    const Clock::time_point start = Clock::now();
    const int64_t f = i % int64_t(S.lr.size());
    const Frame& lr = S.lr[size_t(f)];
    dec.pending_switch_ms = 0;
    const int level = dec.choose(f);
    // Non-SR work of the frame: bicubic of all planes (chroma kept, luma replaced).
    const Clock::time_point c0 = Clock::now();
    DYDCA_TRY(fu.chroma(lr, hr));
    const double chroma_ms = ms(Clock::now() - c0);
    const Clock::time_point s0 = Clock::now();
    DYDCA_TRY(dec.upscale(lr, f, level, hr));
    const Clock::time_point done_tp = Clock::now();
    const double done = Sec(done_tp - t0).count();
    if (anchor < 0) anchor = done;  // playback starts with the first picture
    const double due = anchor + double(i) * period;
    const bool late = done > due + tolerance;
    if (late) {
      res.stall_ms += (done - due) * 1e3;
      anchor += done - due;
    }
    shown[size_t(i)] = std::max(due, done);
    FrameRow row;
    row.frame = i;
    row.t_s = Sec(start - t0).count();
    row.level = level;
    row.sr_ms = ms(done_tp - s0) + dec.pending_switch_ms;  // a model switch is SR time the frame pays
    row.switch_ms = dec.pending_switch_ms;
    row.overhead_ms = chroma_ms;
    row.work_ms = ms(done_tp - start);
    row.slack_ms = (due - done) * 1e3;
    row.late = late;
    row.hog = hog.running();
    res.rows.push_back(row);
    res.switch_ms += dec.pending_switch_ms;
    if (prev_level >= 0 && level != prev_level) ++res.switches;
    prev_level = level;
    QosFrameTiming t;
    t.t_s = row.t_s;
    t.sr_s = row.sr_ms * 1e-3;
    t.overhead_s = chroma_ms * 1e-3;
    t.late = late;
    if (dec.report) dec.report(t);
    prev_done = done;
  }
  hog.stop();
  // PSNR-Y after the run: the SR of each (frame, level) pair again (the
  // runtime is deterministic), so the playback loop neither copies nor holds
  // the output.
  if (!S.hr.empty() && dec.replay) {
    std::map<std::pair<int64_t, int>, double> cache;
    std::vector<size_t> order(res.rows.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return res.rows[a].level < res.rows[b].level; });
    const int hw = S.hw, hh = S.hh;
    for (size_t i : order) {
      FrameRow& row = res.rows[i];
      const int64_t f = row.frame % int64_t(S.lr.size());
      const auto key = std::make_pair(f, row.level);
      auto it = cache.find(key);
      if (it == cache.end()) {
        DYDCA_TRY(fu.chroma(S.lr[size_t(f)], hr));
        DYDCA_TRY(dec.replay(S.lr[size_t(f)], f, row.level, hr));
        const Frame& ref = S.hr[size_t(f) % S.hr.size()];
        double sse = 0;
        for (int y = 0; y < hh; ++y)
          sse += plane_mse(ref.y.data() + size_t(y) * hw, hr.y.data() + size_t(y) * lw * s, size_t(hw)) *
                 double(hw);
        it = cache.emplace(key, sse / (double(hw) * hh)).first;
      }
      row.mse_y = it->second;
    }
  }
  return res;
}

nlohmann::json summarize(const RunResult& r, int levels) {
  int64_t late = 0, hog_frames = 0, hog_late = 0, calm = 0;
  double mse = 0, sr = 0, calm_level = 0;
  std::vector<int64_t> hist(size_t(levels), 0);
  std::vector<double> srs;
  std::vector<std::vector<double>> calm_ms(static_cast<size_t>(levels));  // SR + chroma per level, hog off
  for (const FrameRow& row : r.rows) {
    late += row.late;
    hog_frames += row.hog;
    hog_late += row.hog && row.late;
    mse += row.mse_y;
    sr += row.sr_ms;
    srs.push_back(row.sr_ms);
    if (row.level >= 0 && row.level < levels) {
      ++hist[size_t(row.level)];
      if (!row.hog) calm_ms[size_t(row.level)].push_back(row.sr_ms + row.overhead_ms);
    }
    if (!row.hog) ++calm, calm_level += row.level;
  }
  const double n = double(std::max<size_t>(r.rows.size(), 1));
  std::sort(srs.begin(), srs.end());
  nlohmann::json med = nlohmann::json::array();
  for (auto& v : calm_ms) {
    if (v.empty()) {
      med.push_back(nullptr);
      continue;
    }
    std::nth_element(v.begin(), v.begin() + ptrdiff_t(v.size() / 2), v.end());
    med.push_back(v[v.size() / 2]);
  }
  nlohmann::json j = {{"decoder", r.name},
                      {"frames", r.rows.size()},
                      {"late", late},
                      {"late_pct", 100.0 * double(late) / n},
                      {"stall_ms", r.stall_ms},
                      {"hog_frames", hog_frames},
                      {"late_during_hog", hog_late},
                      {"mean_level_outside_hog", calm ? calm_level / double(calm) : 0.0},
                      {"median_frame_ms_outside_hog", med},
                      {"mean_sr_ms", sr / n},
                      {"p99_sr_ms", srs.empty() ? 0 : srs[std::min(srs.size() - 1, size_t(0.99 * double(srs.size())))]},
                      {"max_sr_ms", srs.empty() ? 0 : srs.back()},
                      {"level_frames", hist},
                      {"switches", r.switches},
                      {"switch_ms_total", r.switch_ms}};
  if (mse > 0) j["psnr_y"] = psnr_from_mse(mse / n);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dydca QoS experiment: controller vs fixed level 0 vs multi-model switching under a CPU hog"};
  std::string input, source, out_dir = "qos_bench";
  int loops = 1, threads = 2, hog_cpu = 1;
  int64_t max_frames = 0;
  double target_fps = 0, hog_start = 0.33, hog_end = 0.67;
  std::string only;
  app.add_option("input", input, "dydca .mkv")->required();
  app.add_option("--source", source, "HR source video for PSNR-Y (first frames, resized if needed)");
  app.add_option("-o,--out", out_dir, "Output directory (CSV, JSON, PNG)")->capture_default_str();
  app.add_option("--loops", loops, "Play the clip this many times")->capture_default_str();
  app.add_option("--max-frames", max_frames, "Frames of the clip to use (0 = all)")->capture_default_str();
  app.add_option("--threads", threads, "SR runtime threads")->capture_default_str();
  app.add_option("--target-fps", target_fps, "0 = the stream's frame rate")->capture_default_str();
  app.add_option("--hog-start", hog_start, "Hog starts at this fraction of the run")->capture_default_str();
  app.add_option("--hog-end", hog_end, "Hog stops at this fraction of the run")->capture_default_str();
  app.add_option("--hog-cpu", hog_cpu, "CPU the hog is pinned to")->capture_default_str();
  app.add_option("--only", only, "Run one decoder: qos, fixed0, multimodel");
  std::string precision = "auto";
  app.add_option("--precision", precision, "SR runtime precision: auto, fp32, int8")->capture_default_str();
  int ahead = 4;
  app.add_option("--ahead", ahead,
                 "Frames the decoder may run ahead of the display (dydca play: 4; 1 = none)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (hog_cpu < 0 || hog_cpu >= CPU_SETSIZE) return std::fprintf(stderr, "bad --hog-cpu\n"), 1;
  // The hog process first, while this process is small (see CpuHog).
  CpuHog hog(hog_cpu);
  if (!hog.ok()) return std::fprintf(stderr, "cannot start the CPU hog\n"), 1;

  // The file through the client's streaming reader; the bench then holds
  // the decoded clip (it replays it in real time).
  auto reader = DydcaReader::open(input);
  if (!reader) return std::fprintf(stderr, "%s\n", reader.error_message().c_str()), 1;
  if (!reader->has_dydca() || reader->model_count() != 1)
    return std::fprintf(stderr, "%s: need a dydca file with one dynamic model\n", input.c_str()), 1;
  std::filesystem::create_directories(out_dir);
  // Every segment's model and routing (format 1: one segment).
  const int n_segments = int(reader->segments().size());
  std::vector<Model> seg_models;
  std::vector<std::optional<RoutingMap>> seg_routing;
  for (int k = 0; k < n_segments; ++k) {
    auto m = reader->segment_model(k);
    if (!m) return std::fprintf(stderr, "%s\n", m.error_message().c_str()), 1;
    auto r = reader->segment_routing(k);
    if (!r) return std::fprintf(stderr, "%s\n", r.error_message().c_str()), 1;
    seg_models.push_back(std::move(*m));
    seg_routing.push_back(std::move(*r));
  }
  EncodedVideo lr_video = reader->video();
  {
    EncodedPacket p;
    while (true) {
      if (max_frames > 0 && int64_t(lr_video.packets.size()) >= max_frames + 32) break;
      auto got = reader->read_packet(p);
      if (!got) return std::fprintf(stderr, "%s\n", got.error_message().c_str()), 1;
      if (!*got) break;
      lr_video.packets.push_back(p);
    }
  }

  Setup S;
  S.scale = reader->scale();
  S.lw = lr_video.width;
  S.lh = lr_video.height;
  S.hw = reader->hr_width();
  S.hh = reader->hr_height();
  auto decoded = decode_h264(lr_video);
  if (!decoded) return std::fprintf(stderr, "%s\n", decoded.error_message().c_str()), 1;
  lr_video.packets.clear();
  S.lr = std::move(*decoded);
  if (max_frames > 0 && int64_t(S.lr.size()) > max_frames) S.lr.resize(size_t(max_frames));
  S.frames = int64_t(S.lr.size()) * std::max(1, loops);
  S.fps = target_fps > 0 ? target_fps : lr_video.frame_rate.to_double();
  S.hog_start = hog_start;
  S.hog_end = hog_end;
  S.ahead = ahead;
  const RoutingMap* routing = seg_routing[0] ? &*seg_routing[0] : nullptr;  // segment 0's
  S.rt.tile_size = routing ? routing->tile_size : 32;
  S.rt.threads = threads;
  auto prec = parse_precision(precision);
  if (!prec) return std::fprintf(stderr, "%s\n", prec.error_message().c_str()), 1;
  S.rt.precision = *prec;
  S.rt.max_lr_width = S.lw;
  S.rt.max_lr_height = S.lh;
  auto pool = WorkerPool::create(threads);
  if (!pool) return std::fprintf(stderr, "%s\n", pool.error_message().c_str()), 1;
  S.pool = std::move(*pool);
  auto upscaler = FrameUpscaler::create(S.lw, S.lh, S.scale, S.pool, S.rt.session());
  if (!upscaler) return std::fprintf(stderr, "%s\n", upscaler.error_message().c_str()), 1;
  FrameUpscaler& fu = *upscaler;
  if (!source.empty()) {
    ReadOptions ro;
    ro.max_frames = int64_t(S.lr.size());
    auto hr = read_all_frames(source, nullptr, ro);
    if (!hr) return std::fprintf(stderr, "%s\n", hr.error_message().c_str()), 1;
    for (Frame& f : *hr) {
      if (f.width != S.hw || f.height != S.hh) {
        auto r = resize(f, S.hw, S.hh, ScaleFilter::kArea);
        if (!r) return std::fprintf(stderr, "%s\n", r.error_message().c_str()), 1;
        f = std::move(*r);
      }
    }
    S.hr = std::move(*hr);
  }
  const Model& model = seg_models[0];
  const int levels = routing ? routing->levels() : int(model.arch.paths.size());
  // Frame f of the clip: its segment and its index there.
  auto segment_of = [&](int64_t f, int64_t* local) {
    const int k = std::max(0, reader->segment_of_frame(f));
    *local = f - reader->segments()[size_t(k)].first_frame;
    return k;
  };
  std::printf("%s: %lld frames (%d loops) at %.3f fps, LR %dx%d -> HR %dx%d, %d levels, "
              "%d segment%s, hog on CPU %d during [%.0f%%, %.0f%%) of the run, %d SR threads\n",
              input.c_str(), (long long)S.frames, loops, S.fps, S.lw, S.lh, S.hw, S.hh, levels,
              n_segments, n_segments == 1 ? "" : "s", hog_cpu, hog_start * 100, hog_end * 100,
              threads);

  std::vector<RunResult> results;
  QosParams qp;
  qp.target_fps = S.fps;

  // ---- 1. dydca + QoS controller, and 2. dydca fixed at level 0 ----
  for (const std::string name : {"qos", "fixed0"}) {
    if (!only.empty() && only != name) continue;
    // One planned model per segment, made up front (the decoder prepares the
    // next one while the current plays, so a switch costs a pointer swap).
    std::vector<std::shared_ptr<const SrModel>> planned;
    for (int k = 0; k < n_segments; ++k) {
      auto m = SrModel::create(seg_models[size_t(k)], S.rt.model());
      if (!m) return std::fprintf(stderr, "%s\n", m.error_message().c_str()), 1;
      planned.push_back(std::move(*m));
    }
    QosParams p = qp;
    if (name == "fixed0") p.pinned_level = 0;
    auto qos = QosController::create(levels, p);
    if (!qos) return std::fprintf(stderr, "%s\n", qos.error_message().c_str()), 1;
    std::vector<int64_t> macs;
    const int w = S.lw, h = S.lh;
    auto run_level = [&](const Frame& lr, int64_t f, int level, Frame& hr) -> Status {
      int64_t local = 0;
      const int k = segment_of(f, &local);
      const SrModel& m = *planned[size_t(k)];
      if (const auto& r = seg_routing[size_t(k)])
        return fu.luma(m, lr, hr, &*r, int(local), std::min(level, r->levels() - 1));
      return fu.luma(m, lr, hr, nullptr, 0, level);
    };
    Frame scratch;
    if (Status st = fu.chroma(S.lr[0], scratch); !st)
      return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
    // Start-up calibration on frame 0 (the controller only; fixed0 does not need it).
    if (name == "qos") {
      qos->calibrate([&](int level) {
        level_frame_macs(model.arch, routing, 0, w, h, &macs);
        const auto t0 = Clock::now();
        Status st = run_level(S.lr[0], 0, level, scratch);
        (void)st;
        return QosSample{macs[size_t(level)], ms(Clock::now() - t0) * 1e-3};
      });
    }
    Decoder dec;
    dec.choose = [&](int64_t f) {
      int64_t local = 0;
      const int k = segment_of(f, &local);
      const RoutingMap* r = seg_routing[size_t(k)] ? &*seg_routing[size_t(k)] : nullptr;
      if (!r || !routing || r->levels() != routing->levels()) r = routing, local = f;
      level_frame_macs(model.arch, r, int(local), w, h, &macs);
      return qos->choose_level(macs);
    };
    dec.upscale = run_level;
    dec.replay = run_level;
    dec.report = [&](const QosFrameTiming& t) { qos->report(t); };
    auto r = play(name, S, fu, dec, hog);
    if (!r) return std::fprintf(stderr, "%s\n", r.error_message().c_str()), 1;
    r->trace = qos->trace();
    results.push_back(std::move(*r));
  }

  // ---- 3. multi-model baseline: one static model per size, switch = reload ----
  if (only.empty() || only == "multimodel") {
    const int np = int(model.arch.paths.size());
    std::vector<std::vector<uint8_t>> blobs;  // index k: k-th richest path as its own model
    for (int k = 0; k < np; ++k) {
      Model m = slice_path(model, model.arch.paths[size_t(static_level_path(np, k))]);
      ModelBlobOptions bo;
      bo.weights = WeightFormat::kFp16;
      auto blob = serialize_model(m, bo);
      if (!blob) return std::fprintf(stderr, "model %d: %s\n", k, blob.error_message().c_str()), 1;
      blobs.push_back(std::move(*blob));
    }
    const int w = S.lw, h = S.lh;
    std::shared_ptr<const SrModel> current;
    int loaded = -1;
    auto load = [&](int k) -> Status {
      if (k == loaded) return Status::ok();
      current.reset();  // a client holding one model frees it first
      DYDCA_ASSIGN_OR_RETURN(const Model m, parse_model(blobs[size_t(k)]));
      DYDCA_ASSIGN_OR_RETURN(current, SrModel::create(m, S.rt.model()));
      loaded = k;
      return Status::ok();
    };
    auto qos = QosController::create(np, qp);
    if (!qos) return std::fprintf(stderr, "%s\n", qos.error_message().c_str()), 1;
    Frame scratch;
    if (Status st = fu.chroma(S.lr[0], scratch); !st)
      return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
    std::vector<int64_t> macs(static_cast<size_t>(np));
    for (int k = 0; k < np; ++k)
      macs[size_t(k)] = int64_t(w) * h * model.arch.macs_per_lr_pixel(static_level_path(np, k));
    // Same start-up calibration, model by model (generous: a real client would
    // have to download every model first); the cheapest model stays loaded.
    for (int k = 0; k < np; ++k) {
      if (Status st = load(k); !st) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
      for (int rep = 0; rep < 2; ++rep) {
        const auto t0 = Clock::now();
        Status st = fu.luma(*current, S.lr[0], scratch, nullptr, 0, 0);
        (void)st;
        qos->add_calibration(k, {macs[size_t(k)], ms(Clock::now() - t0) * 1e-3});
      }
    }
    Decoder dec;
    Status load_error;
    dec.choose = [&](int64_t) {
      const int k = qos->choose_level(macs);
      if (k != loaded) {
        const auto t0 = Clock::now();
        if (Status st = load(k); !st) load_error = st;
        dec.pending_switch_ms = ms(Clock::now() - t0);
      }
      return k;
    };
    dec.upscale = [&](const Frame& lr, int64_t, int, Frame& hr) -> Status {
      if (!load_error) return load_error;
      return fu.luma(*current, lr, hr, nullptr, 0, 0);  // a one-path model: its path
    };
    dec.replay = [&](const Frame& lr, int64_t, int k, Frame& hr) -> Status {
      DYDCA_TRY(load(k));
      return fu.luma(*current, lr, hr, nullptr, 0, 0);
    };
    dec.report = [&](const QosFrameTiming& t) { qos->report(t); };
    auto r = play("multimodel", S, fu, dec, hog);
    if (!r) return std::fprintf(stderr, "%s\n", r.error_message().c_str()), 1;
    r->trace = qos->trace();
    results.push_back(std::move(*r));
    size_t bytes = 0;
    for (auto& b : blobs) bytes += b.size();
    std::printf("multimodel: %d static models (richest path first), %zu blob bytes in all\n", np, bytes);
  }

  // ---- outputs ----
  const std::string csv = out_dir + "/qos_frames.csv";
  {
    std::ofstream o(csv);
    o << "decoder,frame,t_s,level,sr_ms,overhead_ms,switch_ms,work_ms,slack_ms,late,hog,psnr_y\n";
    for (const RunResult& r : results)
      for (const FrameRow& row : r.rows)
        o << r.name << ',' << row.frame << ',' << row.t_s << ',' << row.level << ',' << row.sr_ms << ','
          << row.overhead_ms << ',' << row.switch_ms << ',' << row.work_ms << ',' << row.slack_ms << ','
          << int(row.late) << ',' << int(row.hog) << ',' << (row.mse_y > 0 ? psnr_from_mse(row.mse_y) : 0.0)
          << '\n';
  }
  nlohmann::json summary = nlohmann::json::array();
  for (const RunResult& r : results) {
    const nlohmann::json j = summarize(r, std::max(levels, int(model.arch.paths.size())));
    summary.push_back(j);
    std::printf("%-10s late %4lld / %lld (%5.2f %%, stalls %.0f ms), during hog %lld / %lld; mean level "
                "outside the hog %.2f; SR mean %.1f p99 %.1f max %.1f ms; levels %s, %lld switches (%.1f ms "
                "switching)%s\n",
                r.name.c_str(), (long long)j["late"], (long long)j["frames"], double(j["late_pct"]),
                double(j["stall_ms"]), (long long)j["late_during_hog"], (long long)j["hog_frames"],
                double(j["mean_level_outside_hog"]), double(j["mean_sr_ms"]),
                double(j["p99_sr_ms"]), double(j["max_sr_ms"]), j["level_frames"].dump().c_str(),
                (long long)j["switches"], double(j["switch_ms_total"]),
                j.contains("psnr_y") ? (", PSNR-Y " + std::to_string(double(j["psnr_y"]))).c_str() : "");
    if (!r.trace.empty()) (void)write_qos_trace_csv(out_dir + "/qos_trace_" + r.name + ".csv", r.trace);
  }
  {
    nlohmann::json all = {{"input", input}, {"fps", S.fps}, {"frames", S.frames}, {"threads", threads},
                          {"ahead", ahead}, {"hog_cpu", hog_cpu}, {"hog_start", hog_start}, {"hog_end", hog_end},
                          {"decoders", summary}};
    std::ofstream(out_dir + "/qos_summary.json") << all.dump(2) << "\n";
  }
  // Plot: frame time (SR + chroma) and level over time, hog interval shaded.
  double hog_t0 = -1, hog_t1 = -1;
  if (!results.empty())
    for (const FrameRow& row : results[0].rows)
      if (row.hog) {
        if (hog_t0 < 0) hog_t0 = row.t_s;
        hog_t1 = row.t_s;
      }
  const std::string gp = out_dir + "/qos_plot.gp", png = out_dir + "/qos_plot.png";
  {
    std::ofstream g(gp);
    g << "set terminal pngcairo size 1400,900 font 'DejaVu Sans,11' noenhanced\n"
      << "set output '" << png << "'\n"
      << "set datafile separator ','\n"
      << "set multiplot layout 2,1 title '" << std::filesystem::path(input).filename().string()
      << ": CPU hog on one core (shaded); deadline " << 1000.0 / S.fps << " ms'\n"
      << "set grid\nset key top left\n"
      // fixed0 runs far longer than real time; the plot shows the nominal duration.
      << "set xrange [0:" << 1.15 * double(S.frames) / S.fps << "]\n";
    if (hog_t0 >= 0)
      g << "set object 1 rect from " << hog_t0 << ", graph 0 to " << hog_t1
        << ", graph 1 fc rgb '#ffdddd' fs solid 0.5 behind\n";
    g << "set ylabel 'frame time (SR + chroma), ms'\nset logscale y\n"
      << "plot ";
    const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c"};
    for (size_t i = 0; i < results.size(); ++i)
      g << (i ? ", " : "") << "'" << csv << "' using 3:(strcol(1) eq '" << results[i].name
        << "' ? $5+$6 : 1/0) with lines lw 1.5 lc rgb '" << colors[i % 3] << "' title '" << results[i].name << "'";
    g << ", " << 1000.0 / S.fps << " with lines dt 2 lc rgb 'black' title 'deadline'\n";
    g << "unset logscale y\nset ylabel 'QoS level (0 = richest)'\nset xlabel 'time, s'\nset yrange [-0.3:"
      << std::max(levels, int(model.arch.paths.size())) - 0.7 << "] reverse\nset ytics 1\n"
      << "plot ";
    for (size_t i = 0; i < results.size(); ++i)
      g << (i ? ", " : "") << "'" << csv << "' using 3:(strcol(1) eq '" << results[i].name << "' ? $4+"
        << (double(i) - 1) * 0.06 << " : 1/0) with steps lw 2 lc rgb '" << colors[i % 3] << "' title '"
        << results[i].name << (results[i].name == "multimodel" ? " (model index)" : "") << "'";
    g << "\nunset multiplot\n";
  }
  const std::string cmd = "gnuplot '" + gp + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "gnuplot failed (is gnuplot installed?)\n");
  std::printf("wrote %s, %s/qos_summary.json, %s\n", csv.c_str(), out_dir.c_str(), png.c_str());
  return 0;
}
