// dydca_torch_runtime_bench: our client SR runtime against LibTorch on the
// same model, the same LR frame and the same thread count (issue 7).
//   dydca_torch_runtime_bench [--threads 1,2] [--reps 5] [--seconds 0.2]
//       [--cases x4-480x270,x2-640x360,x2-960x540] [--input VIDEO] [--json FILE] [--no-rss]
//
// Model: the encoder's default architecture (C16 E16 N2, paths (0,0) (1,8)
// (2,16)) at each case's scale, init_model() (bicubic skip, Kaiming body)
// with the tail, the residual convs and the biases randomised so that every
// layer matters. Frame: one frame of --input resized (area) to the case's LR
// size, or the synthetic test clip. Per case x path, three engines:
//   ours   dydca::SrSession::upscale_luma (8-bit HR out, what `dydca decode` runs)
//   eager  LibTorch eager Supernet::forward_frame, channels_last, NoGradGuard + InferenceMode
//   script the same path as a TorchScript module defined from source in C++
//          (replicate pad, convs, ReLU, residuals, pixel shuffle), sliced
//          weights as parameters, torch::jit::freeze + optimize_for_inference
//          (freeze only if that throws; the table says which ran).
// The LibTorch engines get the 8-bit LR plane and return the float HR plane
// (no rounding), and compute the padded frame like Supernet::forward_frame.
//
// Printed (Markdown): the measured FMA peak (fma_peak.h), the numerical
// agreement of the three engines (max |diff| of the float output in luma/255
// units, tolerance 1e-4 as tests/test_training.cpp; 8-bit identical pixels),
// ms/frame (wall, best of --reps runs of >= --seconds each, after warm-up;
// the engines take turns rep by rep so that load changes hit all of them),
// GFLOP/s (FLOPs = 2 x ModelArch::macs_per_lr_pixel x LR pixels: the model's
// useful work; padding and halo recomputation count as losses), GFLOP per
// CPU-second of the process and its % of the per-core peak, the speed-up of
// ours over the faster LibTorch engine, and the peak RSS of every engine.
//
// Peak RSS: each (engine, case, path) runs in its own child (fork + exec of
// this binary with --rss-child: a fresh address space holding nothing of the
// other engines): it builds the model and the LR frame, trims the heap,
// resets the high-water mark (/proc/self/clear_refs) and reads VmRSS ("base":
// libtorch loaded and initialised, model and frame built), runs the engine
// (setup + warm-up + 3 frames, output buffers included) and reads VmHWM
// ("peak"). "own" = peak - base is the engine's memory; a client binary
// without libtorch (a decoder-only `dydca` build) pays only that plus its
// own libraries.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dydca/encoder.h"  // default_arch: the model dydca encode ships
#include "dydca/media.h"
#include "dydca/runtime.h"
#include "dydca/synthetic.h"
#include "dydca/training.h"
#include "fma_peak.h"
#include "supernet.h"  // training/src: the eager LibTorch network

using namespace dydca;
using namespace dydca::bench;
using nlohmann::json;

