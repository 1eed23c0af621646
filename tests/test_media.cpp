// Media library: decode any input, scaling geometry, x264 round trips, Y4M,
// MP4/MKV mux + demux, and bad-input errors.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dydca/atomic_file.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/synthetic.h"
#include "test_util.h"

using namespace dydca;
namespace fs = std::filesystem;

namespace {

Expected<int> half_of(int v) {
  if (v % 2) return Status::error("odd", StatusCode::kInvalidArgument);
  return v / 2;
}
// Two steps through DYDCA_ASSIGN_OR_RETURN, into Expected and into Status.
Expected<int> quarter_of(int v) {
  DYDCA_ASSIGN_OR_RETURN(const int h, half_of(v));
  DYDCA_ASSIGN_OR_RETURN(auto q, half_of(h));
  return q;
}
Status check_quarter(int v, int* out) {
  DYDCA_ASSIGN_OR_RETURN(*out, quarter_of(v));  // an existing object works as decl too
  return Status::ok();
}

bool no_temporary_files(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().string().find(".part") != std::string::npos) return false;
  return true;
}

}  // namespace

TEST_CASE("DYDCA_ASSIGN_OR_RETURN: the value, or the first error returned as it is") {
  auto q = quarter_of(12);
  REQUIRE(q);
  CHECK(*q == 3);
  auto bad = quarter_of(6);  // 6 / 2 = 3 is odd: the second step fails
  REQUIRE_FALSE(bad);
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK(bad.error_message() == "odd");
  int out = -1;
  CHECK(check_quarter(8, &out));
  CHECK(out == 2);
  CHECK_FALSE(check_quarter(7, &out));
  CHECK(out == 2);  // untouched on failure
}

TEST_CASE("atomic files: whole or nothing, no temporary file left") {
  const std::string dir = test::temp_dir("atomic_file");
  const std::string path = dir + "/a.bin";
  REQUIRE(write_file_atomic(path, std::string("first")));
  CHECK(test::read_bytes(path) == std::vector<uint8_t>{'f', 'i', 'r', 's', 't'});
  REQUIRE(write_file_atomic(path, std::vector<uint8_t>{1, 2}));
  CHECK(test::read_bytes(path) == std::vector<uint8_t>{1, 2});
  {  // a writer that fails before commit: the old file stays
    PendingFile f(path);
    CHECK(f.path() == path);
    CHECK(f.temp_path().rfind(dir + "/a.bin.part", 0) == 0);
    std::ofstream(f.temp_path()) << "half";
    CHECK(fs::exists(f.temp_path()));
  }
  CHECK(test::read_bytes(path) == std::vector<uint8_t>{1, 2});
  {  // commit moves the new file in, once
    PendingFile f(path);
    std::ofstream(f.temp_path()) << "new";
    REQUIRE(f.commit());
    CHECK(f.temp_path().empty());
    CHECK_FALSE(f.commit());
  }
  CHECK(test::read_bytes(path) == std::vector<uint8_t>{'n', 'e', 'w'});
  {  // nothing written: commit fails and path keeps its file
    PendingFile f(path);
    CHECK_FALSE(f.commit());
  }
  CHECK(test::read_bytes(path) == std::vector<uint8_t>{'n', 'e', 'w'});
  {  // moved: only the new owner removes the temporary file
    PendingFile a(dir + "/b.bin");
    std::ofstream(a.temp_path()) << "b";
    PendingFile b = std::move(a);
    CHECK(a.temp_path().empty());
    REQUIRE(b.commit());
  }
  CHECK(fs::exists(dir + "/b.bin"));
  // A folder that does not exist: a clear error, nothing created.
  Status s = write_file_atomic(dir + "/missing/c.bin", std::string("x"));
  CHECK_FALSE(s);
  CHECK(s.message().find("missing/c.bin") != std::string::npos);
  CHECK(no_temporary_files(dir));
}

