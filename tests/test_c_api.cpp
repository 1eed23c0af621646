// The C API (dydca/dydca.h): error codes (missing, corrupt and truncated
// files, NULL arguments, bad settings), pictures equal to decode_file's
// (same md5), nonblocking AGAIN, set_level while decoding, close at any
// point, open_io from memory; 1.1: the settings taken from the reserved
// bytes, statistics (whole run and per picture, versioned by struct_size),
// late reports reaching the QoS controller, its trace, the log callback.
// Fixtures: the small files test_decoder writes (`test_decoder
// -tc="fixture*"`, as tests/test_decode_cli.sh does).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dydca/decoder.h"
#include "dydca/dydca.h"
#include "dydca/synthetic.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace dydca;

namespace {

struct Fixtures {
  std::string v1, v2, plain;  // v1: 10 frames, 3 levels, HR 102x70; v2: 30 frames, segments
};

const Fixtures& fixtures() {
  static const Fixtures f = [] {
    Fixtures x;
    const std::string dir = test::temp_dir("c_api");
    x.v1 = dir + "/a.mkv";
    x.v2 = dir + "/v2.mkv";
    const std::string cmd = "DYDCA_DECODER_FIXTURE='" + x.v1 + "' DYDCA_DECODER_FIXTURE_V2='" +
                            x.v2 + "' '" DYDCA_TEST_DECODER "' -tc='fixture*' >/dev/null 2>&1";
    REQUIRE(test::run(cmd) == 0);
    REQUIRE(fs::file_size(x.v1) > 0);
    REQUIRE(fs::file_size(x.v2) > 0);
    // A plain H.264 video (no dydca data): bicubic fallback.
    auto v = encode_h264(synthetic_clip(64, 48, 5, 2), Rational{25, 1}, X264Config{});
    REQUIRE(v);
    x.plain = dir + "/plain.mkv";
    REQUIRE(write_video_file(x.plain, *v));
    return x;
  }();
  return f;
}

DydcaSettings defaults() {
  DydcaSettings s;
  dydca_default_settings(&s);
  s.level = 0;
  s.threads = 2;
  return s;
}

// md5 of decode_file's output (the CLI's --muxer md5).
std::string reference_md5(const std::string& path, int level = 0) {
  DecodeOptions opt;
  opt.muxer = Muxer::kMd5;
  opt.level = level;
  opt.threads = 2;
  auto stats = decode_file(path, opt);
  REQUIRE(stats);
  return stats->md5;
}

struct Decoded {
  int end = DYDCA_OK;  // the code that ended the loop
  int64_t frames = 0;
  std::string md5;
  std::vector<int> levels;
};

// Every picture of an open context, hashed as the md5 muxer hashes frames.
Decoded drain(DydcaContext* ctx) {
  Decoded d;
  FrameMd5 md5;  // the md5 muxer's own hash
  DydcaPicture pic;
  while ((d.end = dydca_get_picture(ctx, &pic)) == DYDCA_OK) {
    CHECK(pic.frame == d.frames);
    CHECK(pic.ref != nullptr);
    Frame f = Frame::blank(pic.width, pic.height);
    for (int p = 0; p < 3; ++p)
      for (int y = 0; y < f.plane_height(p); ++y)
        std::memcpy(f.plane(p) + size_t(y) * f.plane_width(p),
                    pic.planes[p] + ptrdiff_t(y) * pic.stride[p], size_t(f.plane_width(p)));
    md5.add(f);
    d.levels.push_back(pic.level);
    ++d.frames;
    dydca_picture_unref(&pic);
    CHECK(pic.ref == nullptr);
  }
  d.md5 = md5.hex();
  return d;
}

// A memory-backed DydcaIO.
struct Memory {
  std::vector<uint8_t> bytes;
  int64_t pos = 0;
  static int read(void* o, uint8_t* buf, int size) {
    auto* m = static_cast<Memory*>(o);
    const int64_t n = std::min<int64_t>(size, int64_t(m->bytes.size()) - m->pos);
    if (n <= 0) return 0;
    std::memcpy(buf, m->bytes.data() + m->pos, size_t(n));
    m->pos += n;
    return int(n);
  }
  static int64_t seek(void* o, int64_t offset, int whence) {
    auto* m = static_cast<Memory*>(o);
    const int64_t size = int64_t(m->bytes.size());
    if (whence == DYDCA_SEEK_SIZE) return size;
    const int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : size;
    if (base + offset < 0) return -1;
    return m->pos = base + offset;
  }
};

}  // namespace