namespace {

struct Case {
  int scale = 2, w = 0, h = 0;
  std::string name() const {
    return "x" + std::to_string(scale) + " " + std::to_string(w) + "x" + std::to_string(h) +
           " -> " + std::to_string(w * scale) + "x" + std::to_string(h * scale);
  }
};

// "x4-480x270"
bool parse_case(const std::string& s, Case* c) {
  return std::sscanf(s.c_str(), "x%d-%dx%d", &c->scale, &c->w, &c->h) == 3 && c->scale >= 2 &&
         c->scale <= 4 && c->w > 0 && c->h > 0 && c->w <= 4096 && c->h <= 4096;
}


Model bench_model(int scale) {
  const ModelArch arch = default_arch(scale);
  auto init = init_model(arch, 1);
  if (!init) throw std::runtime_error(init.error_message());
  Supernet net(arch);
  if (Status st = net->load_model(*init); !st) throw std::runtime_error(st.message());
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  // A trained tail and residual branches are not zero; the untrained skip is
  // the dyadic bicubic kernel, whose outputs sit on .5 (jitter it a little).
  net->tail_w.uniform_(-0.05, 0.05);
  net->tail_b.uniform_(-0.01, 0.01);
  net->head_b.uniform_(-0.1, 0.1);
  for (auto& b : net->c1_b) b.uniform_(-0.05, 0.05);
  for (auto& w : net->c2_w) w.uniform_(-0.1, 0.1);
  for (auto& b : net->c2_b) b.uniform_(-0.05, 0.05);
  net->skip_w.add_(torch::rand_like(net->skip_w) * 2e-3 - 1e-3);
  return net->to_model();
}

// One LR luma plane of the case's size: frame `index` of `input` resized with
// area averaging, or the synthetic clip.
std::vector<uint8_t> bench_frame(const std::string& input, int index, int w, int h) {
  if (input.empty()) return synthetic_clip(w, h, 1, 7)[0].y;
  auto reader = VideoReader::open(input, 1);
  if (!reader) throw std::runtime_error(reader.error_message());
  Frame f;
  for (int i = 0; i <= index; ++i) {
    auto got = reader->read(f);
    if (!got) throw std::runtime_error(got.error_message());
    if (!*got) break;  // shorter clip: its last frame
  }
  if (f.empty()) throw std::runtime_error(input + ": no frames");
  auto lr = resize(f, w, h, ScaleFilter::kArea);
  if (!lr) throw std::runtime_error(lr.error_message());
  return lr->y;
}

// ---- engines ------------------------------------------------------------------

class Engine {
 public:
  virtual ~Engine() = default;
  virtual void run() = 0;                         // one frame
  virtual std::vector<float> output_float() = 0;  // HR plane, luma/255 units
  virtual std::string note() const { return ""; }
};

class OursEngine : public Engine {
 public:
  OursEngine(const Model& m, const std::vector<uint8_t>& lr, const Case& c, int path, int threads)
      : lr_(lr), c_(c), path_(path) {
    auto model = SrModel::create(m);
    if (!model) throw std::runtime_error(model.error_message());
    auto pool = WorkerPool::create(threads);
    if (!pool) throw std::runtime_error(pool.error_message());
    SessionOptions so;
    so.max_lr_width = c.w;
    so.max_lr_height = c.h;
    auto session = SrSession::create(std::move(*pool), so);
    if (!session) throw std::runtime_error(session.error_message());
    model_ = std::move(*model);
    session_ = std::make_unique<SrSession>(std::move(*session));
    session_->reserve(*model_);
    hr_.resize(lr.size() * size_t(c.scale * c.scale));
  }
  void run() override {
    Status st = session_->upscale_luma(*model_, lr_.data(), c_.w, c_.h, c_.w, hr_.data(),
                                       c_.w * c_.scale, path_);
    if (!st) throw std::runtime_error(st.message());
  }
  std::vector<float> output_float() override {
    std::vector<float> out(hr_.size());
    const std::vector<uint8_t> paths(
        size_t(session_->tiles_x(c_.w)) * size_t(session_->tiles_y(c_.h)), uint8_t(path_));
    Status st = session_->upscale_luma_float(*model_, lr_.data(), c_.w, c_.h, c_.w, out.data(),
                                             c_.w * c_.scale, paths);
    if (!st) throw std::runtime_error(st.message());
    return out;
  }
  const std::vector<uint8_t>& output_u8() const { return hr_; }