TEST_CASE("synthetic clip is deterministic and has the requested geometry") {
  auto a = synthetic_clip(64, 48, 4, 7);
  auto b = synthetic_clip(64, 48, 4, 7);
  REQUIRE(a.size() == 4);
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].same_pixels(b[i]));
  CHECK(a[0].u.size() == 32 * 24);
  auto odd = synthetic_clip(37, 23, 1);
  CHECK(odd[0].chroma_width() == 19);
  CHECK(odd[0].chroma_height() == 12);
}

TEST_CASE("pad, crop and downscale sizes") {
  Frame f = synthetic_clip(101, 57, 1)[0];
  Frame p = pad_to_multiple(f, 8);
  CHECK(p.width == 104);
  CHECK(p.height == 64);
  // Padding replicates the last column and row.
  CHECK(p.y[size_t(10) * 104 + 103] == f.y[size_t(10) * 101 + 100]);
  CHECK(p.y[size_t(63) * 104 + 5] == f.y[size_t(56) * 101 + 5]);
  Frame c = crop(p, 101, 57);
  CHECK(c.same_pixels(f));
  for (int s : {2, 3, 4}) {
    Frame hr = pad_to_multiple(f, 2 * s);
    auto lr = downscale(hr, s, ScaleFilter::kArea);
    REQUIRE(lr);
    CHECK(lr->width == hr.width / s);
    CHECK(lr->height == hr.height / s);
    CHECK(lr->width % 2 == 0);
    CHECK(lr->height % 2 == 0);
    auto up = resize(*lr, hr.width, hr.height, ScaleFilter::kBicubic);
    REQUIRE(up);
    auto q = compare_frames(hr, *up);
    REQUIRE(q);
    CHECK(q->psnr_y > 12.0);  // a sane reconstruction of a synthetic frame
  }
  CHECK_FALSE(downscale(f, 2));  // 101 is not a multiple of 2
  CHECK_FALSE(downscale(p, 5));
}

TEST_CASE("area downscale of a constant frame is exact") {
  Frame f = Frame::blank(64, 32, 77, 99);
  auto lr = downscale(f, 4, ScaleFilter::kArea);
  REQUIRE(lr);
  for (uint8_t v : lr->y) CHECK(v == 77);
  for (uint8_t v : lr->u) CHECK(v == 99);
}

TEST_CASE("Y4M round trip is bit exact, odd sizes included") {
  std::string dir = test::temp_dir("y4m");
  for (auto [w, h] : {std::pair{64, 48}, std::pair{37, 23}}) {
    auto clip = synthetic_clip(w, h, 5);
    std::string path = dir + "/clip.y4m";
    test::write_y4m(path, clip, {30000, 1001});
    auto r = Y4mReader::open(path);
    REQUIRE(r);
    CHECK(r->width() == w);
    CHECK(r->frame_rate().num == 30000);
    Frame f;
    size_t n = 0;
    while (true) {
      auto got = r->read(f);
      REQUIRE(got);
      if (!*got) break;
      REQUIRE(n < clip.size());
      CHECK(f.same_pixels(clip[n]));
      ++n;
    }
    CHECK(n == clip.size());
    // FFmpeg's reader sees the same pixels.
    auto via_ffmpeg = read_all_frames(path);
    REQUIRE(via_ffmpeg);
    REQUIRE(via_ffmpeg->size() == clip.size());
    CHECK((*via_ffmpeg)[4].same_pixels(clip[4]));
  }
}

TEST_CASE("Y4M reader rejects bad input") {
  std::string dir = test::temp_dir("y4m_bad");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    return dir + "/" + name;
  };
  CHECK_FALSE(Y4mReader::open(write("a.y4m", "hello")));
  CHECK_FALSE(Y4mReader::open(write("b.y4m", "YUV4MPEG2 W0 H10 F25:1\n")));
  CHECK_FALSE(Y4mReader::open(write("c.y4m", "YUV4MPEG2 W99999 H10 F25:1\n")));
  CHECK_FALSE(Y4mReader::open(write("d.y4m", "YUV4MPEG2 W16 H16 F25:1 C444\n")));
  auto r = Y4mReader::open(write("e.y4m", "YUV4MPEG2 W16 H16 F25:1 C420jpeg\nFRAME\nabc"));
  REQUIRE(r);
  Frame f;
  auto got = r->read(f);
  CHECK_FALSE(got);
  CHECK(got.error_message().find("truncated") != std::string::npos);
}

