// libFuzzer target: the whole client decoder from memory. The input is a
// dydca file (.mkv) as bytes: DydcaReader opens it from a memory ByteSource
// (libavformat's Matroska demuxer, tags, every blob: models, updates,
// routing, segment table), then decode_file runs the real pipeline (H.264
// decode, bicubic chroma, SrStage with the file's models on the SR runtime,
// segment switches, crop) into a sink that checks every picture. Hostile
// models thus reach the runtime; fuzz_decoder_mutator.cpp keeps many inputs
// structurally valid so that they do.
//
// Each input is decoded with one SR worker, the QoS level cycling over the
// file's levels frame by frame (every path gets used), and the kernels
// chosen by the input's size (kernels_for_size: the scalar reference kernels,
// fp32 and int8, and the AVX2 ones are fuzzed too on a CPU with AVX-512).
#include "fuzz_decoder.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "dydca/container.h"
#include "dydca/decoder.h"

namespace dydca::fuzz {
namespace {

[[noreturn]] void broken_promise(const std::string& what) {
  std::fprintf(stderr, "invariant failed: %s\n", what.c_str());
  std::abort();
}

// A failure is one line that says something.
void check_message(const Status& s, const char* where) {
  if (s) return;
  const std::string& m = s.message();
  if (m.empty() || m.find('\n') != std::string::npos)
    broken_promise(std::string(where) + ": error message is not one line: \"" + m + "\"");
  if (m.rfind("internal", 0) == 0 || m.find(": internal") != std::string::npos)
    broken_promise(std::string(where) + ": " + m);
}

// Every level in turn: the routing's chunk tables of all levels get used.
class CyclingLevels final : public LevelPolicy {
 public:
  int level_for_frame(const LevelContext& ctx) override {
    return int(ctx.frame % std::max(1, ctx.levels));
  }
};

// Checks what decode_file promises a sink: open once, pictures of the open
// size with planes of their sizes, in order.
class CheckingSink final : public FrameSink {
 public:
  Status open(const SinkFormat& format) override {
    if (opened_) broken_promise("sink opened twice");
    if (format.width < 1 || format.height < 1)
      broken_promise("sink opened at " + std::to_string(format.width) + "x" +
                     std::to_string(format.height));
    format_ = format;
    opened_ = true;
    return Status::ok();
  }
  Status write(const Frame& f) override {
    if (!opened_) broken_promise("picture before open");
    if (f.width != format_.width || f.height != format_.height)
      broken_promise("picture " + std::to_string(f.width) + "x" + std::to_string(f.height) +
                     " from a stream opened at " + std::to_string(format_.width) + "x" +
                     std::to_string(format_.height));
    const size_t luma = size_t(f.width) * size_t(f.height);
    const size_t chroma = size_t(f.chroma_width()) * size_t(f.chroma_height());
    if (f.y.size() != luma || f.u.size() != chroma || f.v.size() != chroma)
      broken_promise("picture planes of the wrong size");
    // Read every byte: a plane the pipeline did not fill is uninitialised
    // only in theory (vectors are zeroed), but ASan sees any bad buffer.
    unsigned sum = 0;
    for (int p = 0; p < 3; ++p)
      for (size_t i = 0, n = p ? chroma : luma; i < n; ++i) sum += f.plane(p)[i];
    checksum_ += sum;
    ++pictures_;
    return Status::ok();
  }
  Status finish() override { return Status::ok(); }
  int64_t pictures() const { return pictures_; }

