// `dydca chunks IN -o map.png`: the chunking debug view. Runs the server's
// chunking on a clip (HR = input padded to 2*scale, LR = lanczos downscale through
// an x264 round trip, as training sees it), prints segments, chunk sizes,
// path tables and routing flips, and paints one frame's tile -> chunk map.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "dydca/chunking.h"
#include "dydca/container.h"
#include "dydca/media.h"

namespace dydca::cli {

namespace {

// The design's default path family (depth, width): only used to show which
// path each chunk would get; the encoder uses the trained model's arch.
ModelArch default_arch(int scale) {
  ModelArch a;
  a.scale = scale;
  a.paths = {{0, 0}, {1, 16}, {2, 24}, {4, 32}};
  return a;
}

std::string join(const std::vector<uint8_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

Subcommand add_chunks(CLI::App& app) {
  struct Opts {
    std::string input;
    std::string output = "chunks.png";
    int scale = 2;
    int chunks = 4;
    int tile = 32;
    int frame = -1;
    int64_t max_frames = 120;
    std::string method = "kmeans";
    float margin = SmoothingParams{}.margin;
    uint64_t seed = 1;
    int crf = 23;
    std::string preset = "medium";
    bool painted_on_lr = false;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "chunks", "Content chunks of a clip: stats and a picture of one frame's tile -> chunk map");
  sub->add_option("input", o->input, "Any file FFmpeg reads")->required();
  sub->add_option("-o,--output", o->output, "PNG to write")->capture_default_str();
  sub->add_option("-s,--scale", o->scale, "Downscale factor")
      ->check(CLI::IsMember({2, 3, 4}))
      ->capture_default_str();
  sub->add_option("-k,--chunks", o->chunks, "Number of content chunks K")
      ->check(CLI::Range(1, kMaxChunks))
      ->capture_default_str();
  sub->add_option("--tile", o->tile, "Tile size in LR pixels")
      ->check(CLI::Range(8, 512))
      ->capture_default_str();
  sub->add_option("--frame", o->frame, "Frame to paint (default: the middle one)");
  sub->add_option("--max-frames", o->max_frames, "Frames to use (0 = all)")->capture_default_str();
  sub->add_option("--method", o->method, "kmeans, or quantiles (STDO: bins of bicubic PSNR)")
      ->check(CLI::IsMember({"kmeans", "quantiles"}))
      ->capture_default_str();
  sub->add_option("--margin", o->margin, "Routing hysteresis margin (0 = no smoothing)")
      ->check(CLI::Range(0.0f, 100.0f))
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "k-means seed")->capture_default_str();
  sub->add_option("--crf", o->crf, "x264 CRF of the LR stream")
      ->check(CLI::Range(0, 51))
      ->capture_default_str();
  sub->add_option("--preset", o->preset, "x264 preset")->capture_default_str();
  sub->add_flag("--lr", o->painted_on_lr, "Paint over the decoded LR frame instead of HR");
  sub->add_flag("--json", o->json, "Machine-readable stats on stdout");
  return {
      sub, [o]() -> int {
        const auto t0 = std::chrono::steady_clock::now();
        auto progress = make_progress();
        VideoInfo info;
        ReadOptions ro;
        ro.max_frames = o->max_frames;
        ro.threads = globals().threads;
        auto frames = read_all_frames(o->input, &info, ro, progress);
        if (!frames) return fail(frames.status());
        if (frames->empty()) return fail(Status::error(o->input + ": no video frames"));
        std::vector<Frame> hr, lr;
        hr.reserve(frames->size());
        lr.reserve(frames->size());
        for (auto& f : *frames) {
          hr.push_back(pad_to_multiple(f, 2 * o->scale));
          f = Frame{};  // the padded copy is what we keep
          auto small = downscale(hr.back(), o->scale, ScaleFilter::kLanczos);
          if (!small) return fail(small.status());
          lr.push_back(std::move(*small));
        }
        frames->clear();
        X264Config x264;
        x264.crf = o->crf;
        x264.preset = o->preset;
        x264.threads = globals().threads;
        const Rational fps = info.frame_rate.valid() ? info.frame_rate : Rational{25, 1};
        auto encoded = encode_h264(lr, fps, x264, progress);
        if (!encoded) return fail(encoded.status().with_context("x264"));
        auto decoded = decode_h264(*encoded, globals().threads);
        if (!decoded) return fail(decoded.status().with_context("decode LR"));
        if (decoded->size() != lr.size())
          return fail(Status::error("decoded " + std::to_string(decoded->size()) +
                                    " LR frames, encoded " + std::to_string(lr.size())));

        ChunkingParams params;
        params.scale = o->scale;
        params.tile_size = o->tile;
        params.cluster.chunks = o->chunks;
        params.cluster.seed = o->seed;
        params.cluster.method =
            o->method == "quantiles" ? ClusterMethod::kPsnrQuantiles : ClusterMethod::kKMeans;
        params.smoothing.enabled = o->margin > 0;
        params.smoothing.margin = o->margin;
        const auto t1 = std::chrono::steady_clock::now();
        auto result = chunk_video(hr, *decoded, params, progress);
        if (!result) return fail(result.status());
        const double chunk_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        const ModelArch arch = default_arch(o->scale);
        Status st = fill_path_tables(result->routing, arch);
        if (!st) return fail(st);

        const int n = int(hr.size());
        const int frame = o->frame < 0 ? n / 2 : o->frame;
        if (frame >= n)
          return fail(Status::error("--frame " + std::to_string(frame) + ": the clip has " +
                                    std::to_string(n) + " frames (see --max-frames)"));
        st = write_chunk_map_png(o->output,
                                 o->painted_on_lr ? (*decoded)[size_t(frame)] : hr[size_t(frame)],
                                 result->routing, frame);
        if (!st) return fail(st);

        const RoutingMap& rm = result->routing;
        const RoutingStats& rs = result->routing_stats;
        // What the routing costs in the file: the container's routing blob.
        auto blob = serialize_routing(rm);
        if (!blob) return fail(blob.status().with_context("routing blob"));
        auto parsed = parse_routing(*blob);
        if (!parsed || parsed->chunk_ids != rm.chunk_ids)
          return fail(Status::error("routing blob does not round-trip"));
        const double clip_s = double(n) / fps.to_double();
        const double routing_bps = double(blob->size()) / clip_s;
        int64_t total_tiles = 0;
        for (auto t : result->chunk_tiles) total_tiles += t;
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (o->json) {
          nlohmann::json j;
          j["input"] = o->input;
          j["frames"] = n;
          j["hr"] = {hr[0].width, hr[0].height};
          j["lr"] = {rm.lr_width, rm.lr_height};
          j["tiles"] = {rm.tiles_x(), rm.tiles_y()};
          j["lr_kbps"] = encoded->bitrate_kbps();
          auto& segs = j["segments"] = nlohmann::json::array();
          for (const auto& s : result->segments) segs.push_back({s.start, s.end});
          auto& cj = j["chunks"] = nlohmann::json::array();
          for (int c = 0; c < rm.num_chunks; ++c) {
            const ChunkInfo& ci = result->clustering.chunks[size_t(c)];
            cj.push_back({{"tiles", result->chunk_tiles[size_t(c)]},
                          {"mean_bicubic_psnr", ci.mean_bicubic_psnr},
                          {"mean_gradient", ci.mean_gradient},
                          {"mean_temporal", ci.mean_temporal},
                          {"path", rm.chunk_path[0][size_t(c)]}});
          }
          j["routing_blob_bytes"] = blob->size();
          j["routing_bytes_per_second"] = routing_bps;
          j["flips_per_frame_raw"] = rs.raw_per_frame();
          j["flips_per_frame_smoothed"] = rs.smoothed_per_frame();
          auto& lv = j["qos_levels"] = nlohmann::json::array();
          for (const auto& t : rm.chunk_path)
            lv.push_back(
                {{"paths", t},
                 {"macs_per_lr_pixel", mean_macs_per_lr_pixel(t, result->chunk_tiles, arch)}});
          j["chunking_seconds"] = chunk_s;
          j["seconds"] = secs;
          j["png"] = o->output;
          std::printf("%s\n", j.dump(2).c_str());
          return 0;
        }
        std::printf(
            "%s: %d frames, HR %dx%d, LR %dx%d (x264 CRF %d: %.0f kb/s), %dx%d tiles of %d\n",
            o->input.c_str(), n, hr[0].width, hr[0].height, rm.lr_width, rm.lr_height, o->crf,
            encoded->bitrate_kbps(), rm.tiles_x(), rm.tiles_y(), rm.tile_size);
        std::printf("segments (%zu):", result->segments.size());
        for (const auto& s : result->segments) std::printf(" [%d,%d)", s.start, s.end);
        std::printf("\nchunks (%d, %s, easy -> hard):\n", rm.num_chunks, o->method.c_str());
        for (int c = 0; c < rm.num_chunks; ++c) {
          const ChunkInfo& ci = result->clustering.chunks[size_t(c)];
          std::printf(
              "  chunk %d: %7lld tiles (%5.1f%%)  bicubic %5.2f dB  gradient %6.2f  "
              "temporal %5.2f  -> path %d\n",
              c, (long long)result->chunk_tiles[size_t(c)],
              100.0 * double(result->chunk_tiles[size_t(c)]) / double(total_tiles),
              ci.mean_bicubic_psnr, ci.mean_gradient, ci.mean_temporal,
              rm.chunk_path[0][size_t(c)]);
        }
        std::printf(
            "routing: %.2f tile flips/frame raw, %.2f smoothed (margin %.2f, %lld "
            "frame pairs, %d tiles/frame)\n",
            rs.raw_per_frame(), rs.smoothed_per_frame(), double(o->margin),
            (long long)rs.frame_pairs, rm.tiles_per_frame());
        std::printf(
            "routing blob: %zu bytes for %.2f s = %.0f bytes/s (%.2f kb/s; raw ids %zu bytes)\n",
            blob->size(), clip_s, routing_bps, routing_bps * 8 / 1000, rm.chunk_ids.size());
        for (int l = 0; l < rm.levels(); ++l)
          std::printf("QoS level %d: paths [%s], %.0f MACs/LR pixel\n", l,
                      join(rm.chunk_path[size_t(l)]).c_str(),
                      mean_macs_per_lr_pixel(rm.chunk_path[size_t(l)], result->chunk_tiles, arch));
        std::printf("wrote %s (frame %d); chunking %.2f s, total %.1f s\n", o->output.c_str(),
                    frame, chunk_s, secs);
        return 0;
      }};
}

}  // namespace dydca::cli
