// A small deterministic test clip made in code: a moving texture, sharp
// text-like glyphs, hard edges, a flat sky, and a scene cut in the middle.
// Used by tests and the demo when no sample clip is at hand.
#pragma once

#include <vector>

#include "dydca/media.h"

namespace dydca {

// frames >= 1; the cut happens at frame `frames / 2` (when frames >= 2).
// noise: fixed-pattern pixel noise in the texture (unpredictable from LR);
// without it every detail of the clip can be learnt by an SR network.
std::vector<Frame> synthetic_clip(int width, int height, int frames, uint32_t seed = 1,
                                  bool noise = true);

}  // namespace dydca
