// dydca_runtime_bench: speed of the client SR runtime with random weights.
//   dydca_runtime_bench [--simd none,avx2,avx512] [--threads 1,2] [--seconds 1.0] [--scalar-all]
//                       [--precision fp32,int8] [--sizes 0,1,2] [--nets 0,1]
// int8 rows use activation scales calibrated on the bench frame
// (calibrate_act_scales); "x fp32" is the fp32 row's ms / this row's ms for
// the same net, frame, path, SIMD level and threads, measured in the same run;
// "% peak" of an int8 row is its GOP per CPU-s over the measured vpdpbusd
// peak (GOP = 2 x MACs, as GFLOP).
// Prints Markdown tables: the machine's measured FMA peak, the 3x3 conv
// kernels alone, and whole frames per model x size x path x SIMD level x
// threads: ms/frame (wall, best of 3), GFLOP/s (wall; FLOPs = 2 x the model's
// MACs), GFLOP per CPU-second and its % of the measured per-core peak, and %
// of FACTS.md's nominal peak. No LibTorch.
//
// Why CPU-seconds: the bench machine is shared (other builds, tests). Wall
// time then measures the neighbours; FLOPs per CPU-second of our own threads
// (CLOCK_PROCESS_CPUTIME_ID) measure how well the kernels use a core while
// they have it, and the FMA peak is measured the same way.
// The FMA peak and the clocks live in fma_peak.h (shared with
// dydca_torch_runtime_bench).
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "dydca/runtime.h"
#include "fma_peak.h"
#include "kernels.h"  // private kernel table, for the per-kernel numbers

using namespace dydca;
using namespace dydca::bench;

namespace {

constexpr double kFactsPeakPerCore = 245.0;  // GFLOP/s, FACTS.md (Sapphire Rapids)

// ---- random models ------------------------------------------------------------------

Model random_model(int scale, int C, int E, int N, std::vector<PathSpec> paths) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  Model m;
  m.arch = ModelArch{scale, C, E, N, std::move(paths)};
  const int s2 = scale * scale;
  auto add = [&](std::string name, std::vector<int> shape) {
    Tensor t{std::move(name), shape, {}, {}, {}};
    size_t n = 1;
    for (int d : shape) n *= size_t(d);
    t.data.resize(n);
    for (auto& v : t.data) v = u(rng);
    m.tensors.push_back(std::move(t));
  };
  add("head.weight", {C, 1, 3, 3});
  add("head.bias", {C});
  for (int i = 0; i < N; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    add(p + "conv1.weight", {E, C, 3, 3});
    add(p + "conv1.bias", {E});
    add(p + "conv2.weight", {C, E, 3, 3});
    add(p + "conv2.bias", {C});
  }
  add("tail.weight", {s2, C, 3, 3});
  add("tail.bias", {s2});
  add("skip.weight", {s2, 1, 5, 5});
  add("skip.bias", {s2});
  return m;
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p) ++p;
  }
  return v;
}

// ---- kernel micro-benchmark -------------------------------------------------------------

