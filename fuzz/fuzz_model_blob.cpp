// libFuzzer target: the model blob parser. Whatever parses must survive an
// fp32 re-serialization unchanged (parse -> write fp32 -> parse is exact).
#include "dydca/container.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dydca;
  const std::vector<uint8_t> input = fuzz::blob_from_input(fuzz::kModelKind, data, size);
  auto model = parse_model(input.data(), input.size());
  if (!model) return 0;
  auto again = serialize_model(*model, {WeightFormat::kFp32, 1});
  if (!again) fuzz::invariant_failed("a parsed model does not serialize");
  auto back = parse_model(*again);
  if (!back) fuzz::invariant_failed("a re-serialized model does not parse");
  if (back->tensors.size() != model->tensors.size() || !(back->arch.paths == model->arch.paths))
    fuzz::invariant_failed("model round trip changed the model");
  for (size_t i = 0; i < model->tensors.size(); ++i)
    if (back->tensors[i].data != model->tensors[i].data ||
        back->tensors[i].shape != model->tensors[i].shape)
      fuzz::invariant_failed("model round trip changed a tensor");
  return 0;
}
