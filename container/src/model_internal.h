// Helpers shared by the model blob and the model update (delta) parsers.
#pragma once

#include <string>
#include <vector>

#include "byte_io.h"
#include "dydca/model.h"
#include "dydca/status.h"

namespace dydca::blob {

inline constexpr int kMaxRank = 4;
inline constexpr int kMaxNameBytes = 255;

// "[32,1,3,3]" for messages.
inline std::string shape_string(const std::vector<int>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

// Tensor names are printable ASCII without spaces.
inline bool valid_name_char(char c) { return c > 0x20 && c < 0x7f; }

// Untrusted text quoted in a one-line message: its first 64 bytes, anything
// but printable ASCII shown as '?' (a newline in a file name stays out).
inline std::string printable(const std::string& s) {
  std::string out = s.substr(0, 64);
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return out;
}

inline bool same_arch(const ModelArch& a, const ModelArch& b) {
  return a.scale == b.scale && a.channels == b.channels && a.inner == b.inner &&
         a.blocks == b.blocks && a.paths == b.paths;
}

// "x2 C32 E32 N4, 4 paths" for messages.
inline std::string arch_string(const ModelArch& a) {
  std::string s = "x";
  s += std::to_string(a.scale);
  s += " C";
  s += std::to_string(a.channels);
  s += " E";
  s += std::to_string(a.inner);
  s += " N";
  s += std::to_string(a.blocks);
  s += ", ";
  s += std::to_string(a.paths.size());
  s += " paths";
  return s;
}

// ActScales (model.h): empty, or one list per path of 1 + 2*depth scales
// (0 for width 0), each finite and in [kMinActScale, kMaxActScale].
inline constexpr float kMinActScale = 1e-10f;
inline constexpr float kMaxActScale = 1e10f;
Status validate_act_scales(const ActScales& act, const ModelArch& arch);
// Section layout (model blob v2, model update v2): u8 path count (0 = none,
// else the model's), then per path u8 count + count x f32.
void write_act_scales(ByteWriter& w, const ActScales& act);
Status read_act_scales(ByteReader& r, const ModelArch& arch, ActScales* act, const char* what);

}  // namespace dydca::blob
