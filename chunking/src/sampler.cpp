// Balanced training pairs: round-robin over chunks, uniform over the frames a
// chunk occurs in, LR core + halo (border mode outside the frame) and HR core.
#include <algorithm>
#include <cstring>

#include "dydca/chunking.h"
#include "rng.h"

namespace dydca {
namespace {

// Index into [0, n) for position i, which may lie outside; -1 means "zero".
inline int border_index(int i, int n, BorderMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case BorderMode::kZero:
      return -1;
    case BorderMode::kReplicate:
      return i < 0 ? 0 : n - 1;
    case BorderMode::kMirror:
      if (n == 1) return 0;
      // Reflect101 with period 2(n-1), so any distance works.
      {
        const int period = 2 * (n - 1);
        int m = i % period;
        if (m < 0) m += period;
        return m < n ? m : period - m;
      }
  }
  return -1;
}

void copy_region(const uint8_t* plane, int width, int height, int x0, int y0, int side,
                 BorderMode mode, uint8_t* out) {
  if (x0 >= 0 && y0 >= 0 && x0 + side <= width && y0 + side <= height) {
    for (int r = 0; r < side; ++r)
      std::memcpy(out + size_t(r) * side, plane + size_t(y0 + r) * width + x0, size_t(side));
    return;
  }
  for (int r = 0; r < side; ++r) {
    const int sy = border_index(y0 + r, height, mode);
    uint8_t* o = out + size_t(r) * side;
    if (sy < 0) {
      std::memset(o, 0, size_t(side));
      continue;
    }
    const uint8_t* row = plane + size_t(sy) * width;
    for (int c = 0; c < side; ++c) {
      const int sx = border_index(x0 + c, width, mode);
      o[c] = sx < 0 ? 0 : row[sx];
    }
  }
}

}  // namespace

void extract_patch(const Frame& lr, const Frame& hr, int scale, int x, int y, int patch, int halo,
                   BorderMode border, uint8_t* lr_out, uint8_t* hr_out) {
  copy_region(lr.y.data(), lr.width, lr.height, x - halo, y - halo, patch + 2 * halo, border,
              lr_out);
  copy_region(hr.y.data(), hr.width, hr.height, x * scale, y * scale, patch * scale, border,
              hr_out);
}

Expected<TrainingSampler> TrainingSampler::create(const std::vector<Frame>& hr,
                                                  const std::vector<Frame>& lr,
                                                  const RoutingMap& routing,
                                                  const SamplerParams& params) {
  if (params.patch < 1 || params.patch > 1024)
    return Status::error("sampler: patch must be in 1..1024");
  if (params.halo < 0 || params.halo > 256) return Status::error("sampler: halo must be in 0..256");
  if (lr.empty() || hr.size() != lr.size())
    return Status::error("sampler: need the same number (> 0) of HR and LR frames");
  if (routing.frames != int(lr.size()) || routing.lr_width != lr[0].width ||
      routing.lr_height != lr[0].height)
    return Status::error("sampler: routing map (" + std::to_string(routing.lr_width) + "x" +
                         std::to_string(routing.lr_height) + ", " + std::to_string(routing.frames) +
                         " frames) does not match the LR frames");
  if (routing.num_chunks < 1 || routing.num_chunks > kMaxChunks ||
      routing.chunk_ids.size() != size_t(routing.frames) * routing.tiles_per_frame())
    return Status::error("sampler: malformed routing map");
  const int w = lr[0].width, h = lr[0].height;
  if (hr[0].width % w != 0 || hr[0].width / w != hr[0].height / std::max(h, 1) ||
      hr[0].height % h != 0)
    return Status::error("sampler: HR size is not an integer multiple of the LR size");
  const int scale = hr[0].width / w;
  for (size_t i = 0; i < lr.size(); ++i)
    if (lr[i].width != w || lr[i].height != h || hr[i].width != w * scale ||
        hr[i].height != h * scale)
      return Status::error("sampler: frame " + std::to_string(i) + " differs in size");
  const int end = params.frame_end == 0 ? int(lr.size()) : params.frame_end;
  if (params.frame_begin < 0 || params.frame_begin >= end || end > int(lr.size()))
    return Status::error("sampler: bad frame range");

  TrainingSampler s;
  s.hr_ = &hr;
  s.lr_ = &lr;
  s.grid_ = TileGrid{routing.tile_size, w, h};
  s.scale_ = scale;
  s.num_chunks_ = routing.num_chunks;
  s.params_ = params;
  s.params_.frame_end = end;
  s.index_.resize(size_t(routing.num_chunks));
  s.chunk_tiles_.assign(size_t(routing.num_chunks), 0);
  const int tiles = s.grid_.count();
  for (int f = params.frame_begin; f < end; ++f) {
    const uint8_t* ids = routing.chunk_ids.data() + size_t(f) * tiles;
    for (int i = 0; i < tiles; ++i) {
      if (ids[i] >= routing.num_chunks) return Status::error("sampler: chunk id out of range");
      ChunkIndex& ci = s.index_[ids[i]];
      if (ci.frames.empty() || ci.frames.back() != f) {
        ci.frames.push_back(f);
        ci.offsets.push_back(int64_t(ci.tiles.size()));
      }
      ci.tiles.push_back(i);
      ++s.chunk_tiles_[ids[i]];
    }
  }
  for (int c = 0; c < routing.num_chunks; ++c) {
    s.index_[size_t(c)].offsets.push_back(int64_t(s.index_[size_t(c)].tiles.size()));
    if (s.chunk_tiles_[size_t(c)] > 0) s.present_.push_back(c);
  }
  if (s.present_.empty()) return Status::error("sampler: no tiles in the frame range");
  s.rng_state_ = params.seed ^ 0x5eed5a3b1e000000ull;
  return s;
}