TEST_CASE("c api: version, error strings, default settings") {
  CHECK(std::string(dydca_version()).size() > 0);
  CHECK((dydca_api_version() >> 16) == DYDCA_API_VERSION_MAJOR);
  const int codes[] = {DYDCA_OK,           DYDCA_ERR_AGAIN, DYDCA_ERR_EOS,
                       DYDCA_ERR_INVALID_DATA, DYDCA_ERR_UNSUPPORTED, DYDCA_ERR_NOMEM,
                       DYDCA_ERR_CANCELLED, DYDCA_ERR_IO,  DYDCA_ERR_INVALID_ARG,
                       DYDCA_ERR_FAILED};
  for (size_t i = 0; i < std::size(codes); ++i) {
    if (i > 0) CHECK(codes[i] < 0);
    for (size_t j = 0; j < i; ++j) {
      CHECK(codes[i] != codes[j]);
      CHECK(std::string(dydca_error_string(codes[i])) != dydca_error_string(codes[j]));
    }
  }
  CHECK(std::string(dydca_error_string(-1000)) == "unknown error code");
  DydcaSettings s;
  std::memset(&s, 0xab, sizeof s);
  dydca_default_settings(&s);
  CHECK(s.struct_size == sizeof s);
  CHECK(s.level == -1);
  CHECK(s.threads == 0);
  CHECK(s.queue_depth == 3);
  CHECK(s.nonblocking == 0);
  CHECK((s.log_callback == nullptr));
  CHECK(s.target_fps == 0);
  CHECK(s.simd == DYDCA_SIMD_AUTO);
  CHECK(s.caller_reports_late == 0);
  for (uint8_t b : s.reserved) CHECK(b == 0);
  dydca_default_settings(nullptr);  // no crash
}

TEST_CASE("c api: NULL arguments and bad settings are INVALID_ARG") {
  const Fixtures& fx = fixtures();
  DydcaSettings s = defaults();
  DydcaContext* ctx = reinterpret_cast<DydcaContext*>(&s);  // must be reset to NULL
  CHECK(dydca_open(nullptr, fx.v1.c_str(), &s) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_open(&ctx, nullptr, &s) == DYDCA_ERR_INVALID_ARG);
  CHECK(ctx == nullptr);
  CHECK(std::string(dydca_last_error(nullptr)).size() > 0);
  CHECK(dydca_open(&ctx, fx.v1.c_str(), nullptr) == DYDCA_ERR_INVALID_ARG);
  CHECK(ctx == nullptr);
  CHECK(dydca_open_io(&ctx, nullptr, &s) == DYDCA_ERR_INVALID_ARG);
  DydcaIO no_read{};
  CHECK(dydca_open_io(&ctx, &no_read, &s) == DYDCA_ERR_INVALID_ARG);

  auto bad = [&](auto change) {
    DydcaSettings b = defaults();
    change(b);
    DydcaContext* c = nullptr;
    const int err = dydca_open(&c, fx.v1.c_str(), &b);
    CHECK(c == nullptr);
    CHECK(std::string(dydca_last_error(nullptr)).find("settings") != std::string::npos);
    return err;
  };
  CHECK(bad([](DydcaSettings& b) { b.struct_size = 0; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.struct_size = sizeof b + 8; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.level = -2; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.threads = -1; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.queue_depth = 0; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.queue_depth = 65; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.max_frames = -1; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.precision = 7; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.log_level = 4; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.simd = 4; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.target_fps = -1; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.target_fps = 0.0 / 0.0; }) == DYDCA_ERR_INVALID_ARG);
  CHECK(bad([](DydcaSettings& b) { b.struct_size = offsetof(DydcaSettings, target_fps) - 1; }) ==
        DYDCA_ERR_INVALID_ARG);

  // A level the file does not have: the file's message.
  s.level = 3;
  CHECK(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_ERR_INVALID_ARG);
  CHECK(ctx == nullptr);
  CHECK(std::string(dydca_last_error(nullptr)).find("3 levels") != std::string::npos);

  DydcaPicture pic;
  DydcaInfo info;
  CHECK(dydca_get_picture(nullptr, &pic) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_get_info(nullptr, &info) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_set_level(nullptr, 0) == DYDCA_ERR_INVALID_ARG);
  CHECK(std::string(dydca_last_error(nullptr)).size() > 0);
  dydca_picture_unref(nullptr);
  DydcaPicture empty{};
  dydca_picture_unref(&empty);
  dydca_close(nullptr);
  DydcaContext* null_ctx = nullptr;
  dydca_close(&null_ctx);
}