 private:
  const std::vector<uint8_t>& lr_;
  Case c_;
  int path_;
  std::shared_ptr<const SrModel> model_;
  std::unique_ptr<SrSession> session_;
  std::vector<uint8_t> hr_;
};

// LR uint8 plane -> [1,1,h,w] float in [0,1] (the same values as the
// runtime's Y/255.f table).
torch::Tensor lr_tensor(const std::vector<uint8_t>& lr, const Case& c) {
  return torch::from_blob(const_cast<uint8_t*>(lr.data()), {1, 1, c.h, c.w}, torch::kUInt8)
      .to(torch::kFloat32)
      .div_(255.f);
}

std::vector<float> tensor_to_vector(const torch::Tensor& t) {
  auto v = t.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
}

class EagerEngine : public Engine {
 public:
  EagerEngine(const Model& m, const std::vector<uint8_t>& lr, const Case& c, int path)
      : lr_(lr), c_(c), path_(path), net_(m.arch) {
    if (Status st = net_->load_model(m); !st) throw std::runtime_error(st.message());
    net_->channels_last = true;
    net_->eval();
  }
  void run() override {
    torch::NoGradGuard ng;
    c10::InferenceMode im;
    auto x = lr_tensor(lr_, c_).contiguous(at::MemoryFormat::ChannelsLast);
    out_ = net_->forward_frame(x, path_);
  }
  std::vector<float> output_float() override { return tensor_to_vector(out_); }

 private:
  const std::vector<uint8_t>& lr_;
  Case c_;
  int path_;
  Supernet net_;
  torch::Tensor out_;
};

// TorchScript source of path p: what Supernet::forward_frame computes.
// `pad` spells the replicate padding (the spellings the C++ frontend accepts
// differ between LibTorch versions; the engine tries them in turn).
std::string script_source(const ModelArch& a, int p, const std::string& pad) {
  const PathSpec& ps = a.paths.at(size_t(p));
  const int r = ps.width > 0 ? std::max(2, 2 + 2 * ps.depth) : 2, s = a.scale;
  auto conv = [](const std::string& in, const std::string& w, int padding) {
    const std::string pd = std::to_string(padding);
    return "torch.conv2d(" + in + ", self." + w + "_w, self." + w + "_b, [1, 1], [" + pd + ", " +
           pd + "], [1, 1], 1)";
  };
  std::ostringstream o;
  o << "def forward(self, x):\n"
    << "    out_h = x.size(2) * " << s << "\n"
    << "    out_w = x.size(3) * " << s << "\n"
    << "    x = " << pad << "(x, [" << r << ", " << r << ", " << r << ", " << r << "])\n"
    << "    out = " << conv("x", "skip", 2) << "\n";
  if (ps.width > 0) {
    o << "    h = " << conv("x", "head", 1) << "\n";
    for (int i = 0; i < ps.depth; ++i) {
      o << "    t = torch.relu(" << conv("h", "c1_" + std::to_string(i), 1) << ")\n";
      o << "    h = h + " << conv("t", "c2_" + std::to_string(i), 1) << "\n";
    }
    o << "    out = out + " << conv("h", "tail", 1) << "\n";
  }
  o << "    y = torch.pixel_shuffle(out, " << s << ")\n"
    << "    return y.narrow(2, " << r * s << ", out_h).narrow(3, " << r * s << ", out_w)\n";
  return o.str();
}

class ScriptEngine : public Engine {
 public:
  ScriptEngine(const Model& m, const std::vector<uint8_t>& lr, const Case& c, int path)
      : lr_(lr), c_(c) {
    const ModelArch& a = m.arch;
    const PathSpec& ps = a.paths.at(size_t(path));
    const int w = ps.width, e = a.inner_width(ps.width);
    auto tensor = [&](const std::string& name) {
      const Tensor* t = m.find(name);
      if (!t) throw std::runtime_error("model has no " + name);
      std::vector<int64_t> shape(t->shape.begin(), t->shape.end());
      return torch::from_blob(const_cast<float*>(t->data.data()), shape, torch::kFloat32).clone();
    };
    // Weights sliced [:out, :in] for this path, as contiguous parameters.
    std::vector<std::pair<std::string, torch::Tensor>> params = {{"skip_w", tensor("skip.weight")},
                                                                 {"skip_b", tensor("skip.bias")}};
    if (w > 0) {
      params.push_back({"head_w", tensor("head.weight").narrow(0, 0, w).contiguous()});
      params.push_back({"head_b", tensor("head.bias").narrow(0, 0, w).contiguous()});
      for (int i = 0; i < ps.depth; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".", n = std::to_string(i);
        params.push_back({"c1_" + n + "_w",
                          tensor(b + "conv1.weight").narrow(0, 0, e).narrow(1, 0, w).contiguous()});
        params.push_back({"c1_" + n + "_b", tensor(b + "conv1.bias").narrow(0, 0, e).contiguous()});
        params.push_back({"c2_" + n + "_w",
                          tensor(b + "conv2.weight").narrow(0, 0, w).narrow(1, 0, e).contiguous()});
        params.push_back({"c2_" + n + "_b", tensor(b + "conv2.bias").narrow(0, 0, w).contiguous()});
      }
      params.push_back({"tail_w", tensor("tail.weight").narrow(1, 0, w).contiguous()});
      params.push_back({"tail_b", tensor("tail.bias")});
    }
    std::string errors;
    for (std::string pad : {"torch.replication_pad2d", "torch._C._nn.replication_pad2d",
                            "torch.pad", "torch.nn.functional.pad"}) {
      try {
        torch::jit::Module mod("dydca_path");
        for (auto& [name, t] : params) mod.register_parameter(name, t, /*is_buffer=*/false);
        std::string src = script_source(a, path, pad);
        if (pad.find("replication") == std::string::npos)  // generic pad: mode argument
          src.replace(src.find("])\n", src.find(pad)), 3, "], 'replicate')\n");
        mod.define(src);
        mod.eval();
        module_ = torch::jit::freeze(mod);
        pad_ = pad;
        break;
      } catch (const std::exception& ex) {
        errors += pad + ": " + first_line(ex.what()) + "; ";
      }
    }
    if (pad_.empty()) throw std::runtime_error("TorchScript define/freeze failed: " + errors);
    try {
      module_ = torch::jit::optimize_for_inference(module_);
      optimized_ = true;
    } catch (const std::exception& ex) {
      opt_error_ = first_line(ex.what());
    }
  }
  void run() override {
    torch::NoGradGuard ng;
    if (inference_mode_) {
      try {
        c10::InferenceMode im;
        out_ = module_.forward({lr_tensor(lr_, c_)}).toTensor();
        return;
      } catch (const std::exception& ex) {  // some JIT passes refuse inference tensors
        inference_mode_ = false;
        opt_error_ += " [InferenceMode off: " + first_line(ex.what()) + "]";
      }
    }
    out_ = module_.forward({lr_tensor(lr_, c_)}).toTensor();
  }
  std::vector<float> output_float() override { return tensor_to_vector(out_); }
  std::string note() const override {
    return "replicate pad spelled " + pad_ + ", " +
           (optimized_ ? "freeze + optimize_for_inference" + opt_error_
                       : "freeze only (optimize_for_inference failed: " + opt_error_ + ")");
  }

