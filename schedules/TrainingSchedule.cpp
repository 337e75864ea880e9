#include "TrainingSchedule.h"

#include <set>

#include "Conv2DSchedule.h"

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
  int lanes = vec;  // narrower for few channels
  while (innerExtent > 0 && lanes > 4 && lanes / 2 >= innerExtent) lanes /= 2;
  f.vectorize(args.front(), lanes, TailStrategy::GuardWithIf);
  if (args.size() > 1) f.parallel(args.back());
  int updateVec = vec;
  while (updateVec >= 4 && (innerExtent <= 0 || innerExtent % updateVec != 0)) updateVec /= 2;
  for (int u = 0; u < f.num_update_definitions(); ++u) {
    if (updateVec >= 4 && args.size() > 1) f.update(u).vectorize(args.front(), updateVec);
    if (args.size() > 1)
      f.update(u).parallel(args.back());
    else
      f.update(u).unscheduled();
  }
}

// The largest divisor of `n` that is at most `limit`.
int divisorUpTo(int64_t n, int limit) {
  for (int d = std::min<int64_t>(n, limit); d > 1; --d)
    if (n % d == 0) return d;
  return 1;
}

// The widest vector of at most `vec` (and at least 4) lanes that divides
// `extent`, or 0 when none does.
int dividingVector(int64_t extent, int vec) {
  int lanes = vec;
  while (lanes > 4 && extent % lanes != 0) lanes /= 2;
  return extent % lanes == 0 ? lanes : 0;
}

// A convolution's weight gradient as a register tile: a vector of filters x
// `channels` input channels x `columns` kernel columns accumulated over every
// output position of the batch, then written out in PyTorch's layout. The
// tile's channels and columns divide the layer's (so the tile never reads
// past the input's channels); many filters round up to whole vectors (the
// gradient is zero beyond K). Tasks are kernel rows x tiles.
void scheduleConvWeightGradient(const Layer& layer, const Shape& input, LayerGradients& grads,
                                int vec, std::set<std::string>& done) {
  Func sums = grads.stages.at("grad_weight_sums"), out = grads.params[0];
  const Halide::RDom& r = grads.reductions.at("grad_weight");
  int64_t filters = layer.intAttr("filters"),
          inChannels = input.channels() / layer.intAttr("groups");
  int64_t kernelWidth = layer.sizeAttr("kernel").w;
  // Fewer filters than a vector: a vector of exactly K lanes, so that the
  // gradient is read over its K channels only (rounding up would read
  // through clamps, as gathers).
  int lanes = filters < vec ? static_cast<int>(filters) : vec;
  if (filters % lanes == 0) {
    // Read over exactly its K channels: whole vectors, no clamped tail.
    Func gradConv = grads.stages.at("grad_conv");
    const auto& lv = layerVars();
    gradConv.compute_root()
        .bound(lv.c, 0, static_cast<int>(filters))
        .vectorize(lv.c, lanes)
        .parallel(lv.n);
    done.insert(gradConv.name());
  }
  int accumulators = vec == 16 ? 12 : 8;  // of 32 or 16 vector registers
  int bestChannels = 1, bestColumns = 1;
  for (int columns = 1; columns <= kernelWidth; ++columns) {
    if (kernelWidth % columns != 0) continue;
    int channels = divisorUpTo(inChannels, accumulators / columns);
    if (channels * columns > bestChannels * bestColumns)
      bestChannels = channels, bestColumns = columns;
  }
  std::vector<Halide::Var> v = out.args();  // kx, ky, ci, k
  Halide::Var kx = v[0], ky = v[1], ci = v[2], k = v[3];
  Halide::Var ko("ko"), ki("ki"), cio("cio"), cii("cii"), kxo("kxo"), kxi("kxi"), tile("tile"),
      task("task");
  out.compute_root()
      .split(k, ko, ki, lanes, TailStrategy::GuardWithIf)
      .split(ci, cio, cii, bestChannels, TailStrategy::GuardWithIf)
      .split(kx, kxo, kxi, bestColumns, TailStrategy::GuardWithIf)
      .reorder(kxi, cii, ki, kxo, cio, ko, ky)
      .fuse(cio, ko, tile)
      .fuse(tile, ky, task)
      .parallel(task);
  std::vector<Halide::Var> s = sums.args();  // k, ci, kx, ky
  sums.compute_at(out, kxo)
      .bound_extent(s[0], lanes)
      .bound_extent(s[1], bestChannels)
      .bound_extent(s[2], bestColumns)
      .vectorize(s[0])
      .unroll(s[1])
      .unroll(s[2]);
  sums.update()
      .reorder(s[0], s[1], s[2], r.x, r.y, r.z, s[3])
      .vectorize(s[0])
      .unroll(s[1])
      .unroll(s[2]);
  done.insert(sums.name());
  done.insert(out.name());

  // The bias: each example's sums with the filters innermost, as vectors
  // where one divides them, else unrolled, so that the filters' sums are
  // independent adds rather than one chain per filter.
  if (!grads.stages.count("grad_bias_sums")) return;
  Func biasSums = grads.stages.at("grad_bias_sums");
  const Halide::RDom& pixels = grads.reductions.at("grad_bias");
  std::vector<Halide::Var> b = biasSums.args();  // k, n
  biasSums.compute_root().bound(b[0], 0, static_cast<int>(filters)).parallel(b[1]);
  Halide::Stage update = biasSums.update();
  update.reorder(b[0], pixels.x, pixels.y, b[1]).parallel(b[1]);
  if (int biasLanes = dividingVector(filters, vec)) {
    update.vectorize(b[0], biasLanes);
  } else if (filters <= 16) {
    update.unroll(b[0]);
  }
  done.insert(biasSums.name());
}