TEST_CASE("x264 CRF encode and decode keep the frame count and quality") {
  auto clip = synthetic_clip(160, 96, 24);
  X264Config cfg;
  cfg.preset = "veryfast";
  cfg.crf = 18;
  cfg.gop = 12;
  auto enc = encode_h264(clip, {24, 1}, cfg);
  REQUIRE(enc);
  CHECK(enc->packets.size() == clip.size());
  CHECK_FALSE(enc->extradata.empty());
  int keys = 0;
  for (const auto& p : enc->packets) keys += p.keyframe;
  CHECK(keys >= 2);  // gop 12 over 24 frames
  auto dec = decode_h264(*enc);
  REQUIRE(dec);
  REQUIRE(dec->size() == clip.size());
  auto q = compare_clips(clip, *dec);
  REQUIRE(q);
  CHECK(q->psnr_y > 38.0);
  // Lower quality costs fewer bits.
  cfg.crf = 35;
  auto low = encode_h264(clip, {24, 1}, cfg);
  REQUIRE(low);
  CHECK(low->total_bytes() < enc->total_bytes());
}

TEST_CASE("x264 two-pass bitrate mode lands near its target") {
  auto clip = synthetic_clip(320, 192, 48);
  X264Config cfg;
  cfg.preset = "veryfast";
  cfg.bitrate_kbps = 400;
  cfg.two_pass = true;
  auto enc = encode_h264(clip, {24, 1}, cfg);
  REQUIRE(enc);
  CHECK(enc->packets.size() == clip.size());
  CHECK(enc->bitrate_kbps() > 400 * 0.6);
  CHECK(enc->bitrate_kbps() < 400 * 1.4);
  // no stats files left behind
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
    CHECK(e.path().filename().string().rfind("dydca-x264-", 0) != 0);
}

TEST_CASE("x264 rejects impossible settings") {
  auto clip = synthetic_clip(64, 48, 2);
  X264Config cfg;
  cfg.two_pass = true;  // without bitrate
  CHECK_FALSE(encode_h264(clip, {25, 1}, cfg));
  cfg = {};
  cfg.preset = "ludicrous";
  CHECK_FALSE(encode_h264(clip, {25, 1}, cfg));
  auto odd = synthetic_clip(37, 23, 2);
  auto r = encode_h264(odd, {25, 1}, X264Config{});
  CHECK_FALSE(r);
  CHECK(r.error_message().find("even") != std::string::npos);
  CHECK_FALSE(encode_h264({}, {25, 1}, X264Config{}));
}

