// libFuzzer target: the routing blob parser. Whatever parses must
// re-serialize and parse back to the same map.
#include "dydca/container.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dydca;
  const std::vector<uint8_t> input = fuzz::blob_from_input(fuzz::kRoutingKind, data, size);
  auto routing = parse_routing(input.data(), input.size());
  if (!routing) return 0;
  auto again = serialize_routing(*routing, 1);
  if (!again) fuzz::invariant_failed("a parsed routing map does not serialize");
  auto back = parse_routing(*again);
  if (!back) fuzz::invariant_failed("a re-serialized routing map does not parse");
  if (back->chunk_ids != routing->chunk_ids || back->chunk_path != routing->chunk_path ||
      back->frames != routing->frames || back->tile_size != routing->tile_size)
    fuzz::invariant_failed("routing round trip changed the map");
  return 0;
}
