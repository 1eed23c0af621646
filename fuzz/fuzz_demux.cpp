// libFuzzer target: the client's open paths, read_dydca_file and the
// streaming DydcaReader (libavformat's Matroska demuxer + our attachment/tag
// validation + every blob parser, format 1 and 2). Both must agree on whether
// a file is valid.
// demux_file takes a path, so each input is written to a per-process file in
// /dev/shm (tmpfs) first.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "dydca/container.h"

namespace {
// A plain char array: it outlives static destructors, so the atexit cleanup can use it.
char scratch[64];
const char* scratch_path() {
  if (!scratch[0])
    std::snprintf(scratch, sizeof scratch, "/dev/shm/dydca-fuzz-demux-%d.mkv", int(getpid()));
  return scratch;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dydca::set_log_callback([](dydca::LogLevel, std::string_view) {});
  dydca::set_log_level(dydca::LogLevel::kError);
  dydca::install_ffmpeg_log_bridge();
  std::atexit([] { std::remove(scratch_path()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FILE* f = std::fopen(scratch_path(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto file = dydca::read_dydca_file(scratch_path());
  if (file && file->has_dydca && file->models.empty())
    std::abort();  // a dydca file always has a model after validation
  auto reader = dydca::DydcaReader::open(scratch_path());
  if (!reader) return 0;
  for (int k = 0; k < int(reader->segments().size()); ++k)
    if (!reader->segment_model(k) || !reader->segment_routing(k))
      std::abort();  // every blob was checked at open
  dydca::EncodedPacket p;
  bool ok = true;
  while (true) {
    auto got = reader->read_packet(p);
    if (!got) ok = false;
    if (!got || !*got) break;
  }
  if (file && !ok) std::abort();  // the batch reader accepted what the stream refuses
  return 0;
}
