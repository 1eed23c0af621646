// The streaming side of the dydca file: DydcaReader (client: header and blobs
// at open, LR packets one at a time) and DydcaFileWriter (format 2: segment
// table at open, packets as they come). Over media's PacketReader and
// VideoFileWriter; checks in file_checks.cpp, shared with the batch functions.
#include <algorithm>
#include <memory>
#include <mutex>
#include <string>

#include "dydca/container.h"
#include "file_checks.h"

namespace dydca {

// ---- DydcaReader ----------------------------------------------------------------------

struct DydcaReader::Impl {
  std::string path;
  PacketReader packets;
  int format_version = 0;
  std::string writer_version;
  int hr_width = 0, hr_height = 0, scale = 0;
  int64_t frames = 0;
  ModelArch arch;
  std::vector<DydcaSegment> segments;
  int64_t model_bytes = 0, routing_bytes = 0;
  // Format 1.
  std::vector<Model> v1_models;
  std::optional<RoutingMap> v1_routing;
  // Format 2: the table as stored, and the last reconstructed model.
  std::vector<SegmentRecord> records;
  std::mutex cache_mutex;
  int cached_k = -1;
  Model cached;
  // Packets.
  int64_t packets_read = 0;
  bool ended = false;

  explicit Impl(PacketReader&& p) : packets(std::move(p)) {}
  // Past the demuxer's open, an unclassified failure is damage in the file.
  Status fail(const Status& s) const {
    return s.with_context(path).or_code(StatusCode::kInvalidData);
  }
};

DydcaReader::DydcaReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DydcaReader::DydcaReader(DydcaReader&&) noexcept = default;
DydcaReader& DydcaReader::operator=(DydcaReader&&) noexcept = default;
DydcaReader::~DydcaReader() = default;

namespace {

// Passes a caller's bytes on, keeping the first four (the Matroska magic).
class MagicRecorder final : public ByteSource {
 public:
  MagicRecorder(std::unique_ptr<ByteSource> inner, std::shared_ptr<std::string> magic)
      : inner_(std::move(inner)), magic_(std::move(magic)) {}
  int read(uint8_t* buf, int size) override {
    const int n = inner_->read(buf, size);
    if (n > 0 && pos_ == magic_->size() && magic_->size() < 4)
      magic_->append(reinterpret_cast<const char*>(buf),
                     size_t(std::min<int64_t>(n, int64_t(4 - magic_->size()))));
    pos_ = n > 0 ? pos_ + size_t(n) : pos_;
    return n;
  }
  int64_t seek(int64_t offset, int whence) override {
    const int64_t r = inner_->seek(offset, whence);
    if (r >= 0 && whence != kSeekSize) pos_ = size_t(r);
    return r;
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  std::shared_ptr<std::string> magic_;
  size_t pos_ = 0;
};

}  // namespace

Expected<DydcaReader> DydcaReader::open(const std::string& path) {
  auto packets = PacketReader::open(path);
  const bool ebml = !packets && detail::starts_with_ebml_magic(path);
  return open_packets(std::move(packets), path, ebml);
}

Expected<DydcaReader> DydcaReader::open(std::unique_ptr<ByteSource> source,
                                        const std::string& name) {
  if (!source) return Status::error(name + ": no byte source", StatusCode::kInvalidArgument);
  auto magic = std::make_shared<std::string>();
  auto packets =
      PacketReader::open(std::make_unique<MagicRecorder>(std::move(source), magic), name);
  const bool ebml = *magic == "\x1a\x45\xdf\xa3";
  return open_packets(std::move(packets), name, ebml);
}

Expected<DydcaReader> DydcaReader::open_packets(Expected<PacketReader> packets,
                                                const std::string& path, bool starts_with_ebml) {
  if (!packets) {
    // libavformat's message for a cut Matroska header is a bare "Input/output
    // error"; say what it most likely means.
    if (starts_with_ebml)
      return Status::error(packets.error_message() + " (damaged or truncated Matroska file)",
                           StatusCode::kInvalidData);
    return packets.status();
  }
  auto impl = std::make_unique<Impl>(std::move(*packets));
  impl->path = path;
  const DemuxHeader& h = impl->packets.header();
  auto header = detail::read_file_header(h.tags, h.attachments, h.video.codec);
  if (!header) return impl->fail(header.status());
  impl->format_version = header->format_version;
  if (impl->format_version == 0) return DydcaReader(std::move(impl));  // plain video
  impl->writer_version = header->writer_version;
  impl->hr_width = header->hr_width;
  impl->hr_height = header->hr_height;
  impl->scale = header->scale;
  impl->frames = header->frames;

  if (impl->format_version == 1) {
    auto blobs = detail::load_v1_blobs(*header, h.video);
    if (!blobs) return impl->fail(blobs.status());
    for (const auto& b : blobs->model_blobs) impl->model_bytes += int64_t(b.size());
    impl->routing_bytes = int64_t(blobs->routing_blob.size());
    impl->v1_models = std::move(blobs->models);
    impl->v1_routing = std::move(blobs->routing);
    impl->arch = impl->v1_models[0].arch;
    impl->segments.push_back(
        {0, header->frames, false, impl->model_bytes, impl->routing_bytes});
    return DydcaReader(std::move(impl));
  }

  auto records = parse_segments(header->segments->data);
  if (!records) return impl->fail(records.status().with_context(kSegmentsFilename));
  impl->records = std::move(*records);
  auto first = detail::check_segments(impl->records, h.video, impl->hr_width, impl->hr_height,
                                      impl->scale, impl->frames);
  if (!first) return impl->fail(first.status().with_context(kSegmentsFilename));
  impl->arch = first->arch;
  impl->cached = std::move(*first);
  impl->cached_k = 0;
  for (const SegmentRecord& r : impl->records) {
    impl->segments.push_back({r.first_frame, r.frames, r.model_is_delta, int64_t(r.model.size()),
                              int64_t(r.routing.size())});
    impl->model_bytes += int64_t(r.model.size());
    impl->routing_bytes += int64_t(r.routing.size());
  }
  return DydcaReader(std::move(impl));
}

int DydcaReader::format_version() const { return impl_->format_version; }
bool DydcaReader::has_dydca() const { return impl_->format_version > 0; }
const std::string& DydcaReader::format() const { return impl_->packets.header().format; }
const EncodedVideo& DydcaReader::video() const { return impl_->packets.header().video; }
const std::map<std::string, std::string>& DydcaReader::tags() const {
  return impl_->packets.header().tags;
}
bool DydcaReader::has_audio() const { return impl_->packets.header().has_audio; }
double DydcaReader::duration_s() const { return impl_->packets.header().duration_s; }
std::string DydcaReader::writer_version() const { return impl_->writer_version; }
int DydcaReader::hr_width() const { return impl_->hr_width; }
int DydcaReader::hr_height() const { return impl_->hr_height; }
int DydcaReader::scale() const { return impl_->scale; }
int64_t DydcaReader::frames() const { return impl_->frames; }
const ModelArch& DydcaReader::arch() const { return impl_->arch; }
const std::vector<DydcaSegment>& DydcaReader::segments() const { return impl_->segments; }
int64_t DydcaReader::model_bytes() const { return impl_->model_bytes; }
int64_t DydcaReader::routing_bytes() const { return impl_->routing_bytes; }
int64_t DydcaReader::packets_read() const { return impl_->packets_read; }
int64_t DydcaReader::audio_bytes_read() const { return impl_->packets.audio_bytes_read(); }

int DydcaReader::segment_of_frame(int64_t frame) const {
  const auto& s = impl_->segments;
  if (frame < 0 || frame >= impl_->frames || s.empty()) return -1;
  auto it = std::upper_bound(s.begin(), s.end(), frame, [](int64_t f, const DydcaSegment& seg) {
    return f < seg.first_frame;
  });
  return int(it - s.begin()) - 1;
}

Expected<Model> DydcaReader::segment_model(int k) {
  Impl& d = *impl_;
  if (k < 0 || size_t(k) >= d.segments.size())
    return Status::error("segment " + std::to_string(k) + " does not exist (the file has " +
                         std::to_string(d.segments.size()) + ")");
  if (d.format_version == 1) return d.v1_models[0];
  std::lock_guard<std::mutex> lock(d.cache_mutex);
  if (d.cached_k == k) return d.cached;
  // Start from the nearest full model at or before k, or from the cache
  // when it lies between that model and k.
  int start = k;
  while (d.records[size_t(start)].model_is_delta) --start;  // segment 0 is full
  if (d.cached_k >= start && d.cached_k < k) start = d.cached_k + 1;
  for (int j = start; j <= k; ++j) {
    auto m = detail::segment_model_from(d.records, size_t(j), d.cached_k == j - 1 ? &d.cached : nullptr);
    if (!m) {
      d.cached_k = -1;
      return d.fail(m.status());
    }
    d.cached = std::move(*m);
    d.cached_k = j;
  }
  return d.cached;
}

Expected<std::optional<RoutingMap>> DydcaReader::segment_routing(int k) {
  const Impl& d = *impl_;
  if (k < 0 || size_t(k) >= d.segments.size())
    return Status::error("segment " + std::to_string(k) + " does not exist (the file has " +
                         std::to_string(d.segments.size()) + ")");
  if (d.format_version == 1) return d.v1_routing;
  const SegmentRecord& r = d.records[size_t(k)];
  if (r.routing.empty()) return std::optional<RoutingMap>{};
  auto routing = parse_routing(r.routing);
  if (!routing)
    return d.fail(routing.status().with_context(detail::segment_name(d.records, size_t(k))));
  return std::optional<RoutingMap>(std::move(*routing));
}

int DydcaReader::model_count() const {
  if (impl_->format_version == 1) return int(impl_->v1_models.size());
  return impl_->format_version == 2 ? 1 : 0;
}

Expected<Model> DydcaReader::model(int i) const {
  const Impl& d = *impl_;
  if (i < 0 || i >= model_count())
    return Status::error("model " + std::to_string(i) + " does not exist (the file has " +
                         std::to_string(model_count()) + ")");
  if (d.format_version == 1) return d.v1_models[size_t(i)];
  return parse_model(d.records[0].model);  // validated at open
}

const std::optional<RoutingMap>& DydcaReader::v1_routing() const { return impl_->v1_routing; }

Expected<bool> DydcaReader::read_packet(EncodedPacket& out) {
  Impl& d = *impl_;
  if (d.ended) return false;
  auto got = d.packets.read(out);
  if (!got) return d.fail(got.status());
  if (*got) {
    ++d.packets_read;
    if (d.format_version > 0 && d.packets_read > d.frames)
      return d.fail(Status::error("the video has more than " + std::to_string(d.frames) +
                                  " frames (damaged file)"));
    return true;
  }
  d.ended = true;
  if (d.format_version > 0 && d.packets_read != d.frames)
    return d.fail(Status::error("the video has " + std::to_string(d.packets_read) + " of " +
                                std::to_string(d.frames) + " frames (truncated or damaged file)"));
  return false;
}

// ---- DydcaFileWriter --------------------------------------------------------------------

struct DydcaFileWriter::Impl {
  std::string path;
  VideoFileWriter file;
  std::vector<int> starts;  // first frame of every segment
  int64_t total = 0;
  int64_t written = 0;
  size_t next_segment = 0;
  bool finished = false;

