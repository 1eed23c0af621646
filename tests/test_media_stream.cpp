// test_media_stream: the streaming demuxer (PacketReader), the streaming muxer
// (VideoFileWriter) and VideoEncoder::take_packets: same packets as the batch
// calls, nothing left behind on abort, bounded look-ahead, interleaved audio.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "dydca/media.h"
#include "dydca/synthetic.h"
#include "test_util.h"

using namespace dydca;
namespace fs = std::filesystem;

namespace {

EncodedVideo encode(int frames, const std::string& preset = "veryfast", int w = 64, int h = 48) {
  X264Config cfg;
  cfg.preset = preset;  // veryfast has B-frames: Matroska then loses their decode times
  cfg.gop = 50;
  auto enc = encode_h264(synthetic_clip(w, h, frames, 3), {25, 1}, cfg);
  REQUIRE(enc);
  return std::move(*enc);
}

std::vector<EncodedPacket> read_all(PacketReader& r) {
  std::vector<EncodedPacket> out;
  EncodedPacket p;
  while (true) {
    auto got = r.read(p);
    REQUIRE(got);
    if (!*got) break;
    out.push_back(std::move(p));
  }
  return out;
}

void check_same_packets(const std::vector<EncodedPacket>& a, const std::vector<EncodedPacket>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].data == b[i].data);
    CHECK(a[i].pts == b[i].pts);
    CHECK(a[i].dts == b[i].dts);
    CHECK(a[i].duration == b[i].duration);
    CHECK(a[i].keyframe == b[i].keyframe);
  }
}

// dir/stem.ext
std::string file_in(const std::string& dir, const std::string& stem, const std::string& ext) {
  std::string s = dir;
  s += '/';
  s += stem;
  s += ext;
  return s;
}

bool same_time(int64_t a, Rational a_tb, int64_t b, Rational b_tb) {
  return a * a_tb.num * b_tb.den == b * b_tb.num * a_tb.den;
}

bool leftovers(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().string().find(".part") != std::string::npos) return true;
  return false;
}

// Decode times are usable for muxing: monotonic and never after presentation.
void check_dts_sane(const std::vector<EncodedPacket>& pk) {
  for (size_t i = 0; i < pk.size(); ++i) {
    CHECK(pk[i].dts <= pk[i].pts);
    if (i) CHECK(pk[i].dts > pk[i - 1].dts);
  }
}

}  // namespace

TEST_CASE("PacketReader gives the same header and packets as demux_file (mkv, mp4)") {
  std::string dir = test::temp_dir("stream_demux");
  EncodedVideo enc = encode(40);
  for (std::string ext : {".mkv", ".mp4"}) {
    CAPTURE(ext);
    std::string path = file_in(dir, "a", ext);
    MuxOptions opt;
    opt.tags.emplace("dydca_stream", "7");
    if (ext == ".mkv") opt.attachments.push_back({"x.bin", "application/x-test", {9, 8, 7}});
    REQUIRE(write_video_file(path, enc, opt));
    auto d = demux_file(path);
    REQUIRE(d);
    auto r = PacketReader::open(path);
    REQUIRE(r);
    const DemuxHeader& h = r->header();
    CHECK(h.format == d->format);
    CHECK(h.video.packets.empty());
    CHECK(h.video.codec == "h264");
    CHECK(h.video.width == 64);
    CHECK(h.video.height == 48);
    CHECK(h.video.extradata == d->video.extradata);
    CHECK(h.video.time_base.num == d->video.time_base.num);
    CHECK(h.video.time_base.den == d->video.time_base.den);
    CHECK(h.video.frame_rate.num == d->video.frame_rate.num);
    CHECK(h.tags == d->tags);
    CHECK(h.tags.count("dydca_stream") + h.tags.count("DYDCA_STREAM") == 1);
    CHECK(h.has_audio == false);
    CHECK(h.duration_s == doctest::Approx(d->duration_s));
    REQUIRE(h.attachments.size() == d->attachments.size());
    if (ext == ".mkv") {
      REQUIRE(h.attachments.size() == 1);
      CHECK(h.attachments[0].data == std::vector<uint8_t>{9, 8, 7});
    }
    auto pk = read_all(*r);
    check_same_packets(pk, d->video.packets);
    CHECK(pk.size() == enc.packets.size());
    check_dts_sane(pk);
    // Reading past the end keeps saying "end".
    EncodedPacket p;
    auto again = r->read(p);
    REQUIRE(again);
    CHECK_FALSE(*again);
  }
}

