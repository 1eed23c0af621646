// Helpers shared by the test suites: temp dirs, sample clips, running ffmpeg.
#pragma once

#include <string>
#include <vector>

#include "dydca/media.h"
#include "dydca/model.h"
#include "dydca/routing.h"

namespace dydca::test {

// A fresh directory under the build tree, removed at exit of the process.
std::string temp_dir(const std::string& name);
// Path of a fetched sample clip (samples/cache or $DYDCA_SAMPLES_DIR), or ""
// when it has not been fetched (the test then says so and skips).
std::string sample(const std::string& name);
// Marks the running test case as skipped and says why (stderr); the case
// then returns. A binary in which every case that ran was skipped exits with
// 77, which ctest reports as "Not Run" (see test_main.cpp): a case that
// cannot run here says so instead of passing. Use DYDCA_SKIP(why).
void mark_skipped(const std::string& why);
#define DYDCA_SKIP(why)                 \
  do {                                  \
    ::dydca::test::mark_skipped(why);   \
    return;                             \
  } while (0)
// A test case "TITLE [TAG]" that runs CALL, or skips with WHY when COND is
// false (an instruction set this CPU lacks): TAG is a ctest split (SPLIT in
// tests/CMakeLists.txt).
#define DYDCA_CASE_IF(TITLE, TAG, COND, WHY, CALL) \
  TEST_CASE(TITLE " [" TAG "]") {                  \
    if (!(COND)) DYDCA_SKIP(WHY);                  \
    CALL;                                          \
  }
// Runs a shell command, returns its exit code; stdout captured into *out.
int run(const std::string& cmd, std::string* out = nullptr);
// A whole file as bytes ({} when it cannot be read), and bytes to a file.
std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
// Writes frames to a y4m file (for feeding ffmpeg in cross-checks).
void write_y4m(const std::string& path, const std::vector<Frame>& frames, Rational fps = {25, 1});

// A seeded random model (tensors named as in model.h) whose activations stay
// O(1) and whose output stays mostly inside [0, 1], so that 8-bit comparisons
// mean something: the skip is near identity, residual branches and tail small.
Model random_model(int scale, int C, int E, int N, std::vector<PathSpec> paths, uint32_t seed);
// A warm-started update of m: every weight and bias moves by N(0, (rel * sigma)^2), sigma the
// RMS of its tensor. Seeded.
Model perturbed_model(const Model& m, uint32_t seed, float rel);

// A routing map of `frames` frames of lr_w x lr_h in tiles of `tile`: chunk
// ids drawn from a seeded mt19937 (rng() % chunks), chunk_path = table (its
// first row's size is the number of chunks).
RoutingMap random_routing(int tile, int lr_w, int lr_h, int frames,
                          std::vector<std::vector<uint8_t>> table, uint32_t seed);
// The LR frames of synthetic_clip(hr_w, hr_h, frames, seed) as the encoder
// makes them: padded to a multiple of 2*scale, area-downscaled by scale.
std::vector<Frame> synthetic_lr(int hr_w, int hr_h, int frames, int scale, uint32_t seed);

}  // namespace dydca::test
