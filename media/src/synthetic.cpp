#include "dydca/synthetic.h"

#include <cmath>

namespace dydca {
namespace {

uint32_t hash(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16;
  return x;
}

uint8_t clamp8(int v) { return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v); }

}  // namespace

std::vector<Frame> synthetic_clip(int width, int height, int frames, uint32_t seed, bool noise) {
  std::vector<Frame> clip;
  const int cut = frames >= 2 ? frames / 2 : frames;
  for (int t = 0; t < frames; ++t) {
    Frame f = Frame::blank(width, height);
    f.pts = t;
    const bool second = t >= cut;
    const int dx = 2 * t, dy = t;  // camera pan, pixels per frame
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        int v;
        const int sx = x + dx, sy = y + dy;
        if (!second) {
          if (y < height / 4) {
            v = 180 + (y * 20) / (height / 4 + 1);  // flat sky gradient
          } else if (x < width / 2) {
            // fine moving texture: two sinusoids plus fixed-pattern noise
            double s = std::sin(sx * 0.9) * 40 + std::sin(sy * 0.45 + sx * 0.2) * 30;
            v = 110 + int(s) + (noise ? int(hash(uint32_t(sx * 7919 + sy * 104729) ^ seed) % 24) - 12 : 0);
          } else {
            // text-like glyph blocks (sharp, high contrast) on a light card
            int gx = (sx / 3) % 6, gy = (y / 4) % 4;
            bool ink = (hash(uint32_t((sx / 18) * 31 + (y / 16) * 131) ^ seed) >> (gx + gy * 6)) & 1;
            v = (gx < 5 && gy < 3 && ink) ? 30 : 220;
          }
        } else {
          // after the cut: checkerboard edges and a smooth radial blob
          bool check = ((sx / 12) + (sy / 12)) % 2;
          double r = std::hypot(x - width * 0.7, y - height * 0.5) / (height * 0.3 + 1);
          v = r < 1 ? int(200 - 120 * r) : (check ? 200 : 50);
        }
        f.y[size_t(y) * width + x] = clamp8(v);
      }
    }
    for (int y = 0; y < f.chroma_height(); ++y)
      for (int x = 0; x < f.chroma_width(); ++x) {
        size_t i = size_t(y) * f.chroma_width() + x;
        f.u[i] = clamp8(second ? 100 + x % 40 : 128 + (x * 30) / (f.chroma_width() + 1));
        f.v[i] = clamp8(second ? 150 - y % 30 : 120 + (y * 20) / (f.chroma_height() + 1));
      }
    clip.push_back(std::move(f));
  }
  return clip;
}

}  // namespace dydca