TEST_CASE(
    "PacketReader rebuilds Matroska decode times past its look-ahead as the whole file would") {
  // A few hundred packets, far more than the look-ahead window: read one at a
  // time and dropped, the reader holds a bounded window (it cannot hold them
  // all), and its rebuilt dts equal demux_file's former whole-file rebuild.
  std::string dir = test::temp_dir("stream_long");
  EncodedVideo enc = encode(300);
  std::string path = dir + "/long.mkv";
  REQUIRE(write_video_file(path, enc));
  auto r = PacketReader::open(path);
  REQUIRE(r);
  std::vector<int64_t> pts, dts;
  std::vector<size_t> sizes;
  EncodedPacket p;
  while (true) {
    auto got = r->read(p);
    REQUIRE(got);
    if (!*got) break;
    pts.push_back(p.pts);
    dts.push_back(p.dts);
    sizes.push_back(p.data.size());
  }
  REQUIRE(pts.size() == 300);
  for (size_t i = 0; i < sizes.size(); ++i) CHECK(sizes[i] > 0);
  // The whole-file reference: dts[i] = i-th smallest pts - D, smallest D >= 0.
  std::vector<int64_t> sorted = pts;
  std::sort(sorted.begin(), sorted.end());
  int64_t shift = 0;
  for (size_t i = 0; i < pts.size(); ++i) shift = std::max(shift, sorted[i] - pts[i]);
  for (size_t i = 0; i < pts.size(); ++i) CHECK(dts[i] == sorted[i] - shift);
  // The MP4 of the same stream keeps x264's decode times: same spacing.
  REQUIRE(write_video_file(dir + "/long.mp4", enc));
  auto m = demux_file(dir + "/long.mp4");
  REQUIRE(m);
  REQUIRE(m->video.packets.size() == 300);
  check_dts_sane(m->video.packets);
}

TEST_CASE("VideoFileWriter round trip: packet by packet, same bytes and timestamps") {
  std::string dir = test::temp_dir("stream_write");
  // Demuxed packets are already length-prefixed (avcC), so they round-trip
  // byte for byte from here on.
  EncodedVideo enc = encode(30);
  REQUIRE(write_video_file(dir + "/src.mkv", enc));
  auto src = demux_file(dir + "/src.mkv");
  REQUIRE(src);
  for (std::string ext : {".mkv", ".mp4"}) {
    CAPTURE(ext);
    std::string path = file_in(dir, "out", ext);
    MuxOptions opt;
    opt.tags.emplace("k", "v");
    if (ext == ".mkv") opt.attachments.push_back({"a.bin", "application/x-test", {1, 2}});
    auto w = VideoFileWriter::open(path, src->video, opt);
    REQUIRE(w);
    CHECK_FALSE(fs::exists(path));  // only the temporary file exists until finish
    CHECK(leftovers(dir));
    for (const EncodedPacket& p : src->video.packets) REQUIRE(w->write(p));
    CHECK(w->packets_written() == int64_t(src->video.packets.size()));
    REQUIRE(w->finish());
    CHECK(w->finish());  // idempotent
    CHECK_FALSE(w->write(src->video.packets[0]));
    CHECK(fs::exists(path));
    CHECK_FALSE(leftovers(dir));
    auto d = demux_file(path);
    REQUIRE(d);
    REQUIRE(d->video.packets.size() == src->video.packets.size());
    for (size_t i = 0; i < d->video.packets.size(); ++i) {
      CHECK(d->video.packets[i].data == src->video.packets[i].data);
      // MP4 picks its own time base (1/16000 here): compare times, exactly.
      CHECK(same_time(d->video.packets[i].pts, d->video.time_base, src->video.packets[i].pts,
                      src->video.time_base));
      CHECK(d->video.packets[i].keyframe == src->video.packets[i].keyframe);
    }
    CHECK(d->video.extradata == src->video.extradata);
    if (ext == ".mkv") {
      REQUIRE(d->attachments.size() == 1);
      CHECK(d->attachments[0].data == std::vector<uint8_t>{1, 2});
    }
    // Pictures identical to the source's.
    auto want = decode_h264(src->video);
    auto got = decode_h264(d->video);
    REQUIRE(want);
    REQUIRE(got);
    REQUIRE(got->size() == want->size());
    for (size_t i = 0; i < want->size(); ++i) CHECK((*got)[i].same_pixels((*want)[i]));
  }
  // Moving a writer moves the file with it.
  auto w = VideoFileWriter::open(dir + "/moved.mkv", src->video);
  REQUIRE(w);
  VideoFileWriter moved = std::move(*w);
  for (const EncodedPacket& p : src->video.packets) REQUIRE(moved.write(p));
  REQUIRE(moved.finish());
  CHECK(fs::exists(dir + "/moved.mkv"));
}