TEST_CASE("c api: missing, corrupt and truncated files") {
  const Fixtures& fx = fixtures();
  const std::string dir = test::temp_dir("c_api_bad");
  DydcaSettings s = defaults();
  DydcaContext* ctx = nullptr;

  const std::string missing = dir + "/missing.mkv";
  CHECK(dydca_open(&ctx, missing.c_str(), &s) == DYDCA_ERR_IO);
  CHECK(ctx == nullptr);
  CHECK(std::string(dydca_last_error(nullptr)).find("missing.mkv") != std::string::npos);

  const std::string garbage = dir + "/garbage.mkv";
  test::write_bytes(garbage, std::vector<uint8_t>(5000, 0x5a));
  CHECK(dydca_open(&ctx, garbage.c_str(), &s) == DYDCA_ERR_INVALID_DATA);
  CHECK(ctx == nullptr);

  // The header cut: libavformat fails on a Matroska file.
  const std::vector<uint8_t> bytes = test::read_bytes(fx.v1);
  const std::string cut = dir + "/cut.mkv";
  test::write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 3000));
  CHECK(dydca_open(&ctx, cut.c_str(), &s) == DYDCA_ERR_INVALID_DATA);
  CHECK(ctx == nullptr);

  // A damaged blob (every byte of the model attachment's payload flipped
  // somewhere in the first part of the file): the CRC check refuses it.
  {
    std::vector<uint8_t> b = bytes;
    const std::string magic = "DYDCAMDL";
    auto it = std::search(b.begin(), b.end(), magic.begin(), magic.end());
    REQUIRE(it != b.end());
    const size_t at = size_t(it - b.begin()) + 64;
    REQUIRE(at < b.size());
    b[at] ^= 0xff;
    const std::string flipped = dir + "/flipped.mkv";
    test::write_bytes(flipped, b);
    CHECK(dydca_open(&ctx, flipped.c_str(), &s) == DYDCA_ERR_INVALID_DATA);
    CHECK(ctx == nullptr);
    CHECK(std::string(dydca_last_error(nullptr)).find("flipped.mkv") != std::string::npos);
  }

  // The end of the video cut: the pictures before the damage, then INVALID_DATA.
  const std::string tail = dir + "/tail.mkv";
  test::write_bytes(tail, std::vector<uint8_t>(bytes.begin(), bytes.end() - bytes.size() / 5));
  int err = dydca_open(&ctx, tail.c_str(), &s);
  if (err == DYDCA_OK) {
    Decoded d = drain(ctx);
    CHECK(d.end == DYDCA_ERR_INVALID_DATA);
    CHECK(d.frames < 10);
    CHECK(std::string(dydca_last_error(ctx)).find("frames") != std::string::npos);
    // Sticky: the same code again.
    DydcaPicture pic;
    CHECK(dydca_get_picture(ctx, &pic) == DYDCA_ERR_INVALID_DATA);
    dydca_close(&ctx);
  } else {
    CHECK(err == DYDCA_ERR_INVALID_DATA);
  }

  // int8 asked of a model without int8 scales.
  s.precision = DYDCA_PRECISION_INT8;
  CHECK(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_ERR_UNSUPPORTED);
  CHECK(ctx == nullptr);
}