  explicit Impl(VideoFileWriter&& f) : file(std::move(f)) {}
  Status fail(const Status& s) const { return s.with_context("cannot write " + path); }
};

DydcaFileWriter::DydcaFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DydcaFileWriter::DydcaFileWriter(DydcaFileWriter&&) noexcept = default;
DydcaFileWriter& DydcaFileWriter::operator=(DydcaFileWriter&&) noexcept = default;
DydcaFileWriter::~DydcaFileWriter() {
  if (impl_ && !impl_->finished) impl_->file.abort();
}

Expected<DydcaFileWriter> DydcaFileWriter::open(const std::string& path,
                                                const EncodedVideo& video_params,
                                                const std::vector<SegmentRecord>& segments,
                                                const DydcaV2WriteParams& params) {
  auto fail = [&](const Status& s) { return s.with_context("cannot write " + path); };
  DYDCA_TRY(fail(validate_segment_table(segments)));
  auto first = detail::segment_model_from(segments, 0, nullptr);
  if (!first) return fail(first.status());
  const int scale = first->arch.scale;
  const int64_t total = int64_t(segments.back().first_frame) + segments.back().frames;
  if (video_params.codec != "h264")
    return fail(Status::error("the video is " + video_params.codec + ", dydca needs h264"));
  DYDCA_TRY(fail(detail::check_segments(segments, video_params, params.hr_width, params.hr_height,
                                        scale, total)
                     .status()));
  auto table = serialize_segments(segments);
  if (!table) return fail(table.status());
  auto file = VideoFileWriter::open(
      path, video_params,
      detail::v2_mux_options(*table, params.hr_width, params.hr_height, scale, total, params));
  if (!file) return fail(file.status());
  auto impl = std::make_unique<Impl>(std::move(*file));
  impl->path = path;
  impl->total = total;
  for (const SegmentRecord& s : segments) impl->starts.push_back(s.first_frame);
  return DydcaFileWriter(std::move(impl));
}

Status DydcaFileWriter::write_packet(const EncodedPacket& packet) {
  Impl& d = *impl_;
  if (d.finished) return d.fail(Status::error("the file is already finished"));
  if (d.written >= d.total)
    return d.fail(Status::error("more packets than the segments' " + std::to_string(d.total) +
                                " frames"));
  if (d.next_segment < d.starts.size() && d.written == d.starts[d.next_segment]) {
    if (!packet.keyframe)
      return d.fail(Status::error("segment " + std::to_string(d.next_segment) + " (frame " +
                                  std::to_string(d.written) + ") does not start on a keyframe"));
    ++d.next_segment;
  }
  DYDCA_TRY(d.fail(d.file.write(packet)));
  ++d.written;
  return Status::ok();
}

Status DydcaFileWriter::finish() {
  Impl& d = *impl_;
  if (d.finished) return Status::ok();
  if (d.written != d.total) {
    d.file.abort();
    return d.fail(Status::error(std::to_string(d.written) + " packets for segments of " +
                                std::to_string(d.total) + " frames"));
  }
  DYDCA_TRY(d.fail(d.file.finish()));
  d.finished = true;
  return Status::ok();
}

void DydcaFileWriter::abort() {
  if (impl_ && !impl_->finished) impl_->file.abort();
}

int64_t DydcaFileWriter::packets_written() const { return impl_->written; }

}  // namespace dydca
