#include "Emit.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include <Halide.h>

#include "ChildProcesses.h"
#include "Diagnostics.h"
#include "LayerPipelines.h"
#include "Lowering.h"
#include "NetworkSchedule.h"
#include "PreparedParams.h"
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
      throw EmitError(fmt::format("cannot create a scratch directory in '{}': {}", parent.string(),
                                  error.message()));
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
      throw EmitError(
          fmt::format("invalid --target '{}' (a Halide target string such as "
                      "x86-64-linux-avx2-fma, or host)",
                      text));
    target = Halide::Target(text);
  }
  return target.with_feature(Halide::Target::NoRuntime);
}

// The batch-N or batch-1 forward pass: input, parameters -> the last layer.
// Conv and dense parameters come `prepared` (PreparedParams.h).
Halide::Module forwardModule(const Network& net, const Halide::Target& target, bool batchOne,
                             const ScheduleOverrides& overrides,
                             const std::vector<PreparedLayer>& prepared, const std::string& name) {
  ScheduleOptions options{target, batchOne, &overrides};
  options.examplesFused = true;
  options.writesApiOutput = true;
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference, true, Halide::Expr(), {},
                                        convWeightBlocks(net, options), prepared);
  Halide::Func output = lowered.apiOutput(static_cast<int>(net.layers.size()) - 1);
  scheduleForward(net, lowered, options, output);
  // The batch stays a free extent even for the batch-1 entry point: pinning
  // it to 1 made Halide 14 drop the whole body of a dense pipeline split
  // with rfactor (an empty function that returns success).
  pinApiLayout(lowered.input, net.inputShape);
  pinApiLayout(output.output_buffer(), net.outputShape());
  return Halide::Pipeline(output).compile_to_module(lowered.arguments(), name, target);
}

// Every layer's output, for Model::activations (batchnorms not folded, so
// that a conv's own output is what it shows).
Halide::Module activationsModule(const Network& net, const Halide::Target& target,
                                 const std::string& name) {
  ScheduleOptions options{target, false};
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference, /*foldBatchNorms=*/false,
                                        Halide::Expr(), {}, convWeightBlocks(net, options));
  scheduleForward(net, lowered, options);
  std::vector<Halide::Func> outputs;
  for (size_t i = 0; i < net.layers.size(); ++i) {
    Halide::Func out = lowered.apiOutput(static_cast<int>(i));
    scheduleApiOutput(out, lowered.layers[i].value.func, net.layers[i].outputShape,
                      ScheduleOptions{target, false});
    pinApiLayout(out.output_buffer(), net.layers[i].outputShape);
    outputs.push_back(out);
  }
  pinApiLayout(lowered.input, net.inputShape);
  return Halide::Pipeline(outputs).compile_to_module(lowered.arguments(), name, target);
}

