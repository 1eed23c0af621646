// libFuzzer target: the model update parser, applied to a fixed reference
// (fuzz_common.h). Whatever applies must give the same bits when applied
// again, be a valid model of the reference's architecture, and survive a
// round trip: delta(reference, result) applied to the reference gives the
// result back within the int8 bound.
#include <cmath>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dydca;
  const Model& ref = fuzz::delta_reference();
  const std::vector<uint8_t> input = fuzz::blob_from_input(fuzz::kDeltaKind, data, size);
  auto model = apply_model_delta(ref, input.data(), input.size());
  if (!model) return 0;
  auto again = apply_model_delta(ref, input.data(), input.size());
  if (!again) fuzz::invariant_failed("an update applied once does not apply twice");
  for (size_t i = 0; i < model->tensors.size(); ++i)
    if (model->tensors[i].data != again->tensors[i].data)
      fuzz::invariant_failed("applying an update is not deterministic");
  if (!validate_model(*model)) fuzz::invariant_failed("an applied update is not a valid model");
  if (!(model->arch.paths == ref.arch.paths) || model->tensors.size() != ref.tensors.size())
    fuzz::invariant_failed("an update changed the architecture");
  auto redo = serialize_model_delta(ref, *model, {1});
  if (!redo) return 0;  // e.g. differences beyond fp32 (huge values on both sides)
  auto back = apply_model_delta(ref, *redo);
  if (!back) fuzz::invariant_failed("a re-serialized update does not apply");
  for (size_t ti = 0; ti < ref.tensors.size(); ++ti) {
    const auto& t = model->tensors[ti].data;
    const auto& b = back->tensors[ti].data;
    const auto& r = ref.tensors[ti].data;
    double max_d = 0;
    for (size_t i = 0; i < t.size(); ++i) max_d = std::fmax(max_d, std::fabs(double(t[i]) - r[i]));
    for (size_t i = 0; i < t.size(); ++i)
      if (std::fabs(double(b[i]) - t[i]) > max_d / 127 * 0.51 + 1e-6 * std::fabs(t[i]) + 1e-30)
        fuzz::invariant_failed("update round trip exceeds the int8 bound");
  }
  return 0;
}