TEST_CASE("c api: pictures equal decode_file's (md5), info, max_frames") {
  const Fixtures& fx = fixtures();
  for (const std::string& path : {fx.v1, fx.v2}) {
    CAPTURE(path);
    DydcaSettings s = defaults();
    DydcaContext* ctx = nullptr;
    REQUIRE(dydca_open(&ctx, path.c_str(), &s) == DYDCA_OK);
    DydcaInfo info;
    REQUIRE(dydca_get_info(ctx, &info) == DYDCA_OK);
    CHECK(info.width == 102);
    CHECK(info.height == 70);
    CHECK(info.scale == 2);
    CHECK(info.lr_width * 2 >= info.width);
    CHECK(info.fps_num == 25);
    CHECK(info.fps_den == 1);
    CHECK(info.levels >= 2);
    CHECK(info.auto_level == 1);
    const Decoded d = drain(ctx);
    CHECK(d.end == DYDCA_ERR_EOS);
    CHECK(d.frames == info.frames);
    CHECK(d.md5 == reference_md5(path));
    for (int l : d.levels) CHECK(l == 0);
    DydcaPicture pic;
    CHECK(dydca_get_picture(ctx, &pic) == DYDCA_ERR_EOS);  // again
    CHECK(pic.ref == nullptr);
    CHECK(std::string(dydca_last_error(ctx)).empty());
    if (path == fx.v1) {
      CHECK(info.format_version == 1);
      CHECK(info.frames == 10);
      CHECK(info.levels == 3);
    } else {
      CHECK(info.format_version == 2);
      CHECK(info.frames == 30);
      CHECK(info.segments > 1);
    }
    dydca_close(&ctx);
    CHECK(ctx == nullptr);
  }
  // A fixed level other than 0 equals the CLI's --level.
  DydcaSettings s = defaults();
  s.level = 2;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_OK);
  const Decoded d2 = drain(ctx);
  dydca_close(&ctx);
  CHECK(d2.md5 == reference_md5(fx.v1, 2));
  for (int l : d2.levels) CHECK(l == 2);
  // max_frames.
  s.level = 0;
  s.max_frames = 3;
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  DydcaInfo info;
  REQUIRE(dydca_get_info(ctx, &info) == DYDCA_OK);
  CHECK(info.frames == 3);
  const Decoded d3 = drain(ctx);
  CHECK(d3.end == DYDCA_ERR_EOS);
  CHECK(d3.frames == 3);
  dydca_close(&ctx);
}

TEST_CASE("c api: nonblocking returns AGAIN, then every picture") {
  const Fixtures& fx = fixtures();
  DydcaSettings s = defaults();
  s.nonblocking = 1;
  s.queue_depth = 1;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  int64_t frames = 0, again = 0;
  int err;
  DydcaPicture pic;
  const auto t0 = std::chrono::steady_clock::now();
  while ((err = dydca_get_picture(ctx, &pic)) != DYDCA_ERR_EOS) {
    REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120));
    if (err == DYDCA_ERR_AGAIN) {
      CHECK(pic.ref == nullptr);
      ++again;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    REQUIRE(err == DYDCA_OK);
    CHECK(pic.frame == frames);
    ++frames;
    dydca_picture_unref(&pic);
  }
  CHECK(frames == 30);
  CHECK(again > 0);  // the caller polls faster than a frame is upscaled
  dydca_close(&ctx);
}

TEST_CASE("c api: set_level while decoding, auto, and its errors") {
  const Fixtures& fx = fixtures();
  DydcaSettings s = defaults();
  s.queue_depth = 1;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  CHECK(dydca_set_level(ctx, 3) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_set_level(ctx, -2) == DYDCA_ERR_INVALID_ARG);
  DydcaPicture pic;
  std::vector<int> levels;
  int err;
  while ((err = dydca_get_picture(ctx, &pic)) == DYDCA_OK) {
    levels.push_back(pic.level);
    dydca_picture_unref(&pic);
    if (levels.size() == 5) CHECK(dydca_set_level(ctx, 2) == DYDCA_OK);
    if (levels.size() == 20) CHECK(dydca_set_level(ctx, -1) == DYDCA_OK);
  }
  CHECK(err == DYDCA_ERR_EOS);
  REQUIRE(levels.size() == 30);
  // Pictures already in flight keep their level: with queue depth 1 at most
  // 2 * 1 + 3 frames are past the policy when the level changes.
  for (size_t i = 0; i < 5; ++i) CHECK(levels[i] == 0);
  for (size_t i = 5 + 5; i < 20; ++i) CHECK(levels[i] == 2);
  bool seen2 = false;
  for (size_t i = 5; i < 20; ++i) {
    CHECK((levels[i] == 0 || levels[i] == 2));
    if (seen2) CHECK(levels[i] == 2);  // once switched, it stays
    seen2 = seen2 || levels[i] == 2;
  }
  for (size_t i = 20; i < 30; ++i) CHECK((levels[i] >= 0 && levels[i] <= 2));
  dydca_close(&ctx);

  // Auto from the start: the QoS controller, calibrated at open.
  s.level = -1;
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_OK);
  const Decoded d = drain(ctx);
  CHECK(d.end == DYDCA_ERR_EOS);
  CHECK(d.frames == 10);
  for (int l : d.levels) CHECK((l >= 0 && l <= 2));
  dydca_close(&ctx);
}