 private:
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
  const std::vector<uint8_t>& lr_;
  Case c_;
  torch::jit::Module module_;
  std::string pad_, opt_error_;
  bool optimized_ = false, inference_mode_ = true;
  torch::Tensor out_;
};

enum class EngineKind { kOurs = 0, kEager = 1, kScript = 2 };
constexpr const char* kEngineNames[] = {"ours", "eager", "script"};

std::unique_ptr<Engine> make_engine(EngineKind k, const Model& m, const std::vector<uint8_t>& lr,
                                    const Case& c, int path, int threads) {
  switch (k) {
    case EngineKind::kOurs:
      return std::make_unique<OursEngine>(m, lr, c, path, threads);
    case EngineKind::kEager:
      return std::make_unique<EagerEngine>(m, lr, c, path);
    case EngineKind::kScript:
      return std::make_unique<ScriptEngine>(m, lr, c, path);
  }
  return nullptr;
}

// ---- measurements ----------------------------------------------------------------

struct Timing {
  double ms = 1e30;      // wall ms/frame, best rep
  double cpu_ms = 1e30;  // process CPU ms/frame, best rep
};

// One rep: frames until >= seconds (at least one).
void time_rep(Engine& e, double seconds, Timing* t) {
  int n = 0;
  Span span;
  do {
    e.run();
    ++n;
  } while (span.wall() < seconds);
  t->ms = std::min(t->ms, 1e3 * span.wall() / n);
  t->cpu_ms = std::min(t->cpu_ms, 1e3 * span.cpu() / n);
}

struct Agreement {
  double max_ours_eager = 0, max_ours_script = 0, max_eager_script = 0;  // luma/255 units
  double u8_same = 0;  // fraction of 8-bit pixels where ours == round(clamp(255 * eager))
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

double load_average() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

long max_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// A "VmRSS:" / "VmHWM:" line of /proc/self/status, in KiB (-1 if absent).
long proc_status_kib(const char* key) {
  long v = -1;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    const size_t n = std::strlen(key);
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, key, n) == 0) v = std::atol(line + n);
    std::fclose(f);
  }
  return v;
}

