// The decoder fuzzer's harness (fuzz/fuzz_decoder.cpp) in the normal build:
// every input kept under fuzz/regressions/decoder (each once crashed, hung
// or broke a promise of the decoder; the README there says which) goes
// through it again, and a valid file decodes to pictures through the same
// harness, so that the replay is not vacuous.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "dydca/container.h"
#include "dydca/runtime.h"
#include "dydca/synthetic.h"
#include "fuzz_decoder.h"
#include "test_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;
using namespace dydca;

namespace {

// A 4-frame 32x32 x2 dydca file with routing (2 levels) and a model with
// int8 activation scales, as bytes.
std::vector<uint8_t> valid_file() {
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.gop = 2;
  const std::vector<Frame> clip = synthetic_clip(32, 32, 4);
  auto video = encode_h264(clip, {25, 1}, cfg);
  REQUIRE(video);
  Model model = test::random_model(2, 4, 4, 1, {{0, 0}, {1, 4}}, 1);
  auto act = calibrate_act_scales(model, {LumaView{clip[0].y.data(), 32, 32, 32}});
  REQUIRE(act);
  model.act = *act;
  DydcaPayload payload;
  payload.models.push_back(model);
  RoutingMap r;
  r.tile_size = 16;
  r.lr_width = r.lr_height = 32;
  r.frames = 4;
  r.num_chunks = 2;
  r.chunk_path = {{1, 1}, {1, 0}};
  for (int i = 0; i < r.frames * r.tiles_per_frame(); ++i) r.chunk_ids.push_back(uint8_t(i % 2));
  payload.routing = r;
  DydcaWriteParams params;
  params.hr_width = 63;
  params.hr_height = 64;
  const std::string path = test::temp_dir("fuzz_replay") + "/valid.mkv";
  REQUIRE(write_dydca_file(path, *video, payload, params));
  return test::read_bytes(path);
}

}  // namespace

TEST_CASE("fuzz harness: a valid file decodes to pictures, a truncated one fails cleanly") {
  fuzz::quiet_logs();
  const std::vector<uint8_t> bytes = valid_file();
  REQUIRE(!bytes.empty());
  fuzz::DecoderRun run = fuzz::decode_dydca_bytes(bytes.data(), bytes.size());
  CHECK_MESSAGE(run.status, run.status.message());
  CHECK(run.opened);
  CHECK_FALSE(run.skipped);
  CHECK(run.pictures == 4);
  // The other kernels the harness picks by the input's size, on the same file
  // with zeros after its end.
  const fuzz::KernelChoice choices[] = {{SimdLevel::kNone, Precision::kAuto},
                                        {SimdLevel::kNone, Precision::kInt8},
                                        {SimdLevel::kAvx2, Precision::kAuto},
                                        {SimdLevel::kAvx512, Precision::kAuto}};
  for (const fuzz::KernelChoice& k : choices) {
    size_t padded_size = bytes.size() + 1;
    while (fuzz::kernels_for_size(padded_size).simd != k.simd ||
           fuzz::kernels_for_size(padded_size).precision != k.precision)
      ++padded_size;
    std::vector<uint8_t> padded = bytes;
    padded.resize(padded_size);
    INFO(simd_level_name(k.simd), " ", precision_name(k.precision));
    run = fuzz::decode_dydca_bytes(padded.data(), padded.size());
    CHECK_MESSAGE(run.status, run.status.message());
    CHECK(run.pictures == (k.simd == SimdLevel::kNone ? fuzz::kMaxScalarPictures : 4));
  }
  run = fuzz::decode_dydca_bytes(bytes.data(), bytes.size() * 3 / 4);
  CHECK_FALSE(run.status);
  CHECK(run.pictures < 4);
}

TEST_CASE("fuzz regressions: every input under fuzz/regressions/decoder replays cleanly") {
  LLVMFuzzerInitialize(nullptr, nullptr);
  const fs::path dir = fs::path(DYDCA_SOURCE_DIR) / "fuzz" / "regressions" / "decoder";
  REQUIRE(fs::is_directory(dir));
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() != ".md") inputs.push_back(e.path());
  std::sort(inputs.begin(), inputs.end());
  CHECK(!inputs.empty());
  for (const fs::path& p : inputs) {
    INFO(p.filename().string());
    const std::vector<uint8_t> bytes = test::read_bytes(p.string());
    CHECK(!bytes.empty());
    // A crash or a broken promise aborts the process: ctest reports it.
    CHECK(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()) == 0);
  }
}