// One 3x3 conv cs -> cout_pad over a 128 x 64 output rectangle per thread
// (each thread its own buffers, like the runtime's arenas).
Rate bench_conv_kernel(SimdLevel level, int cs, int cin, int cout_pad, int threads,
                       double seconds) {
  const rt::KernelTable& k = rt::kernels_for(level);
  const int W = 128, H = 64, bw = W + 2, bh = H + 2;
  struct Bufs {
    std::vector<float> src, dst, w, b;
  };
  std::vector<Bufs> bufs(static_cast<size_t>(threads));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& b : bufs) {
    b.src.resize(size_t(bw) * bh * cs + 64 * 64);
    b.dst.resize(size_t(bw) * bh * cout_pad + 64 * 64);
    b.w.resize(size_t(9) * cin * cout_pad);
    b.b.resize(size_t(cout_pad));
    for (auto& v : b.src) v = u(rng);
    for (auto& v : b.w) v = u(rng) * 0.01f;
  }
  const rt::ConvFn fn = k.conv3x3[rt::cs_index(cs)][cout_pad / rt::kChannelAlign - 1];
  auto one = [&](Bufs& b) {
    rt::ConvArgs a;
    a.src = b.src.data();
    a.src_row = ptrdiff_t(bw) * cs;
    a.src_cs = cs;
    a.cin = cin;
    a.dst = b.dst.data() + ptrdiff_t(bw) * cout_pad + cout_pad;
    a.dst_row = ptrdiff_t(bw) * cout_pad;
    a.cout_pad = cout_pad;
    a.weight = b.w.data();
    a.bias = b.b.data();
    a.width = W;
    a.height = H;
    a.epilogue = rt::Epilogue::kRelu;
    fn(a);
  };
  one(bufs[0]);
  int reps = 1;
  for (;;) {  // calibrate
    auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) one(bufs[0]);
    if (seconds_since(t0) > 0.05) break;
    reps *= 2;
  }
  reps = std::max(1, int(reps * seconds / 0.1 / 2));
  Rate best;
  for (int trial = 0; trial < 3; ++trial) {
    Span span;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        for (int i = 0; i < reps; ++i) one(bufs[size_t(t)]);
      });
    for (auto& t : ts) t.join();
    const double gflop = 2.0 * 9 * cin * cout_pad * W * H * reps * threads / 1e9;
    best.wall = std::max(best.wall, gflop / span.wall());
    best.cpu = std::max(best.cpu, gflop / span.cpu());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<SimdLevel> levels;
  std::vector<int> threads_list = {1, 2};
  double seconds = 1.0;
  bool scalar_all = false, no_kernels = false;
  int group_x = RuntimeOptions{}.group_x, group_y = RuntimeOptions{}.group_y;
  std::vector<int> only_nets;  // indices into nets (default all)
  std::vector<int> only_sizes;  // indices into sizes (default all)
  std::vector<Precision> precisions = {Precision::kFp32, Precision::kInt8};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--simd" && i + 1 < argc) {
      std::string s = argv[++i];
      for (size_t p = 0; p <= s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        auto l = parse_simd_level(s.substr(p, q - p));
        if (!l || !l.value()) {
          std::fprintf(stderr, "bad --simd entry\n");
          return 2;
        }
        levels.push_back(*l.value());
        p = q + 1;
      }
    } else if (a == "--threads" && i + 1 < argc) {
      threads_list = parse_list(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--group" && i + 1 < argc) {
      if (std::sscanf(argv[++i], "%dx%d", &group_x, &group_y) != 2) return 2;
    } else if (a == "--nets" && i + 1 < argc) {
      only_nets = parse_list(argv[++i]);
    } else if (a == "--sizes" && i + 1 < argc) {
      only_sizes = parse_list(argv[++i]);
    } else if (a == "--precision" && i + 1 < argc) {
      precisions.clear();
      const std::string s = argv[++i];
      for (size_t p = 0; p <= s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        auto pr = parse_precision(s.substr(p, q - p));
        if (!pr || *pr == Precision::kAuto) {
          std::fprintf(stderr, "bad --precision entry (fp32, int8)\n");
          return 2;
        }
        precisions.push_back(*pr);
        p = q + 1;
      }
    } else if (a == "--no-kernels") {
      no_kernels = true;
    } else if (a == "--scalar-all") {
      scalar_all = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--simd none,avx2,avx512] [--threads 1,2] [--seconds 1.0] "
                   "[--group 4x4] [--nets 0,1] [--sizes 0,1,2] [--precision fp32,int8] "
                   "[--no-kernels] [--scalar-all]\n",
                   argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (levels.empty())
    for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2, SimdLevel::kNone})
      if (simd_level_supported(l)) levels.push_back(l);

  std::printf("## Machine FMA peak (measured, independent FMAs, best of 3)\n\n");
  std::printf("| level | threads | GFLOP/s (wall) | GFLOP per CPU-s |\n|---|---|---|---|\n");
  double core_peak = 0;  // GFLOP per CPU-second: one core's peak while it runs
  for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2}) {
    if (!simd_level_supported(l)) continue;
    for (int t : {1, 2}) {
      const Rate r = measure_peak(l, t);
      core_peak = std::max(core_peak, r.cpu);
      std::printf("| %s | %d | %.1f | %.1f |\n", simd_level_name(l), t, r.wall, r.cpu);
    }
  }
  double int8_peak = 0;  // GOP per CPU-second
  for (int t : {1, 2}) {
    const Rate r = measure_vnni_peak(t);
    if (r.cpu == 0) break;
    int8_peak = std::max(int8_peak, r.cpu);
    std::printf("| avx512 vnni (int8 GOP/s) | %d | %.1f | %.1f |\n", t, r.wall, r.cpu);
  }
  std::printf("\nPer-core peak used below: %.1f GFLOP per CPU-second (fp32), %.1f GOP per "
              "CPU-second (int8 vpdpbusd). FACTS.md nominal peak: %.0f GFLOP/s per core.\n",
              core_peak, int8_peak, kFactsPeakPerCore);

  std::printf("\n## 3x3 conv kernels alone (128x64 outputs per thread, ReLU epilogue)\n\n");
  std::printf("| level | cin->cout | threads | GFLOP/s (wall) | GFLOP per CPU-s | %% core peak | "
              "%% FACTS peak |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (SimdLevel l : levels) {
    if (no_kernels || (l == SimdLevel::kNone && !scalar_all)) continue;
    for (auto [cs, cin, co] : {std::tuple{8, 8, 8}, std::tuple{16, 16, 16},
                               std::tuple{24, 24, 24}, std::tuple{32, 32, 32},
                               std::tuple{48, 48, 48}, std::tuple{64, 64, 64}})
      for (int t : threads_list) {
        const Rate g = bench_conv_kernel(l, cs, cin, co, t, seconds * 0.3);
        std::printf("| %s | %d->%d | %d | %.1f | %.1f | %.0f %% | %.0f %% |\n",
                    simd_level_name(l), cin, co, t, g.wall, g.cpu, 100 * g.cpu / core_peak,
                    100 * g.wall / (kFactsPeakPerCore * t));
        std::fflush(stdout);
      }
  }

  struct Net {
    const char* name;
    int C, E, N;
    std::vector<PathSpec> paths;
  };
  const std::vector<Net> nets = {
      {"C32 E32 N4", 32, 32, 4, {{0, 0}, {1, 16}, {2, 24}, {4, 32}}},
      {"C16 E16 N2", 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}},
  };
  struct Size {
    int scale, w, h;
  };
  const std::vector<Size> sizes = {{4, 480, 270}, {2, 640, 360}, {2, 960, 540}};

  std::printf("\n## Whole frames (random weights, tile 32, groups of %dx%d tiles, uniform path)\n\n",
              group_x, group_y);
  std::printf("GFLOP = 2 x the model's MACs (halo recomputation and channel padding not counted).\n\n");
  std::printf("| net | LR -> HR | path (d,w) | GFLOP/frame | simd | prec | threads | ms/frame | fps | "
              "GOP/s (wall) | GOP per CPU-s | %% core peak | x fp32 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<uint8_t> lr, hr;
  // One worker pool per thread count, shared by every model and session run
  // with that count (as the decoder shares one).
  std::map<int, std::shared_ptr<WorkerPool>> pools;
  for (int t : threads_list) {
    auto pool = WorkerPool::create(t);
    if (!pool) {
      std::fprintf(stderr, "%s\n", pool.error_message().c_str());
      return 1;
    }
    pools[t] = std::move(*pool);
  }
  for (size_t ni = 0; ni < nets.size(); ++ni) {
    const Net& net = nets[ni];
    if (!only_nets.empty() && std::find(only_nets.begin(), only_nets.end(), int(ni)) == only_nets.end())
      continue;
    for (size_t si = 0; si < sizes.size(); ++si) {
      const Size& sz = sizes[si];
      if (!only_sizes.empty() &&
          std::find(only_sizes.begin(), only_sizes.end(), int(si)) == only_sizes.end())
        continue;
      Model model = random_model(sz.scale, net.C, net.E, net.N, net.paths);
      lr.assign(size_t(sz.w) * sz.h, 0);
      std::mt19937 rng(5);
      for (size_t i = 0; i < lr.size(); ++i)
        lr[i] = uint8_t(128 + 60 * std::sin(0.05 * double(i % size_t(sz.w))) + rng() % 30);
      if (std::find(precisions.begin(), precisions.end(), Precision::kInt8) != precisions.end()) {
        auto act = calibrate_act_scales(model, {LumaView{lr.data(), sz.w, sz.h, sz.w}});
        if (!act) {
          std::fprintf(stderr, "%s\n", act.error_message().c_str());
          return 1;
        }
        model.act = *act;
      }
      hr.assign(lr.size() * size_t(sz.scale * sz.scale), 0);
      for (SimdLevel l : levels) {
        // The scalar reference is ~50x slower: by default only the small net at x4.
        if (l == SimdLevel::kNone && !scalar_all && !(net.C == 16 && sz.scale == 4)) continue;
        for (int t : threads_list) {
         std::vector<double> fp32_ms(net.paths.size() + 1, 0.0);
         for (Precision prec : precisions) {
          RuntimeOptions o;
          o.threads = t;
          o.simd = l;
          o.precision = prec;
          o.max_lr_width = sz.w;
          o.max_lr_height = sz.h;
          o.group_x = group_x;
          o.group_y = group_y;
          auto rt = SrRuntime::create(model, o, pools.at(t));  // one pool per thread count
          if (!rt) {
            std::fprintf(stderr, "%s\n", rt.error_message().c_str());
            return 1;
          }
          // Rows: each path on the whole frame, then "mixed": every tile on a random
          // path (uniform over the paths, fixed seed), i.e. the worst case for
          // tile grouping (real routing is spatially smoother).
          const size_t ntiles = size_t(rt->tiles_x(sz.w)) * rt->tiles_y(sz.h);
          std::vector<uint8_t> mixed(ntiles);
          std::mt19937 prng(17);
          for (auto& v : mixed) v = uint8_t(prng() % unsigned(rt->num_paths()));
          for (int p = 0; p <= rt->num_paths(); ++p) {
            const bool is_mixed = p == rt->num_paths();
            const std::vector<uint8_t> paths = is_mixed ? mixed : std::vector<uint8_t>(ntiles, uint8_t(p));
            auto frame = [&] {
              Status st = rt->upscale_luma(lr.data(), sz.w, sz.h, sz.w, hr.data(),
                                           sz.w * sz.scale, paths);
              if (!st) {
                std::fprintf(stderr, "%s\n", st.message().c_str());
                std::exit(1);
              }
            };
            frame();  // warm-up
            // Best of 3 runs of >= seconds/3 each (timings on a shared machine are noisy).
            double best_ms = 1e30, best_cpu_ms = 1e30;
            for (int rep = 0; rep < 3; ++rep) {
              int n = 0;
              Span span;
              do {
                frame();
                ++n;
              } while (span.wall() < seconds / 3);
              best_ms = std::min(best_ms, 1e3 * span.wall() / n);
              best_cpu_ms = std::min(best_cpu_ms, 1e3 * span.cpu() / n);
              if (l == SimdLevel::kNone) break;
            }
            const double gflop = 2.0 * double(rt->frame_macs(sz.w, sz.h, paths)) / 1e9;
            const double gflops = gflop / (best_ms / 1e3);
            const double per_cpu = gflop / (best_cpu_ms / 1e3);
            char path_name[32];
            if (is_mixed)
              std::snprintf(path_name, sizeof path_name, "mixed");
            else
              std::snprintf(path_name, sizeof path_name, "(%d,%d)", net.paths[size_t(p)].depth,
                            net.paths[size_t(p)].width);
            const bool i8 = rt->precision() == Precision::kInt8;
            const double peak = i8 ? int8_peak : core_peak;
            char ratio[32] = "";
            if (!i8)
              fp32_ms[size_t(p)] = best_ms;
            else if (fp32_ms[size_t(p)] > 0)
              std::snprintf(ratio, sizeof ratio, "%.2f", fp32_ms[size_t(p)] / best_ms);
            std::printf("| %s | x%d %dx%d -> %dx%d | %s | %.2f | %s | %s | %d | %.2f | %.0f | %.1f "
                        "| %.1f | %.0f %% | %s |\n",
                        net.name, sz.scale, sz.w, sz.h, sz.w * sz.scale, sz.h * sz.scale, path_name,
                        gflop, simd_level_name(l), precision_name(rt->precision()), t, best_ms,
                        1e3 / best_ms, gflops, per_cpu, peak > 0 ? 100 * per_cpu / peak : 0.0,
                        ratio);
            std::fflush(stdout);
          }
         }
        }
      }
    }
  }
  // The machine is shared: measure the peak again at the end and say so.
  const Rate end1 = measure_peak(best_simd_level(), 1), end2 = measure_peak(best_simd_level(), 2);
  std::printf("\nPeak re-measured at the end (%s): 1 thread %.1f GFLOP/s wall, %.1f per CPU-s; "
              "2 threads %.1f wall, %.1f per CPU-s\n",
              simd_level_name(best_simd_level()), end1.wall, end1.cpu, end2.wall, end2.cpu);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("\nPeak RSS: %.1f MiB\n", double(ru.ru_maxrss) / 1024.0);
  return 0;
}