TEST_CASE("c api: plain videos from a path, not from io; the log callback") {
  const Fixtures& fx = fixtures();
  struct Log {
    std::vector<std::string> lines;
    static void cb(void* o, int level, const char* msg) {
      if (level <= DYDCA_LOG_WARNING) static_cast<Log*>(o)->lines.push_back(msg);
    }
  } log;
  DydcaSettings s = defaults();
  s.log_callback = &Log::cb;
  s.log_opaque = &log;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.plain.c_str(), &s) == DYDCA_OK);
  DydcaInfo info;
  REQUIRE(dydca_get_info(ctx, &info) == DYDCA_OK);
  CHECK(info.format_version == 0);
  CHECK(info.width == 128);
  CHECK(info.height == 96);
  CHECK(info.levels == 1);
  CHECK(info.auto_level == 0);
  CHECK(dydca_set_level(ctx, -1) == DYDCA_ERR_UNSUPPORTED);
  const Decoded d = drain(ctx);
  CHECK(d.end == DYDCA_ERR_EOS);
  CHECK(d.frames == 5);
  dydca_close(&ctx);
  bool warned = false;
  for (const auto& l : log.lines) warned = warned || l.find("no dydca model") != std::string::npos;
  CHECK(warned);

  Memory mem{test::read_bytes(fx.plain)};
  DydcaIO io{&mem, &Memory::read, &Memory::seek};
  DydcaSettings q = defaults();
  CHECK(dydca_open_io(&ctx, &io, &q) == DYDCA_ERR_UNSUPPORTED);
  CHECK(ctx == nullptr);
}

TEST_CASE("c api: close at any point; pictures outlive the context") {
  const Fixtures& fx = fixtures();
  DydcaSettings s = defaults();
  s.queue_depth = 1;
  DydcaContext* ctx = nullptr;
  // Right after open (the pipeline blocks on the full queue).
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  dydca_close(&ctx);
  CHECK(ctx == nullptr);
  // Mid-stream, holding a picture.
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  DydcaPicture held, pic;
  REQUIRE(dydca_get_picture(ctx, &held) == DYDCA_OK);
  REQUIRE(dydca_get_picture(ctx, &pic) == DYDCA_OK);
  dydca_picture_unref(&pic);
  std::vector<uint8_t> copy(held.planes[0], held.planes[0] + size_t(held.width) * held.height);
  dydca_close(&ctx);
  CHECK(std::memcmp(copy.data(), held.planes[0], copy.size()) == 0);  // still valid
  dydca_picture_unref(&held);
  // At the end, after EOS.
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_OK);
  CHECK(drain(ctx).end == DYDCA_ERR_EOS);
  dydca_close(&ctx);
  // Nonblocking, before anything was asked.
  s.nonblocking = 1;
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_OK);
  dydca_close(&ctx);
}

TEST_CASE("c api: open_io from memory gives open(path)'s pictures") {
  const Fixtures& fx = fixtures();
  for (const std::string& path : {fx.v1, fx.v2}) {
    CAPTURE(path);
    DydcaSettings s = defaults();
    DydcaContext* ctx = nullptr;
    REQUIRE(dydca_open(&ctx, path.c_str(), &s) == DYDCA_OK);
    const Decoded want = drain(ctx);
    dydca_close(&ctx);
    REQUIRE(want.end == DYDCA_ERR_EOS);

    for (bool seekable : {true, false}) {
      CAPTURE(seekable);
      Memory mem{test::read_bytes(path)};
      DydcaIO io{&mem, &Memory::read, seekable ? &Memory::seek : nullptr};
      REQUIRE(dydca_open_io(&ctx, &io, &s) == DYDCA_OK);
      DydcaInfo info;
      REQUIRE(dydca_get_info(ctx, &info) == DYDCA_OK);
      CHECK(info.width == 102);
      const Decoded got = drain(ctx);
      dydca_close(&ctx);
      CHECK(got.end == DYDCA_ERR_EOS);
      CHECK(got.frames == want.frames);
      CHECK(got.md5 == want.md5);
    }
  }
  // A damaged input through io: the same code as from a path.
  Memory junk{std::vector<uint8_t>(4000, 0x5a)};
  DydcaIO io{&junk, &Memory::read, &Memory::seek};
  DydcaSettings s = defaults();
  DydcaContext* ctx = nullptr;
  CHECK(dydca_open_io(&ctx, &io, &s) == DYDCA_ERR_INVALID_DATA);
  CHECK(std::string(dydca_last_error(nullptr)).find("custom input") != std::string::npos);
  // A read callback that fails.
  struct Failing {
    static int read(void*, uint8_t*, int) { return -1; }
  };
  DydcaIO bad{nullptr, &Failing::read, nullptr};
  const int err = dydca_open_io(&ctx, &bad, &s);
  CHECK((err == DYDCA_ERR_IO || err == DYDCA_ERR_INVALID_DATA));
  CHECK(ctx == nullptr);
}

