#include "TrainingSchedule.h"

#include <set>

namespace cnnc {

using Halide::Func;
using Halide::TailStrategy;

namespace {

// Stored, vectorized along its innermost dimension and parallel along its
// outermost. Updates (reductions) are vectorized only at a width that
// divides `innerExtent` (0: unknown), and not in 1-D Funcs: Halide 14
// miscompiled both here (aligned loads past the end of a buffer). A Func reached twice
// (a gradient that several inputs share) is scheduled once.
void storeVectorized(Func f, int vec, int64_t innerExtent, std::set<std::string>& done) {
  if (!f.defined() || !done.insert(f.name()).second) return;
  f.compute_root();
  std::vector<Halide::Var> args = f.args();
  if (args.empty()) return;
  f.vectorize(args.front(), vec, TailStrategy::GuardWithIf);
  if (args.size() > 1) f.parallel(args.back());
  int updateVec = vec;
  while (updateVec >= 4 && (innerExtent <= 0 || innerExtent % updateVec != 0)) updateVec /= 2;
  for (int u = 0; u < f.num_update_definitions(); ++u) {
    if (updateVec >= 4 && args.size() > 1) f.update(u).vectorize(args.front(), updateVec);
    if (args.size() > 1) f.update(u).parallel(args.back());
    else f.update(u).unscheduled();
  }
}

}  // namespace

void scheduleTraining(const Network& net, LoweredTraining& training, const ScheduleOptions& options) {
  int vec = floatVectorWidth(options.target);
  std::set<std::string> done;
  auto store = [&](Func f, int64_t innerExtent) { storeVectorized(f, vec, innerExtent, done); };
  scheduleForward(net, training.network, options);
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& layer = net.layers[i];
    int64_t channels = layer.outputShape.channels();
    LoweredLayer& forward = training.network.layers[i];
    // Batch statistics, read by every position of their channel.
    if (layer.kind == LayerKind::BatchNorm)
      for (const char* stage : {"sum", "mean", "squares", "variance", "inv_std"}) store(forward.stages.at(stage), channels);
    LayerGradients& grads = training.layers[i];
    for (auto& [name, stage] : grads.stages)
      store(stage, name == "grad_flat" ? net.shapeOf(layer.inputs[0]).elements() : name == "dot" ? 0 : channels);
    for (size_t j = 0; j < grads.inputs.size(); ++j) store(grads.inputs[j], net.shapeOf(layer.inputs[j]).channels());
    for (size_t p = 0; p < grads.params.size(); ++p) store(grads.params[p], layer.params[p].shape.back());
    store(training.gradOutputs[i], channels);
  }
  for (Func& stage : training.lossStages) store(stage, 0);
  store(training.inputGradientInternal, net.inputShape.channels());
}

}  // namespace cnnc
