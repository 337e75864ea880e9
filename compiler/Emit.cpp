#include "Emit.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include <Halide.h>

#include "Diagnostics.h"
#include "Lowering.h"
#include "NetworkSchedule.h"
#include "Training.h"
#include "TrainingSchedule.h"

namespace cnnc {

// The runtime objects linked into every library, embedded at build time
// (RuntimeObjects.S).
extern "C" const char cnnc_runtime_objects_begin[];
extern "C" const char cnnc_runtime_objects_end[];

namespace fs = std::filesystem;

// runtime/Model.h's VectorAlignedAllocator::kAlignment.
constexpr int kGradientAlignment = 128;

namespace {

// A scratch directory beside the output (so that renames stay on one file
// system), removed with everything in it when done.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(const fs::path& near) {
    std::random_device entropy;
    fs::path parent = near.parent_path().empty() ? fs::path(".") : near.parent_path();
    path_ = parent / fmt::format(".cnnc-{:08x}", entropy());
    std::error_code error;
    if (!fs::create_directory(path_, error))
      throw EmitError(fmt::format("cannot create a scratch directory in '{}': {}", parent.string(), error.message()));
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

void writeBytes(const fs::path& path, const char* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  out.flush();
  if (!out) throw EmitError(fmt::format("cannot write '{}'", path.string()));
}

// Moves a finished file into place; a reader never sees a partial file.
void commit(const fs::path& from, const fs::path& to) {
  std::error_code error;
  fs::rename(from, to, error);
  if (error) throw EmitError(fmt::format("cannot write '{}': {}", to.string(), error.message()));
}

Halide::Target parseTarget(const std::string& text) {
  Halide::Target target;
  if (text == "host") {
    target = Halide::get_host_target();
  } else {
    if (!Halide::Target::validate_target_string(text))
      throw EmitError(fmt::format("invalid --target '{}' (a Halide target string such as "
                                  "x86-64-linux-avx2-fma, or host)",
                                  text));
    target = Halide::Target(text);
  }
  return target.with_feature(Halide::Target::NoRuntime);
}

// Pins a buffer argument's dimensions to the layout the runtime passes: dense,
// starting at 0, with the given extents (innermost first); the batch, last,
// stays free.
template <typename BufferLike>
void pinLayout(BufferLike buffer, const Shape& shape) {
  std::vector<int> extents;
  if (shape.isImage())
    extents = {static_cast<int>(shape.width()), static_cast<int>(shape.height()), static_cast<int>(shape.channels())};
  else
    extents = {static_cast<int>(shape.dims[0])};
  Halide::Expr stride = 1;
  for (size_t d = 0; d < extents.size(); ++d) {
    buffer.dim(d).set_bounds(0, extents[d]).set_stride(stride);
    stride = stride * extents[d];
  }
  int last = static_cast<int>(extents.size());
  buffer.dim(last).set_min(0).set_stride(stride);
}

std::vector<Halide::Argument> pipelineArguments(const LoweredNetwork& lowered) {
  std::vector<Halide::Argument> args = {lowered.input};
  for (const auto& param : lowered.params) args.push_back(param);
  return args;
}

// The batch-N or batch-1 forward pass: input, parameters -> the last layer.
Halide::Module forwardModule(const Network& net, const Halide::Target& target, bool batchOne,
                             const ScheduleOverrides& overrides, const std::string& name) {
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference);
  ScheduleOptions options{target, batchOne, &overrides};
  scheduleForward(net, lowered, options);
  int last = static_cast<int>(net.layers.size()) - 1;
  Halide::Func output = lowered.apiOutput(last);
  scheduleApiOutput(output, net.outputShape(), options);
  // The batch stays a free extent even for the batch-1 entry point: pinning
  // it to 1 made Halide 14 drop the whole body of a dense pipeline split
  // with rfactor (an empty function that returns success).
  pinLayout(lowered.input, net.inputShape);
  pinLayout(output.output_buffer(), net.outputShape());
  return Halide::Pipeline(output).compile_to_module(pipelineArguments(lowered), name, target);
}

// Every layer's output, for Model::activations (batchnorms not folded, so
// that a conv's own output is what it shows).
Halide::Module activationsModule(const Network& net, const Halide::Target& target, const std::string& name) {
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference, /*foldBatchNorms=*/false);
  scheduleForward(net, lowered, ScheduleOptions{target, false});
  std::vector<Halide::Func> outputs;
  for (size_t i = 0; i < net.layers.size(); ++i) {
    Halide::Func out = lowered.apiOutput(static_cast<int>(i));
    scheduleApiOutput(out, net.layers[i].outputShape, ScheduleOptions{target, false});
    pinLayout(out.output_buffer(), net.layers[i].outputShape);
    outputs.push_back(out);
  }
  pinLayout(lowered.input, net.inputShape);
  return Halide::Pipeline(outputs).compile_to_module(pipelineArguments(lowered), name, target);
}