 private:
  SinkFormat format_;
  bool opened_ = false;
  int64_t pictures_ = 0;
  unsigned checksum_ = 0;
};

// Upper bound of one frame's SR multiply-accumulates on `arch`'s costliest
// path: every block of group_x x group_y tiles computed with its halo.
int64_t frame_macs_bound(const ModelArch& arch, int w, int h, int tile) {
  int64_t macs = 0;
  int halo = 2;
  for (size_t p = 0; p < arch.paths.size(); ++p) {
    macs = std::max(macs, arch.macs_per_lr_pixel(int(p)));
    halo = std::max(halo, 2 + 2 * arch.paths[p].depth);
  }
  const RuntimeOptions defaults;
  const int64_t bw = std::min<int64_t>(w, int64_t(defaults.group_x) * tile);
  const int64_t bh = std::min<int64_t>(h, int64_t(defaults.group_y) * tile);
  const int64_t blocks = ((w + bw - 1) / bw) * ((h + bh - 1) / bh);
  return macs * blocks * (bw + 2 * halo) * (bh + 2 * halo);
}

// The models the decode starts with: format 1 every model, format 2 segment
// 0's (one architecture per file; the others are updates or full models of it).
Expected<std::vector<Model>> first_models(DydcaReader& reader) {
  std::vector<Model> models;
  for (int i = 0; i < (reader.format_version() == 1 ? reader.model_count() : 1); ++i) {
    auto m = reader.format_version() == 1 ? reader.model(i) : reader.segment_model(0);
    if (!m) return m.status();
    models.push_back(std::move(*m));
  }
  return models;
}

// The harness's cap: true when decoding `reader` with `models` stays within
// kMaxLrPixels and kMaxSrMacs. Reads the routings the decode would use.
Expected<bool> within_budget(DydcaReader& reader, const std::vector<Model>& models) {
  const EncodedVideo& video = reader.video();
  const int w = video.width, h = video.height;
  if (w < 1 || h < 1 || int64_t(w) * h > kMaxLrPixels) return false;
  const int64_t pictures = std::min(reader.frames(), kMaxPictures);
  int tile = 32;  // the runtime's without routing
  if (reader.format_version() == 1) {
    if (reader.v1_routing()) tile = reader.v1_routing()->tile_size;
  } else {
    // The segments played and the next one, prepared in the background.
    const int last = reader.segment_of_frame(std::max<int64_t>(0, pictures - 1));
    for (int k = 0; k <= last + 1 && k < int(reader.segments().size()); ++k) {
      auto r = reader.segment_routing(k);
      if (!r) return r.status();
      if (*r) tile = std::min(tile, (*r)->tile_size);
    }
  }
  const int64_t segments = std::min<int64_t>(int64_t(reader.segments().size()), pictures + 1);
  int64_t total = 0;
  for (const Model& m : models) {
    const int64_t frame = frame_macs_bound(m.arch, w, h, tile);
    const int64_t warm_up = frame_macs_bound(m.arch, std::min(w, tile), std::min(h, tile), tile);
    total = std::max(total, pictures * frame + segments * warm_up);
  }
  return total <= kMaxSrMacs;
}

}  // namespace

KernelChoice kernels_for_size(size_t size) {
  if (size % 8 == 0)
    return {SimdLevel::kNone, size % 16 == 0 ? Precision::kInt8 : Precision::kAuto};
  return {size % 2 ? SimdLevel::kAvx512 : SimdLevel::kAvx2, Precision::kAuto};
}

void quiet_logs() {
  set_log_callback([](LogLevel, std::string_view) {});
  set_log_level(LogLevel::kError);
  install_ffmpeg_log_bridge();
}

DecoderRun decode_dydca_bytes(const uint8_t* data, size_t size) {
  DecoderRun run;
  auto reader = DydcaReader::open(std::make_unique<MemorySource>(data, size), "fuzz input");
  if (!reader) {
    check_message(reader.status(), "open");
    run.status = reader.status();
    return run;
  }
  // A plain video is decoded from a path only (FFmpeg reopens it).
  if (!reader->has_dydca()) return run;
  run.opened = true;
  auto models = first_models(*reader);
  auto fits = models ? within_budget(*reader, *models) : Expected<bool>(models.status());
  if (!fits) {
    check_message(fits.status(), "reading the models");
    run.status = fits.status();
    return run;
  }
  if (!*fits) {
    run.skipped = true;
    return run;
  }
  // One limits table: the runtime plans every model the container accepts
  // (model.h), so a file that opened never fails for its model at decode.
  for (const Model& m : *models) {
    RuntimeOptions o;
    o.threads = 1;
    o.precision = Precision::kFp32;
    o.max_lr_width = reader->video().width;
    o.max_lr_height = reader->video().height;
    if (auto rt = SrRuntime::create(m, o); !rt)
      broken_promise("the container accepted a model the runtime refuses: " + rt.error_message());
  }
  const int hr_width = reader->hr_width(), hr_height = reader->hr_height();

  DecodeOptions opt;
  opt.threads = 1;
  opt.decode_threads = 1;
  opt.queue_depth = 1;
  opt.max_frames = kMaxPictures;
  opt.policy = std::make_shared<CyclingLevels>();
  const KernelChoice kernels = kernels_for_size(size);
  if (simd_level_supported(kernels.simd)) opt.simd = kernels.simd;
  opt.precision = kernels.precision;
  // The scalar kernels under ASan run ~20x slower than the SIMD ones.
  if (kernels.simd == SimdLevel::kNone) opt.max_frames = kMaxScalarPictures;

  CheckingSink sink;
  auto stats = decode_file(std::move(*reader), "fuzz input", opt, sink);
  run.pictures = sink.pictures();
  if (!stats) {
    check_message(stats.status(), "decode");
    run.status = stats.status();
    return run;
  }
  if (stats->frames != sink.pictures())
    broken_promise("decode_file says " + std::to_string(stats->frames) + " frames, the sink got " +
                   std::to_string(sink.pictures()));
  if (sink.pictures() > opt.max_frames) broken_promise("more pictures than max_frames");
  if (sink.pictures() > 0 && (stats->hr_width != hr_width || stats->hr_height != hr_height))
    broken_promise("pictures are not of the file's HR size");
  return run;
}

}  // namespace dydca::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dydca::fuzz::quiet_logs();
  return 0;
}

// DYDCA_FUZZ_VERBOSE=1 prints what became of each input (replaying a corpus).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool verbose = std::getenv("DYDCA_FUZZ_VERBOSE") != nullptr;
  const dydca::fuzz::DecoderRun run = dydca::fuzz::decode_dydca_bytes(data, size);
  if (verbose)
    std::fprintf(stderr, "fuzz_decoder: %zu bytes: %s, %lld pictures%s%s\n", size,
                 !run.opened ? "not a dydca file" : run.skipped ? "over the work cap" : "decoded",
                 static_cast<long long>(run.pictures), run.status ? "" : ": ",
                 run.status.message().c_str());
  return 0;
}