// A dense layer's weight gradient: a vector of features x up to four units
// accumulated in registers over the batch (no tails: the vector divides the
// features, the unit count the units), the units' groups as tasks.
void scheduleDenseWeightGradient(const Layer& layer, LayerGradients& grads, int vec,
                                 std::set<std::string>& done) {
  Func out = grads.params[0];
  const Halide::RDom& r = grads.reductions.at("grad_weight");
  int64_t units = layer.params[0].shape[0], features = layer.params[0].shape[1];
  int lanes = dividingVector(features, vec);
  if (!lanes) return;  // the generic schedule
  int rows = divisorUpTo(units, 4);
  std::vector<Halide::Var> v = out.args();  // f, o
  Halide::Var fo("fo"), fi("fi"), oo("oo"), oi("oi");
  out.compute_root().vectorize(v[0], lanes).parallel(v[1]);
  out.update()
      .split(v[0], fo, fi, lanes)
      .split(v[1], oo, oi, rows)
      .reorder(fi, oi, r.x, fo, oo)
      .vectorize(fi)
      .unroll(oi)
      .parallel(oo);
  done.insert(out.name());
}

// A dense layer's input gradient (weights transposed times the output
// gradient): register tiles of up to four vectors of features x four
// examples, summed over the units, so that each weight vector loaded serves
// four examples (one example at a time streamed the whole weight matrix per
// example: W4's fc1 ran at 8 GFLOP/s). Tasks are the feature tiles.
void scheduleDenseInputGradient(const Layer& layer, LayerGradients& grads, int vec,
                                std::set<std::string>& done) {
  Func flat = grads.stages.at("grad_flat");
  const Halide::RDom& r = grads.reductions.at("grad_flat");
  int64_t features = layer.params[0].shape[1];
  int lanes = dividingVector(features, vec);
  if (!lanes) return;  // the generic schedule
  int vectors = divisorUpTo(features / lanes, 4);
  const auto& v = layerVars();
  Halide::Var co("co"), ci("ci"), no("no"), ni("ni");
  flat.compute_root().vectorize(v.c, lanes).parallel(v.n);
  flat.update()
      .split(v.c, co, ci, lanes * vectors)
      .split(v.n, no, ni, 4, TailStrategy::GuardWithIf)
      .reorder(ci, ni, r.x, no, co, v.x, v.y)
      .vectorize(ci, lanes)
      .unroll(ci)
      .unroll(ni)
      .parallel(co);
  done.insert(flat.name());
}

}  // namespace

void scheduleTraining(const Network& net, LoweredTraining& training,
                      const ScheduleOptions& options) {
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
      for (const char* stage : {"sum", "mean", "squares", "variance", "inv_std"})
        store(forward.stages.at(stage), channels);
    LayerGradients& grads = training.layers[i];
    if (layer.kind == LayerKind::Conv2D && !grads.params.empty())
      scheduleConvWeightGradient(layer, net.shapeOf(layer.inputs[0]), grads, vec, done);
    if (layer.kind == LayerKind::Dense) {
      scheduleDenseWeightGradient(layer, grads, vec, done);
      scheduleDenseInputGradient(layer, grads, vec, done);
    }
    if (grads.asConvolution) {
      auto& [convLayer, conv] = *grads.asConvolution;
      Conv2DKnobs knobs = defaultConv2DKnobs(convLayer, layer.outputShape, options.target);
      scheduleConv2D(convLayer, conv, knobs, options);
      // Whole register tiles of channels, whatever region the consumers need.
      conv.value.func.bound(layerVars().c, 0,
                            static_cast<int>(scheduledChannels(convLayer, knobs)));
      done.insert(conv.value.func.name());
      for (auto& [name, stage] : conv.stages) done.insert(stage.name());
    }
    for (auto& [name, stage] : grads.stages)
      store(stage, name == "grad_flat" ? net.shapeOf(layer.inputs[0]).elements()
                   : name == "dot"     ? 0
                                       : channels);
    for (size_t j = 0; j < grads.inputs.size(); ++j)
      store(grads.inputs[j], net.shapeOf(layer.inputs[j]).channels());
    for (size_t p = 0; p < grads.params.size(); ++p)
      store(grads.params[p], layer.params[p].shape.back());
    store(training.gradOutputs[i], channels);
  }
  for (Func& stage : training.lossStages) store(stage, 0);
  store(training.inputGradientInternal, net.inputShape.channels());
}

}  // namespace cnnc