// The train step: input, labels or targets, parameters, dropout seed ->
// loss, a gradient or new running statistic per parameter, the output.
Halide::Module trainStepModule(const Network& net, const Halide::Target& target, const std::string& name) {
  LoweredTraining training = lowerTraining(net);
  scheduleTraining(net, training, ScheduleOptions{target, false});
  std::vector<Halide::Func> outputs = trainStepOutputs(training);
  scheduleApiOutput(outputs.back(), net.outputShape(), ScheduleOptions{target, false});
  pinLayout(training.network.input, net.inputShape);
  if (training.targets.defined()) pinLayout(training.targets, net.outputShape());
  pinLayout(outputs.back().output_buffer(), net.outputShape());
  for (size_t p = 0; p < training.network.params.size(); ++p) {
    const Halide::ImageParam& param = training.network.params[p];
    Halide::OutputImageParam gradient = outputs[p + 1].output_buffer();
    for (int d = 0; d < param.dimensions(); ++d)
      gradient.dim(d).set_bounds(param.dim(d).min(), param.dim(d).extent());
    // The pipeline reads these back with aligned vector loads (as it would
    // its own allocations); the runtime allocates them so, and a caller that
    // does not gets an error rather than a fault.
    gradient.set_host_alignment(kGradientAlignment);
  }
  return Halide::Pipeline(outputs).compile_to_module(trainStepArguments(training), name, target);
}

// One parameter's optimizer update, elementwise over its flattened elements
// and in place (each element is read before it is written, in one loop):
// torch.optim.SGD's or torch.optim.Adam's rule (runtime/Model.h gives the
// argument order).
Halide::Module optimizerModule(const Network& net, const Halide::Target& target, const std::string& name) {
  using Halide::Expr;
  Halide::Var i("i");
  Halide::ImageParam param(Halide::Float(32), 1, "param"), grad(Halide::Float(32), 1, "grad");
  Halide::Param<float> lr("lr"), weightDecay("weight_decay");
  Halide::Func update("update");
  std::vector<Halide::Argument> args;
  Expr g = grad(i) + weightDecay * param(i);
  if (net.train->identAttr("optimizer") == "adam") {
    Halide::ImageParam m(Halide::Float(32), 1, "exp_avg"), v(Halide::Float(32), 1, "exp_avg_sq");
    Halide::Param<float> beta1("beta1"), beta2("beta2"), eps("eps"), correction1("bias_correction1"),
        correction2("bias_correction2");
    Expr newM = beta1 * m(i) + (1.0f - beta1) * g;
    Expr newV = beta2 * v(i) + (1.0f - beta2) * g * g;
    Expr denom = Halide::sqrt(newV) / Halide::sqrt(correction2) + eps;
    update(i) = {param(i) - (lr / correction1) * newM / denom, newM, newV};
    args = {param, grad, m, v, lr, beta1, beta2, eps, weightDecay, correction1, correction2};
  } else {
    Halide::ImageParam velocity(Halide::Float(32), 1, "velocity");
    Halide::Param<float> momentum("momentum");
    Halide::Param<bool> nesterov("nesterov");
    Expr newVelocity = momentum * velocity(i) + g;
    Expr step = Halide::select(nesterov, g + momentum * newVelocity, newVelocity);
    update(i) = {param(i) - lr * step, newVelocity};
    args = {param, grad, velocity, lr, momentum, weightDecay, nesterov};
  }
  int vec = floatVectorWidth(target);
  Halide::Var io("io"), ii("ii");
  update.compute_root().split(i, io, ii, vec * 256, Halide::TailStrategy::GuardWithIf).parallel(io)
      .vectorize(ii, vec, Halide::TailStrategy::GuardWithIf);
  return Halide::Pipeline(update).compile_to_module(args, name, target);
}

}  // namespace