// ---- 1.1 ---------------------------------------------------------------------------

namespace {

// Rows of a QoS trace CSV: column name -> values.
std::vector<std::vector<std::string>> read_csv(const std::string& path,
                                               std::vector<std::string>* header) {
  std::ifstream f(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  bool first = true;
  while (std::getline(f, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (first) {
      *header = cells;
      first = false;
    } else {
      rows.push_back(cells);
    }
  }
  return rows;
}

size_t column(const std::vector<std::string>& header, const std::string& name) {
  auto it = std::find(header.begin(), header.end(), name);
  REQUIRE(it != header.end());
  return size_t(it - header.begin());
}

}  // namespace

TEST_CASE("c api 1.1: a 1.0 settings struct still opens; simd reaches the runtime") {
  const Fixtures& fx = fixtures();
  // A caller built against 1.0 passes the size up to the old reserved bytes
  // (here: garbage after it must not be read).
  DydcaSettings s = defaults();
  s.struct_size = offsetof(DydcaSettings, target_fps);
  std::memset(reinterpret_cast<char*>(&s) + s.struct_size, 0x7f, sizeof s - s.struct_size);
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_OK);
  CHECK(drain(ctx).md5 == reference_md5(fx.v1));
  dydca_close(&ctx);

  DydcaSettings n = defaults();
  n.simd = DYDCA_SIMD_NONE;
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &n) == DYDCA_OK);
  CHECK(drain(ctx).end == DYDCA_ERR_EOS);
  DydcaStats st{};
  st.struct_size = sizeof st;
  REQUIRE(dydca_get_stats(ctx, &st) == DYDCA_OK);
  CHECK(st.complete == 1);
  CHECK(st.simd == DYDCA_SIMD_NONE);
  CHECK(st.precision == DYDCA_PRECISION_FP32);  // simd none keeps fp32
  dydca_close(&ctx);
}