struct RssResult {
  long base_kib = -1, peak_kib = -1;
};

// Child side of the RSS measurement: "engine:scale:w:h:path:threads".
int rss_child(const std::string& spec, const std::string& input, int input_frame) {
  char engine[16] = {};
  Case c;
  int path = 0, threads = 1;
  if (std::sscanf(spec.c_str(), "%15[a-z]:%d:%d:%d:%d:%d", engine, &c.scale, &c.w, &c.h, &path,
                  &threads) != 6)
    return 2;
  int k = -1;
  for (int i = 0; i < 3; ++i)
    if (std::string(engine) == kEngineNames[i]) k = i;
  if (k < 0) return 2;
  at::set_num_threads(threads);
  const Model m = bench_model(c.scale);
  const std::vector<uint8_t> lr = bench_frame(input, input_frame, c.w, c.h);
  // Decoding the input frame peaks higher than some engines: give the freed
  // memory back and restart the high-water mark from here (Linux >= 4.0;
  // ru_maxrss cannot be reset and, after exec, also remembers the forked copy
  // of the parent).
  malloc_trim(0);
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
  const long base = proc_status_kib("VmRSS:");
  {
    auto e = make_engine(EngineKind(k), m, lr, c, path, threads);
    for (int i = 0; i < 6; ++i) e->run();  // warm-up (3) + 3 frames
  }
  std::printf("%ld %ld\n", base, proc_status_kib("VmHWM:"));
  return 0;
}

// Parent side: fork, exec this binary with --rss-child, read "base peak".
RssResult measure_rss(EngineKind k, const Case& c, int path, int threads, const std::string& input,
                      int input_frame) {
  RssResult r;
  int fd[2];
  if (pipe(fd) != 0) return r;
  const std::string spec = std::string(kEngineNames[int(k)]) + ":" + std::to_string(c.scale) + ":" +
                           std::to_string(c.w) + ":" + std::to_string(c.h) + ":" +
                           std::to_string(path) + ":" + std::to_string(threads);
  const std::string frame = std::to_string(input_frame);
  // Built before fork: the child only calls async-signal-safe functions.
  std::vector<const char*> args = {"dydca_torch_runtime_bench", "--rss-child", spec.c_str(),
                                   "--input-frame", frame.c_str()};
  if (!input.empty()) {
    args.push_back("--input");
    args.push_back(input.c_str());
  }
  args.push_back(nullptr);
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]);
    close(fd[1]);
    execv("/proc/self/exe", const_cast<char* const*>(args.data()));
    _exit(127);
  }
  close(fd[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fd[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    std::sscanf(out.c_str(), "%ld %ld", &r.base_kib, &r.peak_kib);
  return r;
}

std::vector<int> parse_int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::stoi(item));
  return v;
}

