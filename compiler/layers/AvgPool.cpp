// avgpool: the mean over each window; padded zeros count in the mean
// (PyTorch's count_include_pad=True).
#include "Pooling.h"

namespace cnnc {

LayerKindInfo avgPoolKind() {
  return {LayerKind::AvgPool, "avgpool", poolingKeys(), 1, 1, poolingShape, nullptr, poolingFlops};
}

}  // namespace cnnc