TEST_CASE("c api 1.1: statistics of the run and of each picture") {
  const Fixtures& fx = fixtures();
  DydcaSettings s = defaults();
  s.queue_depth = 1;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  DydcaInfo info;
  REQUIRE(dydca_get_info(ctx, &info) == DYDCA_OK);
  // Before the end (30 frames cannot fit a queue of 1 nobody reads): the
  // set-up only.
  DydcaStats st{};
  st.struct_size = sizeof st;
  REQUIRE(dydca_get_stats(ctx, &st) == DYDCA_OK);
  CHECK(st.struct_size == sizeof st);
  CHECK(st.complete == 0);
  CHECK(st.frames == 0);
  CHECK(st.has_audio == 0);
  CHECK(st.auto_level == 0);  // level 0: the controller exists but does not choose

  DydcaPicture pic;
  int64_t frames = 0, switches = 0;
  std::vector<int64_t> switch_frames;
  double sr_ms = 0;
  while (dydca_get_picture(ctx, &pic) == DYDCA_OK) {
    DydcaPictureStats ps{};
    ps.struct_size = sizeof ps;
    REQUIRE(dydca_get_picture_stats(&pic, &ps) == DYDCA_OK);
    CHECK(ps.sr_ms > 0);
    CHECK(ps.decode_ms >= 0);
    CHECK((ps.segment_switch == 0 || ps.segment_switch == 1));
    if (ps.segment_switch) switch_frames.push_back(pic.frame);
    switches += ps.segment_switch;
    sr_ms += ps.sr_ms;
    ++frames;
    dydca_picture_unref(&pic);
    CHECK(dydca_get_picture_stats(&pic, &ps) == DYDCA_ERR_INVALID_ARG);  // unreferenced
  }
  REQUIRE(dydca_get_stats(ctx, &st) == DYDCA_OK);
  CHECK(st.complete == 1);
  CHECK(st.frames == frames);
  CHECK(st.frames == 30);
  int64_t per_level = 0;
  for (int64_t n : st.level_frames) per_level += n;
  CHECK(per_level == 30);
  CHECK(st.level_frames[0] == 30);
  CHECK(st.threads == 2);
  CHECK(st.simd != DYDCA_SIMD_AUTO);
  CHECK(st.sr_ms == doctest::Approx(sr_ms / 30).epsilon(1e-6));
  // Segments: every switch is the first picture of a segment after the first.
  CHECK(info.segments > 1);
  CHECK(switches == info.segments - 1);
  CHECK(st.segment_switches == switches);
  CHECK(switch_frames.front() > 0);
  CHECK(st.max_runtimes_alive >= 1);
  CHECK(st.max_runtimes_alive <= 2);
  CHECK(st.runtime_bytes > 0);

  // Versioning by struct_size: an older, shorter struct gets its part only;
  // a newer, longer one gets zeros past this library's; nonsense sizes fail.
  struct Longer {
    DydcaStats s;
    uint64_t more[4];
  } longer;
  std::memset(&longer, 0xab, sizeof longer);
  longer.s.struct_size = sizeof longer;
  REQUIRE(dydca_get_stats(ctx, &longer.s) == DYDCA_OK);
  CHECK(longer.s.struct_size == sizeof longer);  // the caller's, kept
  CHECK(longer.s.frames == 30);
  for (uint64_t m : longer.more) CHECK(m == 0);
  DydcaStats shorter;
  std::memset(&shorter, 0xab, sizeof shorter);
  shorter.struct_size = offsetof(DydcaStats, complete);
  REQUIRE(dydca_get_stats(ctx, &shorter) == DYDCA_OK);
  CHECK(shorter.has_audio == 0);
  CHECK(shorter.complete == int(0xabababab));  // not written
  DydcaStats tiny{};
  tiny.struct_size = 4;
  CHECK(dydca_get_stats(ctx, &tiny) == DYDCA_ERR_INVALID_ARG);
  tiny.struct_size = 1 << 20;
  CHECK(dydca_get_stats(ctx, &tiny) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_get_stats(ctx, nullptr) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_get_stats(nullptr, &st) == DYDCA_ERR_INVALID_ARG);
  DydcaPictureStats ps{};
  ps.struct_size = sizeof ps;
  CHECK(dydca_get_picture_stats(nullptr, &ps) == DYDCA_ERR_INVALID_ARG);
  dydca_close(&ctx);

  // Auto from the start: the calibration is part of open.
  s.level = -1;
  REQUIRE(dydca_open(&ctx, fx.v1.c_str(), &s) == DYDCA_OK);
  REQUIRE(dydca_get_stats(ctx, &st) == DYDCA_OK);
  CHECK(st.auto_level == 1);
  CHECK(st.calibration_ms > 0);
  dydca_close(&ctx);
}