// The train step: input, labels or targets, parameters, dropout seed ->
// loss, a gradient or new running statistic per parameter, the output.
Halide::Module trainStepModule(const Network& net, const Halide::Target& target,
                               const std::string& name) {
  LoweredTraining training = lowerTraining(net);
  scheduleTraining(net, training, ScheduleOptions{target, false});
  std::vector<Halide::Func> outputs = trainStepOutputs(training);
  scheduleApiOutput(outputs.back(), training.network.layers.back().value.func, net.outputShape(),
                    ScheduleOptions{target, false});
  pinApiLayout(training.network.input, net.inputShape);
  if (training.targets.defined()) pinApiLayout(training.targets, net.outputShape());
  pinApiLayout(outputs.back().output_buffer(), net.outputShape());
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
Halide::Module optimizerModule(const Network& net, const Halide::Target& target,
                               const std::string& name) {
  using Halide::Expr;
  Halide::Var i("i");
  Halide::ImageParam param(Halide::Float(32), 1, "param"), grad(Halide::Float(32), 1, "grad");
  Halide::Param<float> lr("lr"), weightDecay("weight_decay");
  Halide::Func update("update");
  std::vector<Halide::Argument> args;
  Expr g = grad(i) + weightDecay * param(i);
  if (net.train->identAttr("optimizer") == "adam") {
    Halide::ImageParam m(Halide::Float(32), 1, "exp_avg"), v(Halide::Float(32), 1, "exp_avg_sq");
    Halide::Param<float> beta1("beta1"), beta2("beta2"), eps("eps"),
        correction1("bias_correction1"), correction2("bias_correction2");
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
  update.compute_root()
      .split(i, io, ii, vec * 256, Halide::TailStrategy::GuardWithIf)
      .parallel(io)
      .vectorize(ii, vec, Halide::TailStrategy::GuardWithIf);
  return Halide::Pipeline(update).compile_to_module(args, name, target);
}

// One pipeline of the library: its C name and how to build it for a target.
struct PipelineJob {
  std::string description;  // for the log: "forward (batch N)"
  std::string function;     // the C symbol
  Halide::ModuleFactory build;
};

// The forward entry points split into layer functions, or none (whole).
std::vector<LayerSplit> layerSplits(const Network& net, const EmitOptions& options) {
  if (options.split == EmitOptions::Split::Whole ||
      (options.split == EmitOptions::Split::Auto && !splitByDefault(net)))
    return {};
  std::string prefix = symbolPrefix(net);
  std::vector<LayerSplit> splits = {
      planLayerSplit(net, ForwardEntry::BatchN, options.schedule, prefix + "_forward"),
      planLayerSplit(net, ForwardEntry::BatchOne, options.schedule, prefix + "_forward_one"),
      planLayerSplit(net, ForwardEntry::Activations, options.schedule, prefix + "_activations")};
  for (const LayerSplit& split : splits) {
    if (fitsLayerCalls(net, split)) continue;
    if (options.split == EmitOptions::Split::Layers)
      throw EmitError(fmt::format(
          "--pipelines layers: a layer of '{}' reads more than {} feature maps or parameter "
          "tensors; compile it whole (--pipelines whole)",
          net.name, kMaxCallArguments));
    return {};
  }
  return splits;
}

// The prepared layers a split entry point's functions take: none for the
// activations, which fold no batchnorm and pack per call.
const std::vector<PreparedLayer>& preparedFor(const LayerSplit& split,
                                              const std::vector<PreparedLayer>& prepared) {
  static const std::vector<PreparedLayer> none;
  return split.entry == ForwardEntry::Activations ? none : prepared;
}

std::vector<PipelineJob> pipelineJobs(const Network& net, const EmitOptions& options,
                                      const std::vector<LayerSplit>& splits,
                                      const std::vector<Halide::Target>& targets,
                                      const std::vector<PreparedLayer>& prepared) {
  std::string prefix = symbolPrefix(net);
  const ScheduleOverrides* overrides = &options.schedule;
  std::vector<PipelineJob> jobs;
  // The largest first, so that the parallel compiles finish together.
  if (net.train && options.training)
    jobs.push_back({"train step", prefix + "_train_step",
                    [&net](const std::string& name, const Halide::Target& t) {
                      return trainStepModule(net, t, name);
                    }});
  if (splits.empty()) {
    jobs.push_back({"forward (batch N)", prefix + "_forward",
                    [&net, overrides, &prepared](const std::string& name, const Halide::Target& t) {
                      return forwardModule(net, t, false, *overrides, prepared, name);
                    }});
    jobs.push_back({"forward (batch 1)", prefix + "_forward_one",
                    [&net, overrides, &prepared](const std::string& name, const Halide::Target& t) {
                      return forwardModule(net, t, true, *overrides, prepared, name);
                    }});
    jobs.push_back({"activations", prefix + "_activations",
                    [&net](const std::string& name, const Halide::Target& t) {
                      return activationsModule(net, t, name);
                    }});
  }
  const char* entryNames[] = {"forward (batch N)", "forward (batch 1)", "activations"};
  for (size_t e = 0; e < splits.size(); ++e) {
    const LayerSplit* split = &splits[e];
    const std::vector<PreparedLayer>* preparedLayers = &preparedFor(*split, prepared);
    for (size_t f = 0; f < split->functions.size(); ++f) {
      const LayerSplit::Function& function = split->functions[f];
      std::string alike =
          function.uses > 1 ? fmt::format(" (and {} alike)", function.uses - 1) : "";
      jobs.push_back(
          {fmt::format("{}: {}{}", entryNames[e], net.layers[function.layer].name, alike),
           function.symbol,
           [&net, split, overrides, f, &targets, preparedLayers](const std::string& name,
                                                                 const Halide::Target& t) {
             return layerFunctionModule(net, *split, static_cast<int>(f), *overrides, targets,
                                        *preparedLayers, t, name);
           }});
    }
  }
  for (const PrepareFunction& function : prepareFunctions(net, prepared, prefix)) {
    int layer = function.layer;
    jobs.push_back({fmt::format("prepare: {}", net.layers[layer].name), function.symbol,
                    [&net, &prepared, layer](const std::string& name, const Halide::Target& t) {
                      return prepareModule(net, prepared, layer, t, name);
                    }});
  }
  if (net.train && options.training)
    jobs.push_back({"optimizer update", prefix + "_optimizer_update",
                    [&net](const std::string& name, const Halide::Target& t) {
                      return optimizerModule(net, t, name);
                    }});
  return jobs;
}

std::vector<LayerCallTable> layerCallTables(const Network& net,
                                            const std::vector<LayerSplit>& splits,
                                            const EmitOptions& options,
                                            const std::vector<Halide::Target>& targets,
                                            const std::vector<PreparedLayer>& prepared) {
  std::vector<LayerCallTable> tables;
  for (const LayerSplit& split : splits) {
    LayerCallTable& table = tables.emplace_back();
    for (size_t i = 0; i < net.layers.size(); ++i) {
      if (!split.separate[i]) continue;
      LayerCallRow row;
      row.symbol = split.functions[split.functionOf[i]].symbol;
      row.layer = static_cast<int>(i);
      row.sources = split.sources[i];
      row.params = callParameters(net, preparedFor(split, prepared), split.paramLayers[i]);
      row.extents = callExtents(net, split, static_cast<int>(i), options.schedule, targets);
      table.push_back(row);
    }
  }
  return tables;
}

std::vector<PrepareCallRow> prepareCallRows(const Network& net,
                                            const std::vector<PreparedLayer>& prepared,
                                            const std::string& prefix) {
  std::vector<PrepareFunction> functions = prepareFunctions(net, prepared, prefix);
  std::vector<int> functionOf = prepareFunctionOf(net, prepared);
  std::vector<PrepareCallRow> rows;
  for (const PreparedLayer& p : prepared) {
    if (p.layer < 0) continue;
    PrepareCallRow row;
    row.symbol = functions[functionOf[rows.size()]].symbol;
    std::vector<int> sources = {p.layer};
    if (p.batchNorm >= 0) sources.push_back(p.batchNorm);
    row.params = callParameters(net, {}, sources);
    std::vector<int> extents = p.weightExtents(net);
    std::copy(extents.begin(), extents.end(), row.extents.begin());
    rows.push_back(row);
  }
  return rows;
}

// A name for a target's variant of a pipeline: its features ("avx2_fma").
std::string variantSuffix(const Halide::Target& target) {
  std::string text = target.without_feature(Halide::Target::NoRuntime).to_string();
  Halide::Target bare(target.os, target.arch, target.bits);
  std::string base = bare.to_string();
  std::string features = text.size() > base.size() ? text.substr(base.size() + 1) : "baseline";
  for (char& c : features)
    if (c == '-') c = '_';
  return features;
}

// The Halide runtime for several targets: only the features all of them
// have, as it runs whichever variant is chosen.
Halide::Target commonRuntimeTarget(const std::vector<Halide::Target>& targets) {
  Halide::Target common(targets[0].os, targets[0].arch, targets[0].bits);
  for (int f = 0; f < Halide::Target::FeatureEnd; ++f) {
    auto feature = static_cast<Halide::Target::Feature>(f);
    bool everywhere = true;
    for (const Halide::Target& t : targets) everywhere = everywhere && t.has_feature(feature);
    if (everywhere) common.set_feature(feature);
  }
  return common;
}

// Files in `directory` with the extension, in name order.
std::vector<fs::path> filesWithExtension(const fs::path& directory, const std::string& extension) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(directory))
    if (entry.path().extension() == extension) found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

void concatenate(const std::vector<fs::path>& parts, const fs::path& to) {
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  for (const fs::path& part : parts) {
    std::ifstream in(part, std::ios::binary);
    out << in.rdbuf();
  }
  out.flush();
  if (!out) throw EmitError(fmt::format("cannot write '{}'", to.string()));
}

}  // namespace