TEST_CASE("MP4 and MKV round trip: identical packets, readable by ffprobe") {
  std::string dir = test::temp_dir("mux");
  auto clip = synthetic_clip(128, 96, 20);
  X264Config cfg;
  cfg.preset = "veryfast";  // B-frames: Matroska drops their decode times
  auto enc = encode_h264(clip, {25, 1}, cfg);
  REQUIRE(enc);
  for (std::string ext : {".mp4", ".mkv"}) {
    std::string path = dir + "/out" + ext;
    MuxOptions opt;
    opt.tags["dydca_test"] = "42";
    if (ext == ".mkv") opt.attachments.push_back({"hello.bin", "application/x-test", {1, 2, 3, 4}});
    REQUIRE(write_video_file(path, *enc, opt));
    auto d = demux_file(path);
    REQUIRE(d);
    REQUIRE(d->video.packets.size() == enc->packets.size());
    // x264 emits Annex B; MP4/MKV store length-prefixed NAL units (avcC), so
    // the first trip converts the framing. The pictures must be identical...
    auto want = decode_h264(*enc);
    auto got = decode_h264(d->video);
    REQUIRE(want);
    REQUIRE(got);
    REQUIRE(got->size() == want->size());
    for (size_t i = 0; i < want->size(); ++i) CHECK((*got)[i].same_pixels((*want)[i]));
    // ...and from then on the packets round-trip byte for byte.
    std::string again = dir + "/again" + ext;
    REQUIRE(write_video_file(again, d->video, opt));
    auto d2 = demux_file(again);
    REQUIRE(d2);
    REQUIRE(d2->video.packets.size() == d->video.packets.size());
    for (size_t i = 0; i < d->video.packets.size(); ++i) {
      CHECK(d2->video.packets[i].data == d->video.packets[i].data);
      CHECK(d2->video.packets[i].pts == d->video.packets[i].pts);
      CHECK(d2->video.packets[i].keyframe == d->video.packets[i].keyframe);
    }
    CHECK(d2->video.extradata == d->video.extradata);
    CHECK(d->video.width == 128);
    if (ext == ".mkv") {
      REQUIRE(d->attachments.size() == 1);
      CHECK(d->attachments[0].filename == "hello.bin");
      CHECK(d->attachments[0].mimetype == "application/x-test");
      CHECK(d->attachments[0].data == std::vector<uint8_t>{1, 2, 3, 4});
    }
    bool tagged = false;
    for (auto& [k, v] : d->tags) tagged |= (v == "42");
    CHECK(tagged);
    std::string out;
    CHECK(test::run("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                    "stream=nb_read_frames -of csv=p=0 '" + path + "'", &out) == 0);
    CHECK(std::stoi(out) == 20);
    auto frames = read_all_frames(path);
    REQUIRE(frames);
    CHECK(frames->size() == clip.size());
  }
  CHECK_FALSE(write_video_file(dir + "/x.avi", *enc));
  MuxOptions att;
  att.attachments.push_back({"a", "b", {1}});
  CHECK_FALSE(write_video_file(dir + "/x.mp4", *enc, att));
  CHECK_FALSE(write_video_file("/nonexistent-dir/x.mkv", *enc));
  CHECK_FALSE(fs::exists("/nonexistent-dir/x.mkv"));
  CHECK(no_temporary_files(dir));
}

TEST_CASE("audio is copied from the input into MKV") {
  std::string dir = test::temp_dir("audio");
  std::string src = dir + "/src.mkv";
  REQUIRE(test::run("ffmpeg -v error -f lavfi -i testsrc2=size=128x96:rate=25 -f lavfi -i "
                    "sine=frequency=440 -t 1 -c:v libx264 -preset ultrafast -c:a libvorbis -y '" +
                    src + "' 2>&1") == 0);
  VideoInfo info;
  auto frames = read_all_frames(src, &info);
  REQUIRE(frames);
  CHECK(info.has_audio);
  X264Config cfg;
  cfg.preset = "ultrafast";
  auto enc = encode_h264(*frames, info.frame_rate, cfg);
  REQUIRE(enc);
  MuxOptions opt;
  opt.copy_audio_from = src;
  REQUIRE(write_video_file(dir + "/out.mkv", *enc, opt));
  auto d = demux_file(dir + "/out.mkv");
  REQUIRE(d);
  CHECK(d->has_audio);
  CHECK(d->audio_bytes > 100);
}

TEST_CASE("decode 4:4:4, 4:2:2, odd-size and 10-bit inputs to 8-bit 4:2:0") {
  std::string dir = test::temp_dir("formats");
  struct Case {
    const char* name;
    const char* args;
    int w, h, frames;
  };
  const Case cases[] = {
      {"a444.mkv", "-s 96x64 -pix_fmt yuv444p -c:v libx264", 96, 64, 10},
      {"a422.mov", "-s 96x64 -pix_fmt yuv422p -c:v mjpeg", 96, 64, 10},
      {"odd.avi", "-s 99x61 -pix_fmt yuv420p -c:v mpeg4", 99, 61, 10},
      {"p10.mkv", "-s 96x64 -pix_fmt yuv420p10le -c:v libx264", 96, 64, 10},
      {"mpg.mpg", "-s 96x64 -pix_fmt yuv420p -c:v mpeg2video", 96, 64, 10},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    std::string path = dir + "/" + c.name;
    REQUIRE(test::run(std::string("ffmpeg -v error -f lavfi -i testsrc2=rate=25 -frames:v ") +
                      std::to_string(c.frames) + " " + c.args + " -y '" + path + "' 2>&1") == 0);
    VideoInfo info;
    auto frames = read_all_frames(path, &info);
    REQUIRE(frames);
    CHECK(frames->size() == size_t(c.frames));
    CHECK((*frames)[0].width == c.w);
    CHECK((*frames)[0].height == c.h);
    CHECK((*frames)[0].u.size() == size_t((c.w + 1) / 2) * ((c.h + 1) / 2));
  }
}

TEST_CASE("variable frame rate input keeps every frame") {
  std::string dir = test::temp_dir("vfr");
  std::string path = dir + "/vfr.mkv";
  // Frames at irregular times: timestamps from a setpts expression.
  REQUIRE(test::run("ffmpeg -v error -f lavfi -i testsrc2=size=64x48:rate=25 -frames:v 30 "
                    "-vf \"setpts='N/25/TB+if(mod(N,3),0,0.013/TB)'\" -fps_mode passthrough "
                    "-c:v libx264 -preset ultrafast -y '" + path + "' 2>&1") == 0);
  auto frames = read_all_frames(path);
  REQUIRE(frames);
  CHECK(frames->size() == 30);
}

TEST_CASE("bad inputs give clear errors") {
  std::string dir = test::temp_dir("bad");
  auto missing = VideoReader::open(dir + "/missing.mp4");
  CHECK_FALSE(missing);
  CHECK(missing.error_message().find("missing.mp4") != std::string::npos);
  std::ofstream(dir + "/text.mp4") << "this is not a video at all, just text\n";
  CHECK_FALSE(VideoReader::open(dir + "/text.mp4"));
  CHECK_FALSE(demux_file(dir + "/text.mp4"));
  // A truncated MKV: whatever decodes is returned, never a crash.
  auto clip = synthetic_clip(128, 96, 30);
  auto enc = encode_h264(clip, {25, 1}, X264Config{});
  REQUIRE(enc);
  REQUIRE(write_video_file(dir + "/full.mkv", *enc));
  auto size = fs::file_size(dir + "/full.mkv");
  fs::copy_file(dir + "/full.mkv", dir + "/cut.mkv");
  fs::resize_file(dir + "/cut.mkv", size / 2);
  auto part = read_all_frames(dir + "/cut.mkv");
  if (part) {
    CHECK(part->size() < clip.size());
  }
  // Audio-only input: no video stream.
  REQUIRE(test::run("ffmpeg -v error -f lavfi -i sine -t 0.5 -y '" + dir + "/a.wav' 2>&1") == 0);
  auto audio = VideoReader::open(dir + "/a.wav");
  CHECK_FALSE(audio);
  CHECK(audio.error_message().find("no video") != std::string::npos);
}

TEST_CASE("real sample: x264 at CRF 18 on the phone clip stays above 40 dB [samples]") {
  std::string path = test::sample("phone1080.mp4");
  if (path.empty()) DYDCA_SKIP("phone1080.mp4 not fetched (samples/fetch.sh)");
  VideoInfo info;
  ReadOptions ro;
  ro.max_frames = 12;
  auto frames = read_all_frames(path, &info, ro);
  REQUIRE(frames);
  CHECK(frames->size() == 12);
  CHECK(info.width == 1920);
  // Half size keeps the test quick.
  std::vector<Frame> lr;
  for (const auto& f : *frames) {
    auto d = downscale(f, 2);
    REQUIRE(d);
    lr.push_back(std::move(*d));
  }
  X264Config cfg;
  cfg.preset = "veryfast";
  cfg.crf = 18;
  auto enc = encode_h264(lr, info.frame_rate, cfg);
  REQUIRE(enc);
  auto dec = decode_h264(*enc);
  REQUIRE(dec);
  REQUIRE(dec->size() == lr.size());
  auto q = compare_clips(lr, *dec);
  REQUIRE(q);
  MESSAGE("phone1080 960x540 CRF18: PSNR-Y " << q->psnr_y << " dB, " << enc->bitrate_kbps()
                                              << " kb/s");
  CHECK(q->psnr_y > 40.0);
  CHECK(q->ssim_y > 0.95);
}
