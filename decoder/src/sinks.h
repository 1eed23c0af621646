// Private pieces of the output stage: the md5 of output frames.
#pragma once

#include <memory>
#include <string>

#include "dydca/media.h"

struct AVMD5;

namespace dydca::detail {

// MD5 of every plane of every frame, rows tightly packed, in order (the bytes
// a y4m file carries without its headers; equals `ffmpeg -f md5` on 8-bit
// 4:2:0 rawvideo).
class FrameMd5 {
 public:
  FrameMd5();
  FrameMd5(FrameMd5&&) noexcept;
  FrameMd5& operator=(FrameMd5&&) noexcept;
  ~FrameMd5();
  void add(const Frame& frame);
  std::string hex();  // finishes the hash

 private:
  struct Deleter {
    void operator()(AVMD5* m) const;
  };
  std::unique_ptr<AVMD5, Deleter> ctx_;
};

}  // namespace dydca::detail