TEST_CASE("c api 1.1: late reports reach the QoS controller; its trace; target_fps") {
  const Fixtures& fx = fixtures();
  const std::string dir = test::temp_dir("c_api_qos");
  DydcaSettings s = defaults();
  s.level = -1;
  s.queue_depth = 1;
  s.caller_reports_late = 1;
  s.target_fps = 10;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.v2.c_str(), &s) == DYDCA_OK);
  CHECK(dydca_report_late(nullptr, 0) == DYDCA_ERR_INVALID_ARG);
  CHECK(dydca_report_late(ctx, -1) == DYDCA_ERR_INVALID_ARG);
  // A player that shows every picture late: the pipeline waits for it, so
  // each level choice sees one new report (two late frames in a row step down).
  DydcaPicture pic;
  std::vector<int> levels;
  while (dydca_get_picture(ctx, &pic) == DYDCA_OK) {
    levels.push_back(pic.level);
    const int64_t frame = pic.frame;
    dydca_picture_unref(&pic);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(dydca_report_late(ctx, frame) == DYDCA_OK);
  }
  REQUIRE(levels.size() == 30);
  CHECK(*std::max_element(levels.begin(), levels.end()) > 0);  // it stepped down
  const std::string trace = dir + "/trace.csv";
  REQUIRE(dydca_write_qos_trace(ctx, trace.c_str()) == DYDCA_OK);
  std::vector<std::string> header;
  const auto rows = read_csv(trace, &header);
  CHECK(rows.size() == 30);  // one per frame, the last one reported at the end
  const size_t late = column(header, "late"), budget = column(header, "budget_ms");
  int64_t late_rows = 0;
  for (const auto& r : rows) {
    REQUIRE(r.size() == header.size());
    late_rows += r[late] == "1";
    CHECK(std::stod(r[budget]) > 50);  // 1000 / 10 fps minus the overhead (40 at 25 fps)
  }
  CHECK(late_rows > 10);
  CHECK(dydca_write_qos_trace(ctx, (dir + "/no/such/dir/t.csv").c_str()) == DYDCA_ERR_IO);
  CHECK(std::string(dydca_last_error(ctx)).find("t.csv") != std::string::npos);
  CHECK(dydca_write_qos_trace(ctx, nullptr) == DYDCA_ERR_INVALID_ARG);
  dydca_close(&ctx);

  // A plain video has no controller: nothing to trace; reports are ignored.
  DydcaSettings p = defaults();
  REQUIRE(dydca_open(&ctx, fx.plain.c_str(), &p) == DYDCA_OK);
  CHECK(dydca_report_late(ctx, 0) == DYDCA_OK);
  CHECK(dydca_write_qos_trace(ctx, trace.c_str()) == DYDCA_ERR_UNSUPPORTED);
  dydca_close(&ctx);
}

TEST_CASE("c api 1.1: the log callback gets the library's messages, each once") {
  const Fixtures& fx = fixtures();
  struct Log {
    std::vector<std::pair<int, std::string>> lines;
    static void cb(void* o, int level, const char* msg) {
      static_cast<Log*>(o)->lines.emplace_back(level, msg);
    }
    int64_t count(const std::string& what) const {
      return std::count_if(lines.begin(), lines.end(),
                           [&](const auto& l) { return l.second.find(what) != std::string::npos; });
    }
  } log;
  DydcaSettings s = defaults();
  s.level = -1;  // auto on a plain video: one warning (decode_file decides auto, nobody else)
  s.log_callback = &Log::cb;
  s.log_opaque = &log;
  s.log_level = DYDCA_LOG_WARNING;
  DydcaContext* ctx = nullptr;
  REQUIRE(dydca_open(&ctx, fx.plain.c_str(), &s) == DYDCA_OK);
  CHECK(drain(ctx).end == DYDCA_ERR_EOS);
  dydca_close(&ctx);
  CHECK(log.count("level auto needs a single-model dydca file") == 1);
  CHECK(log.count("no dydca model") == 1);
  for (const auto& [level, line] : log.lines) {
    CHECK(level >= DYDCA_LOG_ERROR);
    CHECK(level <= DYDCA_LOG_WARNING);  // up to log_level only
    CHECK(!line.empty());
  }
}

TEST_CASE("status codes: kept through context, or_code classifies only unclassified failures") {
  const Status io = Status::error("cannot open x", StatusCode::kIo);
  CHECK(io.code() == StatusCode::kIo);
  CHECK(io.with_context("a").code() == StatusCode::kIo);
  CHECK(io.with_context("a").message() == "a: cannot open x");
  CHECK(io.or_code(StatusCode::kInvalidData).code() == StatusCode::kIo);
  const Status plain = Status::error("something");
  CHECK(plain.code() == StatusCode::kFailed);
  CHECK(plain.or_code(StatusCode::kInvalidData).code() == StatusCode::kInvalidData);
  CHECK(Status::ok().or_code(StatusCode::kIo).is_ok());
  CHECK(Status::error("x", StatusCode::kOk).code() == StatusCode::kFailed);  // never ok
  CHECK(Status::cancelled().is_cancelled());
  CHECK(Status::cancelled().message() == "cancelled");
  Expected<int> e = Status::error("bad", StatusCode::kUnsupported);
  CHECK(e.status().code() == StatusCode::kUnsupported);
}
