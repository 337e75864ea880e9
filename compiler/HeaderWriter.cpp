// The generated header: the runtime's Model base class (embedded so the
// header stands alone), the network's constants and tables, and its Model.
#include <set>

#include <fmt/format.h>

#include "Emit.h"
#include "IRPrinter.h"
#include "Version.h"

namespace cnnc {

// runtime/Model.h's text, embedded at build time (RuntimeHeaderText.cpp).
extern const char* const kRuntimeHeaderText;

std::string architectureHash(const Network& net) {
  // FNV-1a over the IR with comments dropped: names, kinds, keys, shapes.
  std::string ir = printIR(net);
  uint64_t hash = 1469598103934665603ull;
  bool inComment = false;
  for (char ch : ir) {
    if (ch == '#') inComment = true;
    if (ch == '\n') inComment = false;
    if (inComment) continue;
    hash = (hash ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  }
  return fmt::format("{:016x}", hash);
}

std::string symbolPrefix(const Network& net) {
  return "cnnc_" + net.name;
}

namespace {

struct ParamRow {
  std::string name, init;
  const ParamSpec* spec;
  int64_t fanIn = 0, fanOut = 0;
};

std::vector<ParamRow> paramRows(const Network& net) {
  std::vector<ParamRow> rows;
  for (const Layer& layer : net.layers) {
    int64_t fanIn = 0, fanOut = 0;
    std::string scheme = "default";
    if (layer.kind == LayerKind::Conv2D) {
      const auto& w = layer.params[0].shape;  // [K, C/g, kh, kw]
      fanIn = w[1] * w[2] * w[3];
      fanOut = w[0] * w[2] * w[3];
      scheme = layer.identAttr("init");
    } else if (layer.kind == LayerKind::Dense) {
      fanIn = layer.params[0].shape[1];
      fanOut = layer.params[0].shape[0];
      scheme = layer.identAttr("init");
    }
    for (const ParamSpec& spec : layer.params) {
      std::string init = scheme;
      if (layer.kind == LayerKind::BatchNorm)
        init = spec.name == "weight" || spec.name == "running_var" ? "ones" : "zeros";
      else if (spec.name == "bias" && scheme != "default")
        init = "zeros";  // explicit schemes draw weights; biases start at zero
      rows.push_back({layer.name + "." + spec.name, init, &spec, fanIn, fanOut});
    }
  }
  return rows;
}

std::string shapeList(const std::vector<int64_t>& dims, size_t width) {
  std::vector<int64_t> padded = dims;
  padded.resize(width, 0);
  return fmt::format("{{{}}}", fmt::join(padded, ", "));
}

// The .net file's train settings, each key's default where it does not apply.
std::string trainConfig(const Network& net, const std::string& prefix) {
  const TrainSettings& t = *net.train;
  auto number = [&](const char* key, double fallback) {
    return t.has(key) ? t.floatAttr(key) : fallback;
  };
  auto integer = [&](const char* key, int64_t fallback) {
    return t.has(key) ? t.intAttr(key) : fallback;
  };
  return fmt::format(
      "// The .net file's training settings.\n"
      "inline const cnnc::TrainConfig kTrain = {{\n"
      "    \"{}\", \"{}\", {}, {}, {}, {}, {}, {}, {},\n"
      "    \"{}\", {}, {}, {}, {}, {}ull,\n"
      "    {}_train_step_argv, {}_optimizer_update_argv}};\n\n",
      t.identAttr("loss"), t.has("optimizer") ? t.identAttr("optimizer") : "sgd",
      number("lr", 0.01), number("momentum", 0),
      t.has("nesterov") && t.boolAttr("nesterov") ? "true" : "false", number("beta1", 0.9),
      number("beta2", 0.999), number("eps", 1e-8), number("weight_decay", 0),
      t.has("lr_schedule") ? t.identAttr("lr_schedule") : "constant", integer("step_size", 1),
      number("gamma", 0.1), integer("batch", 64), integer("epochs", 10),
      static_cast<uint64_t>(integer("seed", 0)), prefix, prefix);
}

}  // namespace

namespace {

std::string intList(const std::vector<int>& values) {
  std::string text;
  for (int v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
  return "{" + text + "}";
}

// A split entry point's calls, as `kName` (a cnnc::LayerProgram).
std::string layerProgram(const LayerCallTable& calls, const std::string& name) {
  std::string out = fmt::format("inline const cnnc::LayerCall {}Calls[] = {{\n", name);
  for (const LayerCallRow& call : calls)
    out += fmt::format("    {{{}_argv, {}, {}, {}, {}, {}, {{{}, {}, {}}}}},\n", call.symbol,
                       call.layer, call.sources.size(), intList(call.sources), call.params.size(),
                       intList(call.params), call.extents[0], call.extents[1], call.extents[2]);
  return out + fmt::format("}};\ninline const cnnc::LayerProgram {0} = {{{0}Calls, {1}}};\n\n",
                           name, calls.size());
}

// The prepared layers, as `kPrepare` (cnnc::PrepareCall rows).
std::string prepareTable(const std::vector<PrepareCallRow>& prepares) {
  std::string out = "inline const cnnc::PrepareCall kPrepare[] = {\n";
  for (const PrepareCallRow& row : prepares)
    out += fmt::format("    {{{}_argv, {}, {}, {{{}}}}},\n", row.symbol, row.params.size(),
                       intList(row.params), fmt::join(row.extents, ", "));
  return out + "};\n\n";
}

}  // namespace

std::string generateHeader(const Network& net, bool training,
                           const std::vector<LayerCallTable>& calls,
                           const std::vector<PrepareCallRow>& prepares) {
  bool trains = net.train && training;
  std::string prefix = symbolPrefix(net);
  const Shape& in = net.inputShape;
  std::string out = fmt::format(
      "// {}.h: the network '{}', generated by cnnc {}. Do not edit.\n"
      "// Link: c++ -std=c++17 -O2 app.cpp {}.a -lpthread -ldl -lz -o app\n"
      "#pragma once\n\n",
      net.name, net.name, kVersion, net.name);
  out += kRuntimeHeaderText;
  std::set<std::string> functions;
  if (calls.empty())
    functions = {prefix + "_forward", prefix + "_forward_one", prefix + "_activations"};
  for (const LayerCallTable& table : calls)
    for (const LayerCallRow& call : table) functions.insert(call.symbol);
  if (trains) functions.insert({prefix + "_train_step", prefix + "_optimizer_update"});
  for (const PrepareCallRow& row : prepares) functions.insert(row.symbol);
  out += "\nextern \"C\" {\n";
  for (const std::string& function : functions)
    out += fmt::format("int {}_argv(void**);\n", function);
  out += "}\n\n";
  out += fmt::format("namespace {} {{\n\n", net.name);
  if (in.isImage())
    out += fmt::format(
        "inline constexpr int kChannels = {};\ninline constexpr int kHeight = {};\n"
        "inline constexpr int kWidth = {};\n",
        in.channels(), in.height(), in.width());
  else
    out += fmt::format("inline constexpr int kInputSize = {};\n", in.dims[0]);
  out += fmt::format(
      "// Floats in one example's output ({}).\ninline constexpr int kOutputs = {};\n\n",
      net.outputShape().str(), net.outputShape().elements());

  std::vector<ParamRow> rows = paramRows(net);
  out += "inline const cnnc::ParamInfo kParams[] = {\n";
  for (const ParamRow& row : rows)
    out += fmt::format("    {{\"{}\", {}, {}, {}, \"{}\", {}, {}}},\n", row.name,
                       row.spec->shape.size(), shapeList(row.spec->shape, 4),
                       row.spec->trainable ? "true" : "false", row.init, row.fanIn, row.fanOut);
  if (rows.empty())
    out += "    {\"\", 0, {0, 0, 0, 0}, false, \"zeros\", 0, 0},  // no parameters\n";
  out += "};\n\ninline const cnnc::LayerInfo kLayers[] = {\n";
  for (const Layer& layer : net.layers)
    out += fmt::format("    {{\"{}\", \"{}\", {}, {}}},\n", layer.name, kindName(layer.kind),
                       layer.outputShape.dims.size(), shapeList(layer.outputShape.dims, 3));
  out += "};\n\n";
  if (trains) out += trainConfig(net, prefix);
  bool split = !calls.empty();
  if (split) {
    out += "// The entry points as one compiled function per stored layer, called in order.\n";
    out += layerProgram(calls[0], "kForward") + layerProgram(calls[1], "kForwardOne") +
           layerProgram(calls[2], "kActivations");
  }
  if (!prepares.empty()) {
    out +=
        "// Conv and dense parameters as the forward entry points take them, prepared per "
        "change.\n";
    out += prepareTable(prepares);
  }
  out += fmt::format(
      "inline const cnnc::NetworkInfo kNetwork = {{\n"
      "    \"{}\", \"{}\", {}, {}, {}, {}, {},\n"
      "    kParams, {}, kLayers, {},\n"
      "    {}, {},\n    {},\n    {}, {}}};\n\n",
      net.name, architectureHash(net), in.dims.size(), shapeList(in.dims, 3), in.elements(),
      net.outputShape().elements(), net.outputShape().dims.size(), rows.size(), net.layers.size(),
      split ? "nullptr, nullptr, nullptr"
            : fmt::format("{0}_forward_argv, {0}_forward_one_argv, {0}_activations_argv", prefix),
      trains ? "&kTrain" : "nullptr",
      split ? "&kForward, &kForwardOne, &kActivations" : "nullptr, nullptr, nullptr",
      prepares.empty() ? "nullptr" : "kPrepare", prepares.size());
  out += fmt::format(
      "// The network with its parameters. Model(seed) initializes them per the\n"
      "// .net file's init rules; load() reads PyTorch-compatible safetensors.\n"
      "class Model : public cnnc::ModelBase {{\n"
      " public:\n"
      "  explicit Model(uint64_t seed = 0) : cnnc::ModelBase(kNetwork, seed) {{}}\n"
      "}};\n\n}}  // namespace {}\n",
      net.name);
  return out;
}

}  // namespace cnnc