TEST_CASE("VideoFileWriter leaves nothing behind on abort, destruction or failure") {
  std::string dir = test::temp_dir("stream_abort");
  EncodedVideo enc = encode(10, "ultrafast");
  SUBCASE("abort") {
    auto w = VideoFileWriter::open(dir + "/a.mkv", enc);
    REQUIRE(w);
    for (int i = 0; i < 5; ++i) REQUIRE(w->write(enc.packets[size_t(i)]));
    w->abort();
    w->abort();  // twice is fine
    CHECK_FALSE(w->write(enc.packets[5]));
    CHECK_FALSE(w->finish());
  }
  SUBCASE("destroyed without finish") {
    auto w = VideoFileWriter::open(dir + "/b.mp4", enc);
    REQUIRE(w);
    for (int i = 0; i < 5; ++i) REQUIRE(w->write(enc.packets[size_t(i)]));
  }
  SUBCASE("overwritten by a move") {
    auto w1 = VideoFileWriter::open(dir + "/c1.mkv", enc);
    auto w2 = VideoFileWriter::open(dir + "/c2.mkv", enc);
    REQUIRE(w1);
    REQUIRE(w2);
    REQUIRE(w1->write(enc.packets[0]));
    *w1 = std::move(*w2);  // c1's temporary file goes with its old state
    w1->abort();
  }
  SUBCASE("finish without packets") {
    auto w = VideoFileWriter::open(dir + "/d.mkv", enc);
    REQUIRE(w);
    auto s = w->finish();
    CHECK_FALSE(s);
    CHECK(s.message().find("no video packets") != std::string::npos);
  }
  SUBCASE("bad arguments") {
    CHECK_FALSE(VideoFileWriter::open(dir + "/e.avi", enc));
    MuxOptions att;
    att.attachments.push_back({"a", "b", {1}});
    CHECK_FALSE(VideoFileWriter::open(dir + "/e.mp4", enc, att));
    MuxOptions missing_audio;
    missing_audio.copy_audio_from = dir + "/no-such-file.mkv";
    CHECK_FALSE(VideoFileWriter::open(dir + "/e.mkv", enc, missing_audio));
    EncodedVideo bad = enc;
    bad.width = 0;
    CHECK_FALSE(VideoFileWriter::open(dir + "/e.mkv", bad));
    CHECK_FALSE(VideoFileWriter::open("/nonexistent-dir/e.mkv", enc));
  }
  CHECK(fs::is_empty(dir));
}

