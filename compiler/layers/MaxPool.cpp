// maxpool: the maximum over each window; padding never wins the max.
#include "Pooling.h"

namespace cnnc {

LayerKindInfo maxPoolKind() {
  return {LayerKind::MaxPool, "maxpool", poolingKeys(), 1, 1, poolingShape, nullptr, poolingFlops};
}

}  // namespace cnnc