void emitLibrary(const Network& net, const EmitOptions& options) {
  auto log = [&](const std::string& stage, const std::string& detail) {
    if (options.log) options.log(stage, detail);
  };
  Halide::Target target = parseTarget(options.target);
  fs::path library = options.libraryPath;
  ScratchDirectory scratch(library);
  std::string prefix = symbolPrefix(net);

  bool wantLibrary = options.emit.count("lib") || options.emit.count("stmt") || options.emit.count("assembly");
  if (wantLibrary) {
    std::vector<Halide::Module> modules;
    modules.push_back(forwardModule(net, target, false, options.schedule, prefix + "_forward"));
    log("lower", "forward (batch N)");
    modules.push_back(forwardModule(net, target, true, options.schedule, prefix + "_forward_one"));
    log("lower", "forward (batch 1)");
    modules.push_back(activationsModule(net, target, prefix + "_activations"));
    log("lower", "activations");
    if (net.train && options.training) {
      modules.push_back(trainStepModule(net, target, prefix + "_train_step"));
      log("lower", "train step");
      modules.push_back(optimizerModule(net, target, prefix + "_optimizer_update"));
      log("lower", "optimizer update");
    }
    Halide::Module linked = Halide::link_modules(prefix, modules);

    std::map<Halide::OutputFileType, std::string> outputs = {
        {Halide::OutputFileType::object, (scratch / "pipelines.o").string()}};
    fs::path stem = library;
    stem.replace_extension();
    if (options.emit.count("stmt")) outputs[Halide::OutputFileType::stmt] = (scratch / "pipelines.stmt").string();
    if (options.emit.count("assembly"))
      outputs[Halide::OutputFileType::assembly] = (scratch / "pipelines.s").string();
    linked.compile(outputs);
    log("compile", fmt::format("pipelines for {}", target.to_string()));

    if (options.emit.count("stmt")) commit(scratch / "pipelines.stmt", stem.string() + ".stmt");
    if (options.emit.count("assembly")) commit(scratch / "pipelines.s", stem.string() + ".s");

    if (options.emit.count("lib")) {
      Halide::compile_standalone_runtime((scratch / "halide_runtime.o").string(), target);
      writeBytes(scratch / "cnnc_runtime.o", cnnc_runtime_objects_begin,
                 static_cast<size_t>(cnnc_runtime_objects_end - cnnc_runtime_objects_begin));
      Halide::create_static_library({(scratch / "pipelines.o").string(), (scratch / "halide_runtime.o").string(),
                                     (scratch / "cnnc_runtime.o").string()},
                                    target, (scratch / "library.a").string());
      commit(scratch / "library.a", library);
      log("archive", library.string());
    }
  }
  if (options.emit.count("header")) {
    std::string header = generateHeader(net, options.training);
    writeBytes(scratch / "header.h", header.data(), header.size());
    commit(scratch / "header.h", options.headerPath);
    log("header", options.headerPath);
  }
}

}  // namespace cnnc