std::vector<Halide::Target> parseTargets(const std::string& text) {
  std::vector<Halide::Target> targets;
  size_t begin = 0;
  while (true) {
    size_t comma = text.find(',', begin);
    std::string one =
        text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    if (one.empty())
      throw EmitError(fmt::format("invalid --target '{}': an empty target in the list", text));
    targets.push_back(parseTarget(one));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  for (const Halide::Target& t : targets) {
    if (t.os != targets[0].os || t.arch != targets[0].arch || t.bits != targets[0].bits)
      throw EmitError(fmt::format(
          "invalid --target '{}': the targets of one library must share architecture, bits and OS "
          "({} and {})",
          text, Halide::Target(targets[0].os, targets[0].arch, targets[0].bits).to_string(),
          Halide::Target(t.os, t.arch, t.bits).to_string()));
  }
  return targets;
}

void emitLibrary(const Network& net, const EmitOptions& options) {
  auto log = [&](const std::string& stage, const std::string& detail) {
    if (options.log) options.log(stage, detail);
  };
  std::vector<Halide::Target> targets = parseTargets(options.target);
  fs::path library = options.libraryPath;
  ScratchDirectory scratch(library);
  std::vector<LayerSplit> splits = layerSplits(net, options);
  std::vector<PreparedLayer> prepared =
      planPreparedLayers(net, options.schedule, targets, !splits.empty());

  bool wantLibrary =
      options.emit.count("lib") || options.emit.count("stmt") || options.emit.count("assembly");
  if (wantLibrary) {
    // Each pipeline is lowered and compiled in a process of its own, into a
    // folder of its own: with several targets, Halide's compile_multitarget
    // writes a variant per target and a wrapper that picks the first whose
    // features the CPU has (the last target is the fallback, unchecked).
    std::vector<PipelineJob> jobs = pipelineJobs(net, options, splits, targets, prepared);
    std::vector<ChildJob> children;
    std::vector<fs::path> folders;
    for (size_t j = 0; j < jobs.size(); ++j) {
      folders.push_back(scratch / fmt::format("pipeline{}", j));
      fs::create_directory(folders.back());
      std::map<Halide::OutputFileType, std::string> outputs = {
          {Halide::OutputFileType::object, (folders.back() / "pipeline.o").string()}};
      if (options.emit.count("stmt"))
        outputs[Halide::OutputFileType::stmt] = (folders.back() / "pipeline.stmt").string();
      if (options.emit.count("assembly"))
        outputs[Halide::OutputFileType::assembly] = (folders.back() / "pipeline.s").string();
      const PipelineJob& job = jobs[j];
      children.push_back({job.description, [&job, outputs, &targets] {
                            if (targets.size() == 1) {
                              job.build(job.function, targets[0]).compile(outputs);
                              return;
                            }
                            std::vector<std::string> suffixes;
                            for (const Halide::Target& t : targets)
                              suffixes.push_back(variantSuffix(t));
                            Halide::compile_multitarget(job.function, outputs, targets, suffixes,
                                                        job.build);
                          }});
    }
    std::string targetNames;
    for (const Halide::Target& t : targets)
      targetNames += (targetNames.empty() ? "" : ", ") + t.to_string();
    runChildJobs(children, availableCores(), [&](const std::string& description, double seconds) {
      log("compile", fmt::format("{} for {} in {:.1f} s", description, targetNames, seconds));
    });

    // create_static_library takes its objects from one folder.
    std::vector<std::string> objects;
    std::vector<fs::path> stmts, assemblies;
    for (size_t j = 0; j < folders.size(); ++j) {
      const fs::path& folder = folders[j];
      for (const fs::path& object : filesWithExtension(folder, ".o")) {
        fs::path flat = scratch / fmt::format("{}_{}", j, object.filename().string());
        fs::rename(object, flat);
        objects.push_back(flat.string());
      }
      for (const fs::path& stmt : filesWithExtension(folder, ".stmt")) stmts.push_back(stmt);
      for (const fs::path& assembly : filesWithExtension(folder, ".s"))
        assemblies.push_back(assembly);
    }
    fs::path stem = library;
    stem.replace_extension();
    if (options.emit.count("stmt")) {
      concatenate(stmts, scratch / "pipelines.stmt");
      commit(scratch / "pipelines.stmt", stem.string() + ".stmt");
    }
    if (options.emit.count("assembly")) {
      concatenate(assemblies, scratch / "pipelines.s");
      commit(scratch / "pipelines.s", stem.string() + ".s");
    }

    if (options.emit.count("lib")) {
      Halide::Target runtimeTarget =
          targets.size() == 1 ? targets[0] : commonRuntimeTarget(targets);
      Halide::compile_standalone_runtime((scratch / "halide_runtime.o").string(), runtimeTarget);
      writeBytes(scratch / "cnnc_runtime.o", cnnc_runtime_objects_begin,
                 static_cast<size_t>(cnnc_runtime_objects_end - cnnc_runtime_objects_begin));
      objects.push_back((scratch / "halide_runtime.o").string());
      objects.push_back((scratch / "cnnc_runtime.o").string());
      Halide::create_static_library(objects, runtimeTarget, (scratch / "library.a").string());
      commit(scratch / "library.a", library);
      log("archive", library.string());
    }
  }
  if (options.emit.count("header")) {
    std::string header = generateHeader(net, options.training,
                                        layerCallTables(net, splits, options, targets, prepared),
                                        prepareCallRows(net, prepared, symbolPrefix(net)));
    writeBytes(scratch / "header.h", header.data(), header.size());
    commit(scratch / "header.h", options.headerPath);
    log("header", options.headerPath);
  }
}

}  // namespace cnnc
