// libFuzzer target: the segment table parser. Whatever parses must
// re-serialize and parse back to the same records.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dydca;
  const std::vector<uint8_t> input = fuzz::blob_from_input(fuzz::kSegmentsKind, data, size);
  auto table = parse_segments(input.data(), input.size());
  if (!table) return 0;
  auto again = serialize_segments(*table, 1);
  if (!again) fuzz::invariant_failed("a parsed segment table does not serialize");
  auto back = parse_segments(*again);
  if (!back) fuzz::invariant_failed("a re-serialized segment table does not parse");
  if (back->size() != table->size()) fuzz::invariant_failed("segment round trip changed the count");
  for (size_t k = 0; k < table->size(); ++k) {
    const SegmentRecord &a = (*table)[k], &b = (*back)[k];
    if (a.first_frame != b.first_frame || a.frames != b.frames ||
        a.model_is_delta != b.model_is_delta || a.model != b.model || a.routing != b.routing)
      fuzz::invariant_failed("segment round trip changed a record");
  }
  return 0;
}