TEST_CASE("truncated files give fewer packets or a clear error, never a crash") {
  std::string dir = test::temp_dir("stream_trunc");
  EncodedVideo enc = encode(60);
  for (std::string ext : {".mkv", ".mp4"}) {
    CAPTURE(ext);
    std::string full = file_in(dir, "full", ext);
    REQUIRE(write_video_file(full, enc));
    const auto size = fs::file_size(full);
    std::vector<char> bytes(size);
    std::ifstream(full, std::ios::binary).read(bytes.data(), std::streamsize(size));
    for (double frac : {0.02, 0.3, 0.6, 0.95}) {
      CAPTURE(frac);
      std::string cut = file_in(dir, "cut", ext);
      std::ofstream(cut, std::ios::binary | std::ios::trunc)
          .write(bytes.data(), std::streamsize(double(size) * frac));
      auto r = PacketReader::open(cut);
      if (!r) {
        CHECK_FALSE(r.error_message().empty());
        CHECK(r.error_message().find(cut) != std::string::npos);
        continue;
      }
      auto pk = read_all(*r);
      CHECK(pk.size() < enc.packets.size());
      auto d = demux_file(cut);
      REQUIRE(d);
      CHECK(d->video.packets.size() == pk.size());
    }
  }
}

TEST_CASE("VideoFileWriter interleaves copied audio as the video advances") {
  std::string dir = test::temp_dir("stream_audio");
  for (auto [ext, acodec] : {std::pair<std::string, std::string>{".mkv", "libvorbis"},
                             std::pair<std::string, std::string>{".mp4", "aac"}}) {
    CAPTURE(ext);
    std::string src = file_in(dir, "src", ext);
    REQUIRE(test::run("ffmpeg -v error -f lavfi -i testsrc2=size=64x48:rate=25 -f lavfi -i "
                      "sine=frequency=440 -t 6 -c:v libx264 -preset ultrafast -c:a " +
                      acodec + " -y '" + src + "' 2>&1") == 0);
    auto in = demux_file(src);
    REQUIRE(in);
    REQUIRE(in->has_audio);
    REQUIRE(in->video.packets.size() == 150);
    std::string out = file_in(dir, "out", ext);
    MuxOptions opt;
    opt.copy_audio_from = src;
    auto w = VideoFileWriter::open(out, in->video, opt);
    REQUIRE(w);
    for (const EncodedPacket& p : in->video.packets) REQUIRE(w->write(p));
    REQUIRE(w->finish());
    auto d = demux_file(out);
    REQUIRE(d);
    CHECK(d->has_audio);
    CHECK(d->audio_bytes == in->audio_bytes);
    check_same_packets(d->video.packets, in->video.packets);
    // Interleaved: after the first packet (the reader has looked ahead by its
    // window, about a fifth of the clip), some audio has gone by, not all of it.
    auto r = PacketReader::open(out);
    REQUIRE(r);
    EncodedPacket p;
    auto got = r->read(p);
    REQUIRE(got);
    REQUIRE(*got);
    CHECK(r->audio_bytes_read() > 0);
    CHECK(r->audio_bytes_read() < in->audio_bytes / 2);
    read_all(*r);
    CHECK(r->audio_bytes_read() == in->audio_bytes);
  }
}

TEST_CASE("VideoEncoder::take_packets hands every packet out once, in decode order") {
  auto clip = synthetic_clip(64, 48, 25, 5);
  X264Config cfg;
  cfg.preset = "veryfast";
  auto enc = VideoEncoder::open(64, 48, {25, 1}, cfg);
  REQUIRE(enc);
  CHECK_FALSE(enc->output().extradata.empty());  // a writer can open before any packet
  std::vector<EncodedPacket> all;
  size_t most_held = 0;
  for (const Frame& f : clip) {
    REQUIRE(enc->encode(f));
    most_held = std::max(most_held, enc->output().packets.size());
    for (auto& p : enc->take_packets()) all.push_back(std::move(p));
    CHECK(enc->output().packets.empty());
  }
  REQUIRE(enc->finish());
  for (auto& p : enc->take_packets()) all.push_back(std::move(p));
  CHECK(all.size() == clip.size());
  CHECK(most_held < clip.size());
  for (size_t i = 1; i < all.size(); ++i) CHECK(all[i].dts > all[i - 1].dts);
  EncodedVideo v = enc->output();
  v.packets = std::move(all);
  auto frames = decode_h264(v);
  REQUIRE(frames);
  CHECK(frames->size() == clip.size());
}
