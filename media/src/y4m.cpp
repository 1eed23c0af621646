#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "av_ptr.h"
#include "dydca/media.h"

namespace dydca {

// ---- md5 of frames -------------------------------------------------------------

struct FrameMd5::Impl {
  av::Md5Ptr md5{av_md5_alloc()};
};

FrameMd5::FrameMd5() : impl_(std::make_unique<Impl>()) {
  if (impl_->md5) av_md5_init(impl_->md5.get());
}
FrameMd5::FrameMd5(FrameMd5&&) noexcept = default;
FrameMd5& FrameMd5::operator=(FrameMd5&&) noexcept = default;
FrameMd5::~FrameMd5() = default;

void FrameMd5::add(const Frame& f) {
  if (!impl_ || !impl_->md5) return;
  av_md5_update(impl_->md5.get(), f.y.data(), f.y.size());
  av_md5_update(impl_->md5.get(), f.u.data(), f.u.size());
  av_md5_update(impl_->md5.get(), f.v.data(), f.v.size());
}

std::string FrameMd5::hex() {
  if (!impl_ || !impl_->md5) return {};
  uint8_t digest[16];
  av_md5_final(impl_->md5.get(), digest);
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : digest) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

// ---- writer --------------------------------------------------------------------

struct Y4mWriter::Impl {
  std::string path;
  FILE* file = nullptr;
  bool owns = false;
  int width = 0, height = 0;
  ~Impl() {
    if (owns && file) std::fclose(file);
  }
};

Y4mWriter::Y4mWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Y4mWriter::Y4mWriter(Y4mWriter&&) noexcept = default;
Y4mWriter& Y4mWriter::operator=(Y4mWriter&&) noexcept = default;
Y4mWriter::~Y4mWriter() = default;

Expected<Y4mWriter> Y4mWriter::open(const std::string& path, int width, int height,
                                    Rational frame_rate) {
  if (width <= 0 || height <= 0 || width > kMaxDimension || height > kMaxDimension)
    return Status::error("y4m: bad frame size");
  if (!frame_rate.valid()) return Status::error("y4m: bad frame rate");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->width = width;
  impl->height = height;
  if (path == "-") {
    impl->file = stdout;
  } else {
    impl->file = std::fopen(path.c_str(), "wb");
    if (!impl->file) return Status::error("cannot write " + path + ": " + std::strerror(errno));
    impl->owns = true;
  }
  std::fprintf(impl->file, "YUV4MPEG2 W%d H%d F%d:%d Ip A1:1 C420jpeg\n", width, height,
               frame_rate.num, frame_rate.den);
  if (std::ferror(impl->file)) return Status::error("write error on " + path);
  return Y4mWriter(std::move(impl));
}

Status Y4mWriter::write(const Frame& f) {
  Impl& m = *impl_;
  if (!m.file) return Status::error("y4m: writer is closed");
  if (f.width != m.width || f.height != m.height) return Status::error("y4m: frame size changed");
  std::fputs("FRAME\n", m.file);
  std::fwrite(f.y.data(), 1, f.y.size(), m.file);
  std::fwrite(f.u.data(), 1, f.u.size(), m.file);
  std::fwrite(f.v.data(), 1, f.v.size(), m.file);
  if (std::ferror(m.file))
    return Status::error("write error on " + (m.path == "-" ? std::string("stdout") : m.path) +
                         ": " + std::strerror(errno));
  return Status::ok();
}

Status Y4mWriter::close() {
  Impl& m = *impl_;
  if (!m.file) return Status::ok();
  int err = m.owns ? std::fclose(m.file) : std::fflush(m.file);
  m.file = nullptr;
  if (err != 0) return Status::error("write error on " + m.path + ": " + std::strerror(errno));
  return Status::ok();
}

// ---- reader --------------------------------------------------------------------

struct Y4mReader::Impl {
  std::string path;
  FILE* file = nullptr;
  bool owns = false;
  int width = 0, height = 0;
  Rational rate{25, 1};
  int64_t index = 0;
  ~Impl() {
    if (owns && file) std::fclose(file);
  }
};

Y4mReader::Y4mReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Y4mReader::Y4mReader(Y4mReader&&) noexcept = default;
Y4mReader& Y4mReader::operator=(Y4mReader&&) noexcept = default;
Y4mReader::~Y4mReader() = default;
int Y4mReader::width() const { return impl_->width; }
int Y4mReader::height() const { return impl_->height; }
Rational Y4mReader::frame_rate() const { return impl_->rate; }

namespace {
// Reads one '\n'-terminated line of at most `cap` bytes.
bool read_line(FILE* f, std::string& line, size_t cap) {
  line.clear();
  int c;
  while ((c = std::fgetc(f)) != EOF) {
    if (c == '\n') return true;
    if (line.size() >= cap) return false;
    line.push_back(char(c));
  }
  return false;
}
}  // namespace

Expected<Y4mReader> Y4mReader::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  if (path == "-") {
    impl->file = stdin;
  } else {
    impl->file = std::fopen(path.c_str(), "rb");
    if (!impl->file) return Status::error("cannot open " + path + ": " + std::strerror(errno));
    impl->owns = true;
  }
  std::string header;
  if (!read_line(impl->file, header, 4096) || header.rfind("YUV4MPEG2 ", 0) != 0)
    return Status::error(path + ": not a YUV4MPEG2 file");
  std::istringstream tokens(header.substr(10));
  std::string t;
  while (tokens >> t) {
    switch (t[0]) {
      case 'W': impl->width = std::atoi(t.c_str() + 1); break;
      case 'H': impl->height = std::atoi(t.c_str() + 1); break;
      case 'F': {
        int n = 0, d = 0;
        if (std::sscanf(t.c_str() + 1, "%d:%d", &n, &d) == 2 && n > 0 && d > 0) impl->rate = {n, d};
        break;
      }
      case 'C':
        if (t.rfind("C420", 0) != 0 || t.find("p10") != std::string::npos ||
            t.find("p12") != std::string::npos || t.find("p16") != std::string::npos)
          return Status::error(path + ": y4m colourspace " + t.substr(1) +
                               " is not 8-bit 4:2:0 (open it as a video input instead)");
        break;
      default: break;
    }
  }
  if (impl->width <= 0 || impl->height <= 0 || impl->width > kMaxDimension ||
      impl->height > kMaxDimension)
    return Status::error(path + ": y4m frame size missing or out of range");
  return Y4mReader(std::move(impl));
}

Expected<bool> Y4mReader::read(Frame& out) {
  Impl& m = *impl_;
  std::string line;
  if (!read_line(m.file, line, 1024)) {
    if (line.empty() && std::feof(m.file)) return false;
    return Status::error(m.path + ": bad y4m frame header");
  }
  if (line.rfind("FRAME", 0) != 0) return Status::error(m.path + ": bad y4m frame header");
  if (out.width != m.width || out.height != m.height) out = Frame::blank(m.width, m.height);
  for (int p = 0; p < 3; ++p) {
    size_t n = size_t(out.plane_width(p)) * out.plane_height(p);
    if (std::fread(out.plane(p), 1, n, m.file) != n)
      return Status::error(m.path + ": truncated y4m frame " + std::to_string(m.index));
  }
  out.pts = m.index++;
  return true;
}

}  // namespace dydca