uint64_t TrainingSampler::next_random() {
  chunking_detail::SplitMix64 r(rng_state_);
  const uint64_t v = r.next();
  rng_state_ = r.state();
  return v;
}

uint64_t TrainingSampler::uniform(uint64_t n) {
  return uint64_t((__uint128_t(next_random()) * n) >> 64);
}

void TrainingSampler::prepare(TrainingBatch& out, int count) const {
  out.count = count;
  out.lr_side = params_.patch + 2 * params_.halo;
  out.hr_side = params_.patch * scale_;
  out.lr.resize(size_t(count) * out.lr_side * out.lr_side);
  out.hr.resize(size_t(count) * out.hr_side * out.hr_side);
  out.chunk.resize(size_t(count));
  out.frame.resize(size_t(count));
  out.x.resize(size_t(count));
  out.y.resize(size_t(count));
}

void TrainingSampler::draw(int chunk, int slot, TrainingBatch& out) {
  const ChunkIndex& ci = index_[size_t(chunk)];
  const size_t k = size_t(uniform(ci.frames.size()));
  const int f = ci.frames[k];
  const int64_t first = ci.offsets[k], count = ci.offsets[k + 1] - first;
  const int tile = ci.tiles[size_t(first + int64_t(uniform(uint64_t(count))))];
  const TileRect r = grid_.rect(tile);
  // Core centre somewhere in the tile, core kept inside the frame when it fits.
  const int cx = r.x + int(uniform(uint64_t(r.width)));
  const int cy = r.y + int(uniform(uint64_t(r.height)));
  const int p = params_.patch;
  auto place = [p](int centre, int size) {
    if (size < p) return -(p - size) / 2;
    return std::clamp(centre - p / 2, 0, size - p);
  };
  const int x = place(cx, grid_.width), y = place(cy, grid_.height);
  extract_patch((*lr_)[size_t(f)], (*hr_)[size_t(f)], scale_, x, y, p, params_.halo, params_.border,
                out.lr.data() + size_t(slot) * out.lr_side * out.lr_side,
                out.hr.data() + size_t(slot) * out.hr_side * out.hr_side);
  out.chunk[size_t(slot)] = chunk;
  out.frame[size_t(slot)] = f;
  out.x[size_t(slot)] = x;
  out.y[size_t(slot)] = y;
}

void TrainingSampler::next_batch(int count, TrainingBatch& out) {
  count = std::max(count, 0);
  prepare(out, count);
  for (int i = 0; i < count; ++i) {
    if (round_pos_ >= round_.size()) {
      round_ = present_;
      for (size_t j = round_.size(); j > 1; --j)
        std::swap(round_[j - 1], round_[size_t(uniform(j))]);
      round_pos_ = 0;
    }
    draw(round_[round_pos_++], i, out);
  }
}

Status TrainingSampler::next_batch_for_chunk(int chunk, int count, TrainingBatch& out) {
  if (chunk < 0 || chunk >= num_chunks_ || chunk_tiles_[size_t(chunk)] == 0)
    return Status::error("sampler: chunk " + std::to_string(chunk) +
                         " has no tiles in the sampled frames");
  count = std::max(count, 0);
  prepare(out, count);
  for (int i = 0; i < count; ++i) draw(chunk, i, out);
  return {};
}

}  // namespace dydca