std::string printf_string(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dydca runtime vs LibTorch (eager channels_last, frozen TorchScript): speed, "
      "agreement, peak RSS"};
  std::string threads_arg = "1,2", cases_arg = "x4-480x270,x2-640x360,x2-960x540";
  std::string input, json_path, rss_spec;
  int reps = 5, input_frame = 240;
  double seconds = 0.2;
  bool no_rss = false;
  app.add_option("--threads", threads_arg, "Thread counts (every engine gets the same)")
      ->capture_default_str();
  app.add_option("--reps", reps, "Timed runs per engine; the best counts")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--seconds", seconds, "Minimum length of one timed run")->capture_default_str();
  app.add_option("--cases", cases_arg, "xS-WxH LR sizes")->capture_default_str();
  app.add_option("--input", input, "Video for the LR frame (default: synthetic clip)");
  app.add_option("--input-frame", input_frame, "Frame index in --input")->capture_default_str();
  app.add_option("--json", json_path, "Also write the results as JSON");
  app.add_flag("--no-rss", no_rss, "Skip the per-engine peak-RSS children");
  app.add_option("--rss-child", rss_spec, "internal")->group("");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!rss_spec.empty()) return rss_child(rss_spec, input, input_frame);

    std::vector<Case> cases;
    {
      std::stringstream ss(cases_arg);
      for (std::string item; std::getline(ss, item, ',');) {
        Case c;
        if (!parse_case(item, &c)) {
          std::fprintf(stderr, "bad case '%s' (want e.g. x4-480x270)\n", item.c_str());
          return 2;
        }
        cases.push_back(c);
      }
    }
    const std::vector<int> threads_list = parse_int_list(threads_arg);
    if (threads_list.empty()) return 2;
    const int rss_threads = *std::max_element(threads_list.begin(), threads_list.end());
    const double load0 = load_average();
    json j;

    std::printf("# dydca runtime vs LibTorch\n\n");
    std::printf(
        "LibTorch %s (MKL-DNN %s, MKL %s), SIMD of ours: %s, frame: %s, load average "
        "at start: %.2f on %u CPUs\n\n",
        TORCH_VERSION, at::hasMKLDNN() ? "yes" : "no", at::hasMKL() ? "yes" : "no",
        simd_level_name(best_simd_level()),
        input.empty() ? "synthetic" : (input + " #" + std::to_string(input_frame)).c_str(), load0,
        std::thread::hardware_concurrency());
    j["torch_version"] = TORCH_VERSION;
    j["mkldnn"] = at::hasMKLDNN();
    j["load_start"] = load0;

    std::printf(
        "## FMA peak (fma_peak.h, best of 3)\n\n| level | threads | GFLOP/s (wall) | "
        "GFLOP per CPU-s |\n|---|---|---|---|\n");
    double core_peak = 0;
    for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2}) {
      if (!simd_level_supported(l)) continue;
      for (int t : {1, 2}) {
        const Rate r = measure_peak(l, t);
        core_peak = std::max(core_peak, r.cpu);
        std::printf("| %s | %d | %.1f | %.1f |\n", simd_level_name(l), t, r.wall, r.cpu);
        j["peak"].push_back(
            {{"level", simd_level_name(l)}, {"threads", t}, {"wall", r.wall}, {"cpu", r.cpu}});
      }
    }
    std::printf("\nPer-core peak used for %% peak: %.1f GFLOP per CPU-second.\n\n", core_peak);
    std::fflush(stdout);
    j["core_peak"] = core_peak;

    // Peak RSS first: the children start from a fresh exec either way, but the
    // machine is quieter before the long timing loop.
    struct RssRow {
      std::string c, path;
      RssResult r[3];
    };
    std::vector<RssRow> rss_rows;
    if (!no_rss) {
      for (const Case& c : cases) {
        const ModelArch arch = default_arch(c.scale);
        for (int p = 0; p < int(arch.paths.size()); ++p) {
          RssRow row{c.name(),
                     "(" + std::to_string(arch.paths[size_t(p)].depth) + "," +
                         std::to_string(arch.paths[size_t(p)].width) + ")",
                     {}};
          for (int k = 0; k < 3; ++k)
            row.r[k] = measure_rss(EngineKind(k), c, p, rss_threads, input, input_frame);
          rss_rows.push_back(row);
        }
      }
      std::printf(
          "## Peak RSS per engine (own child process, %d threads; MiB)\n\n"
          "base = VmRSS after loading libtorch and building the model and frame; "
          "peak = VmHWM; own = peak - base.\n\n",
          rss_threads);
      std::printf(
          "| LR -> HR | path | ours peak | eager peak | script peak | ours own | eager own "
          "| script own | ours own / best LibTorch own |\n|---|---|---|---|---|---|---|---|---|\n");
      for (const RssRow& row : rss_rows) {
        auto mib = [](long kib) {
          return kib < 0 ? std::string("fail") : printf_string("%.1f", kib / 1024.0);
        };
        double own[3];
        for (int k = 0; k < 3; ++k)
          own[k] =
              row.r[k].peak_kib < 0 ? NAN : double(row.r[k].peak_kib - row.r[k].base_kib) / 1024.0;
        const double best_torch = std::min(own[1], own[2]);
        std::printf("| %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.3f |\n", row.c.c_str(),
                    row.path.c_str(), mib(row.r[0].peak_kib).c_str(),
                    mib(row.r[1].peak_kib).c_str(), mib(row.r[2].peak_kib).c_str(), own[0], own[1],
                    own[2], own[0] / best_torch);
        json jr = {{"case", row.c}, {"path", row.path}, {"threads", rss_threads}};
        for (int k = 0; k < 3; ++k)
          jr[kEngineNames[k]] = {{"base_kib", row.r[k].base_kib}, {"peak_kib", row.r[k].peak_kib}};
        j["rss"].push_back(jr);
      }
      std::printf("\n");
      std::fflush(stdout);
    }

    struct SpeedRow {
      std::string c, path;
      int threads;
      double gflop;
      Timing t[3];
    };
    std::vector<SpeedRow> speed;
    std::string script_note;
    bool all_agree = true;
    std::printf(
        "## Agreement (float output, luma/255 units; tolerance 1e-4)\n\n"
        "| LR -> HR | path | max abs ours-eager | ours-script | eager-script | 8-bit "
        "identical ours vs round(eager) | ok |\n|---|---|---|---|---|---|---|\n");
    for (const Case& c : cases) {
      const Model m = bench_model(c.scale);
      const std::vector<uint8_t> lr = bench_frame(input, input_frame, c.w, c.h);
      for (int p = 0; p < int(m.arch.paths.size()); ++p) {
        const std::string pname = "(" + std::to_string(m.arch.paths[size_t(p)].depth) + "," +
                                  std::to_string(m.arch.paths[size_t(p)].width) + ")";
        const double gflop = 2.0 * double(m.arch.macs_per_lr_pixel(p)) * c.w * c.h / 1e9;
        at::set_num_threads(threads_list[0]);
        EagerEngine eager(m, lr, c, p);
        ScriptEngine script(m, lr, c, p);
        script_note = script.note();
        {
          OursEngine ours(m, lr, c, p, threads_list[0]);
          ours.run();
          eager.run();
          script.run();
          const auto fo = ours.output_float(), fe = eager.output_float(),
                     fs = script.output_float();
          Agreement a;
          a.max_ours_eager = max_abs_diff(fo, fe);
          a.max_ours_script = max_abs_diff(fo, fs);
          a.max_eager_script = max_abs_diff(fe, fs);
          size_t same = 0;
          const auto& o8 = ours.output_u8();
          for (size_t i = 0; i < o8.size() && i < fe.size(); ++i)
            same += o8[i] == uint8_t(std::nearbyint(std::clamp(255.f * fe[i], 0.f, 255.f)));
          a.u8_same = double(same) / double(o8.size());
          const bool ok =
              a.max_ours_eager <= 1e-4 && a.max_ours_script <= 1e-4 && a.max_eager_script <= 1e-4;
          all_agree = all_agree && ok;
          std::printf("| %s | %s | %.2e | %.2e | %.2e | %.4f %% | %s |\n", c.name().c_str(),
                      pname.c_str(), a.max_ours_eager, a.max_ours_script, a.max_eager_script,
                      100 * a.u8_same, ok ? "yes" : "**NO**");
          std::fflush(stdout);
          j["agreement"].push_back({{"case", c.name()},
                                    {"path", pname},
                                    {"max_ours_eager", a.max_ours_eager},
                                    {"max_ours_script", a.max_ours_script},
                                    {"max_eager_script", a.max_eager_script},
                                    {"u8_identical", a.u8_same},
                                    {"ok", ok}});
        }
        for (int t : threads_list) {
          at::set_num_threads(t);
          OursEngine ours(m, lr, c, p, t);
          Engine* engines[3] = {&ours, &eager, &script};
          for (Engine* e : engines)
            for (int i = 0; i < 3; ++i) e->run();  // warm-up (TorchScript profiles 1-2 runs)
          SpeedRow row{c.name(), pname, t, gflop, {}};
          for (int rep = 0; rep < reps; ++rep)
            for (int k = 0; k < 3; ++k) time_rep(*engines[k], seconds, &row.t[k]);
          speed.push_back(row);
        }
      }
    }
    std::printf("\nTorchScript engine: %s.\n\n", script_note.c_str());
    j["script_mode"] = script_note;
    j["all_agree"] = all_agree;

    std::printf("## Speed (best of %d runs of >= %.2f s; GFLOP = 2 x model MACs)\n\n", reps,
                seconds);
    std::printf(
        "| LR -> HR | path | GFLOP | thr | engine | ms/frame | CPU-ms/frame | GFLOP/s "
        "(wall) | GFLOP per CPU-s | %% core peak | ours speed-up vs best LibTorch "
        "(wall / CPU) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const SpeedRow& row : speed) {
      const double best_wall = std::min(row.t[1].ms, row.t[2].ms);
      const double best_cpu = std::min(row.t[1].cpu_ms, row.t[2].cpu_ms);
      json jr = {
          {"case", row.c}, {"path", row.path}, {"threads", row.threads}, {"gflop", row.gflop}};
      for (int k = 0; k < 3; ++k) {
        const Timing& t = row.t[k];
        const double per_cpu = row.gflop / (t.cpu_ms / 1e3);
        std::string speedup;
        if (k == 0)
          speedup = printf_string("**%.2fx**", best_wall / t.ms) +
                    printf_string(" / %.2fx", best_cpu / t.cpu_ms);
        std::printf("| %s | %s | %.2f | %d | %s | %.2f | %.2f | %.1f | %.1f | %.0f %% | %s |\n",
                    k == 0 ? row.c.c_str() : "", k == 0 ? row.path.c_str() : "", row.gflop,
                    row.threads, kEngineNames[k], t.ms, t.cpu_ms, row.gflop / (t.ms / 1e3), per_cpu,
                    100 * per_cpu / core_peak, speedup.c_str());
        jr[kEngineNames[k]] = {{"ms", t.ms},
                               {"cpu_ms", t.cpu_ms},
                               {"gflops_wall", row.gflop / (t.ms / 1e3)},
                               {"gflops_cpu", per_cpu},
                               {"pct_core_peak", 100 * per_cpu / core_peak}};
      }
      jr["speedup_wall"] = best_wall / row.t[0].ms;
      jr["speedup_cpu"] = best_cpu / row.t[0].cpu_ms;
      j["speed"].push_back(jr);
    }
    const double load1 = load_average();
    std::printf(
        "\nLoad average at the end: %.2f. Agreement: %s. Peak RSS of this process: %.1f MiB.\n",
        load1, all_agree ? "all engines within 1e-4" : "**MISMATCH**", max_rss_kib() / 1024.0);
    j["load_end"] = load1;
    if (!json_path.empty()) {
      std::ofstream f(json_path);
      f << j.dump(2) << "\n";
      if (!f) {
        std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
        return 1;
      }
    }
    return all_agree ? 0 : 1;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "dydca_torch_runtime_bench: %s\n", ex.what());
    return 1;
  }
}
