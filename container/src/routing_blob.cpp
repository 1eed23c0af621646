// Routing blob: envelope "DYDCARTG" around the grid, the chunk->path tables
// and the per-frame tile->chunk maps, each frame coded the cheapest of four
// ways relative to the previous frame. Layout in docs/formats.md.
#include <algorithm>

#include "byte_io.h"
#include "dydca/container.h"
#include "envelope.h"

namespace dydca {

namespace {

constexpr blob::EnvelopeKind kRoutingEnvelope{"DYDCARTG", "routing blob", kRoutingBlobVersion,
                                              kMaxRoutingPayloadBytes};

// Frame coding modes (one byte per frame in the mode section). The frame
// data is split into three sections so that zstd sees homogeneous streams:
// counts (varints), values (bytes) and raw frames.
enum FrameMode : uint8_t {
  kSameAsPrevious = 0,  // nothing
  kRuns = 1,            // per run: counts += varint length >= 1, values += chunk id
  kChanges = 2,         // counts += varint n; per changed tile: counts += varint unchanged
                        // tiles skipped, values += (new - old) mod K, in 1..K-1
  kRaw = 3,             // raw += one chunk id per tile
};

size_t varint_bytes(uint32_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

struct FrameSections {
  blob::ByteWriter modes, counts, values, raw;
};

// Codes `cur` against `prev` (all zeros before frame 0) in the cheapest mode.
void encode_frame(const uint8_t* prev, const uint8_t* cur, size_t tiles, int chunks,
                  FrameSections& out) {
  if (std::equal(cur, cur + tiles, prev)) {
    out.modes.u8(kSameAsPrevious);
    return;
  }
  size_t runs_bytes = 0;
  for (size_t i = 0; i < tiles;) {
    size_t j = i + 1;
    while (j < tiles && cur[j] == cur[i]) ++j;
    runs_bytes += 1 + varint_bytes(uint32_t(j - i));
    i = j;
  }
  size_t changes = 0, changes_bytes = 0;
  for (size_t i = 0, last = 0; i < tiles; ++i)
    if (cur[i] != prev[i]) {
      changes_bytes += varint_bytes(uint32_t(i - last)) + 1;
      last = i + 1;
      ++changes;
    }
  changes_bytes += varint_bytes(uint32_t(changes));

  if (tiles <= runs_bytes && tiles <= changes_bytes) {
    out.modes.u8(kRaw);
    out.raw.bytes(cur, tiles);
  } else if (runs_bytes <= changes_bytes) {
    out.modes.u8(kRuns);
    for (size_t i = 0; i < tiles;) {
      size_t j = i + 1;
      while (j < tiles && cur[j] == cur[i]) ++j;
      out.counts.varint(uint32_t(j - i));
      out.values.u8(cur[i]);
      i = j;
    }
  } else {
    out.modes.u8(kChanges);
    out.counts.varint(uint32_t(changes));
    for (size_t i = 0, last = 0; i < tiles; ++i)
      if (cur[i] != prev[i]) {
        out.counts.varint(uint32_t(i - last));
        out.values.u8(uint8_t((cur[i] - prev[i] + chunks) % chunks));
        last = i + 1;
      }
  }
}

}  // namespace

Status validate_routing(const RoutingMap& m) {
  if (m.tile_size < 1 || m.tile_size > kMaxTileSize)
    return Status::error("routing tile size " + std::to_string(m.tile_size) + " outside 1.." +
                         std::to_string(kMaxTileSize));
  if (m.lr_width < 1 || m.lr_height < 1 || m.lr_width > kMaxDimension ||
      m.lr_height > kMaxDimension)
    return Status::error("routing LR size " + std::to_string(m.lr_width) + "x" +
                         std::to_string(m.lr_height) + " is invalid");
  if (m.frames < 1 || m.frames > kMaxRoutingFrames)
    return Status::error("routing frame count " + std::to_string(m.frames) + " outside 1.." +
                         std::to_string(kMaxRoutingFrames));
  if (m.num_chunks < 1 || m.num_chunks > kMaxRoutingChunks)
    return Status::error("routing chunk count " + std::to_string(m.num_chunks) + " outside 1.." +
                         std::to_string(kMaxRoutingChunks));
  if (m.levels() < 1 || m.levels() > kMaxLevels)
    return Status::error("routing has " + std::to_string(m.levels()) + " QoS levels (1.." +
                         std::to_string(kMaxLevels) + " allowed)");
  for (int l = 0; l < m.levels(); ++l) {
    const auto& table = m.chunk_path[size_t(l)];
    if (table.size() != size_t(m.num_chunks))
      return Status::error("routing level " + std::to_string(l) + " maps " +
                           std::to_string(table.size()) + " chunks, expected " +
                           std::to_string(m.num_chunks));
    for (uint8_t p : table)
      if (p >= kMaxPaths)
        return Status::error("routing level " + std::to_string(l) + " names path " +
                             std::to_string(p) + " (max " + std::to_string(kMaxPaths - 1) + ")");
  }
  const int64_t tiles = int64_t(m.frames) * m.tiles_per_frame();
  if (tiles > kMaxRoutingTiles)
    return Status::error("routing map has " + std::to_string(tiles) + " tiles (max " +
                         std::to_string(kMaxRoutingTiles) + ")");
  if (int64_t(m.chunk_ids.size()) != tiles)
    return Status::error("routing map has " + std::to_string(m.chunk_ids.size()) +
                         " tile entries, expected frames x tiles = " + std::to_string(tiles));
  for (uint8_t c : m.chunk_ids)
    if (c >= m.num_chunks)
      return Status::error("routing map names chunk " + std::to_string(c) + " of " +
                           std::to_string(m.num_chunks));
  return Status::ok();
}

Status check_routing_fits_model(const RoutingMap& routing, const ModelArch& arch) {
  for (int l = 0; l < routing.levels(); ++l)
    for (size_t c = 0; c < routing.chunk_path[size_t(l)].size(); ++c)
      if (routing.chunk_path[size_t(l)][c] >= arch.paths.size())
        return Status::error("routing level " + std::to_string(l) + " sends chunk " +
                             std::to_string(c) + " to path " +
                             std::to_string(routing.chunk_path[size_t(l)][c]) +
                             " but the model has " + std::to_string(arch.paths.size()) + " paths");
  return Status::ok();
}

Expected<std::vector<uint8_t>> serialize_routing(const RoutingMap& m, int zstd_level) {
  DYDCA_TRY(validate_routing(m).with_context("cannot write routing blob"));
  blob::ByteWriter w;
  w.u16(uint16_t(m.tile_size));
  w.u16(uint16_t(m.lr_width));
  w.u16(uint16_t(m.lr_height));
  w.u32(uint32_t(m.frames));
  w.u8(uint8_t(m.num_chunks));
  w.u8(uint8_t(m.levels()));
  for (const auto& table : m.chunk_path) w.bytes(table.data(), table.size());
  const size_t tiles = size_t(m.tiles_per_frame());
  const std::vector<uint8_t> zeros(tiles, 0);
  FrameSections sections;
  for (int f = 0; f < m.frames; ++f) {
    const uint8_t* cur = m.chunk_ids.data() + size_t(f) * tiles;
    encode_frame(f == 0 ? zeros.data() : cur - tiles, cur, tiles, m.num_chunks, sections);
  }
  w.u32(uint32_t(sections.counts.size()));
  w.u32(uint32_t(sections.values.size()));
  w.bytes(sections.modes.buffer().data(), sections.modes.size());
  w.bytes(sections.counts.buffer().data(), sections.counts.size());
  w.bytes(sections.values.buffer().data(), sections.values.size());
  w.bytes(sections.raw.buffer().data(), sections.raw.size());
  if (w.size() > kMaxRoutingPayloadBytes)
    return Status::error("routing map is too large for a routing blob");
  return blob::seal_envelope(kRoutingEnvelope, w.buffer(), zstd_level);
}

Expected<RoutingMap> parse_routing(const uint8_t* data, size_t size) {
  DYDCA_ASSIGN_OR_RETURN(auto opened, blob::open_envelope(kRoutingEnvelope, data, size));
  const std::vector<uint8_t>& payload = opened.payload;
  blob::ByteReader r(payload.data(), payload.size());
  auto truncated = [] { return Status::error("routing blob payload is truncated"); };

  RoutingMap m;
  m.tile_size = r.u16();
  m.lr_width = r.u16();
  m.lr_height = r.u16();
  const uint32_t frames = r.u32();
  m.num_chunks = r.u8();
  const int levels = r.u8();
  if (!r.ok()) return truncated();
  // Grid and counts first: everything allocated below is bounded by them.
  if (m.tile_size < 1 || m.tile_size > kMaxTileSize || m.lr_width < 1 || m.lr_height < 1 ||
      m.lr_width > kMaxDimension || m.lr_height > kMaxDimension)
    return Status::error("routing blob grid (tile " + std::to_string(m.tile_size) + ", LR " +
                         std::to_string(m.lr_width) + "x" + std::to_string(m.lr_height) +
                         ") is invalid");
  if (frames < 1 || frames > uint32_t(kMaxRoutingFrames))
    return Status::error("routing blob frame count " + std::to_string(frames) + " outside 1.." +
                         std::to_string(kMaxRoutingFrames));
  m.frames = int(frames);
  if (m.num_chunks < 1) return Status::error("routing blob has no chunks");
  if (levels < 1 || levels > kMaxLevels)
    return Status::error("routing blob has " + std::to_string(levels) + " QoS levels (1.." +
                         std::to_string(kMaxLevels) + " allowed)");
  const size_t tiles = size_t(m.tiles_per_frame());
  const int64_t total = int64_t(frames) * int64_t(tiles);
  if (total > kMaxRoutingTiles)
    return Status::error("routing blob declares " + std::to_string(total) + " tiles (max " +
                         std::to_string(kMaxRoutingTiles) + ")");

  for (int l = 0; l < levels; ++l) {
    const uint8_t* table = r.bytes(size_t(m.num_chunks));
    if (!table) return truncated();
    m.chunk_path.emplace_back(table, table + m.num_chunks);
  }
  // Sections: modes (one byte per frame), counts, values, raw (the rest).
  const uint32_t counts_size = r.u32();
  const uint32_t values_size = r.u32();
  if (!r.ok()) return truncated();
  // Every frame costs at least its mode byte: a blob cannot announce more
  // frames than it has bytes, which bounds the allocation below by the
  // (capped) payload size times the tiles per frame.
  if (uint64_t(frames) + counts_size + values_size > r.remaining()) return truncated();
  const uint8_t* modes = r.bytes(frames);
  blob::ByteReader counts(r.bytes(counts_size), counts_size);
  blob::ByteReader values(r.bytes(values_size), values_size);
  const size_t raw_size = r.remaining();
  blob::ByteReader raw(r.bytes(raw_size), raw_size);
  m.chunk_ids.resize(size_t(total));
  auto bad_frame = [](uint32_t f, const char* why) {
    return Status::error("routing blob frame " + std::to_string(f) + ": " + why);
  };
  for (uint32_t f = 0; f < frames; ++f) {
    uint8_t* cur = m.chunk_ids.data() + size_t(f) * tiles;
    const uint8_t* prev = f == 0 ? nullptr : cur - tiles;  // nullptr: all zeros
    switch (modes[f]) {
      case kSameAsPrevious:
        if (prev) std::copy(prev, prev + tiles, cur);  // frame 0: already zeros
        break;
      case kRuns:
        for (size_t i = 0; i < tiles;) {
          const uint32_t run = counts.varint();
          const uint8_t chunk = values.u8();
          if (!counts.ok() || !values.ok()) return truncated();
          if (run == 0 || run > tiles - i) return bad_frame(f, "a run overflows the frame");
          std::fill(cur + i, cur + i + run, chunk);
          i += run;
        }
        break;
      case kChanges: {
        if (prev) std::copy(prev, prev + tiles, cur);
        const uint32_t changes = counts.varint();
        if (!counts.ok()) return truncated();
        if (changes > tiles) return bad_frame(f, "more changes than tiles");
        size_t at = 0;
        for (uint32_t c = 0; c < changes; ++c) {
          const uint32_t skip = counts.varint();
          const uint8_t delta = values.u8();
          if (!counts.ok() || !values.ok()) return truncated();
          if (skip >= tiles - at) return bad_frame(f, "a change lies outside the frame");
          if (delta == 0 || delta >= m.num_chunks) return bad_frame(f, "a change is out of range");
          at += skip;
          cur[at] = uint8_t((cur[at] + delta) % m.num_chunks);
          ++at;
        }
        break;
      }
      case kRaw: {
        const uint8_t* bytes = raw.bytes(tiles);
        if (!bytes) return truncated();
        std::copy(bytes, bytes + tiles, cur);
        break;
      }
      default:
        return bad_frame(f, "unknown frame coding mode");
    }
  }
  if (!counts.at_end() || !values.at_end() || !raw.at_end())
    return Status::error("routing blob payload has unexpected trailing bytes");
  DYDCA_TRY(validate_routing(m).with_context("routing blob"));
  return m;
}

}  // namespace dydca
