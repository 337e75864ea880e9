#include "Sema.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include <fmt/format.h>

#include "Diagnostics.h"
#include "LayerKinds.h"

namespace cnnc {

const std::vector<KeySpec>& trainKeys() {
  static const std::vector<KeySpec> keys = [] {
    KeySpec loss{"loss", ValueType::Enum, ""};
    loss.choices = {"cross_entropy", "mse"};
    KeySpec optimizer{"optimizer", ValueType::Enum, "sgd"};
    optimizer.choices = {"sgd", "adam"};
    KeySpec schedule{"lr_schedule", ValueType::Enum, "constant"};
    schedule.choices = {"constant", "step", "cosine"};
    constexpr double kHuge = 1e30;
    return std::vector<KeySpec>{
        loss,
        optimizer,
        {"lr", ValueType::Float, "0.01", 0, kHuge, false},
        {"momentum", ValueType::Float, "0", 0, kHuge},
        {"nesterov", ValueType::Bool, "false"},
        {"beta1", ValueType::Float, "0.9", 0, 1, true, false},
        {"beta2", ValueType::Float, "0.999", 0, 1, true, false},
        {"eps", ValueType::Float, "1e-8", 0, kHuge, false},
        {"weight_decay", ValueType::Float, "0", 0, kHuge},
        schedule,
        {"step_size", ValueType::Int, ""},
        {"gamma", ValueType::Float, "0.1", 0, kHuge, false},
        {"batch", ValueType::Int, "64"},
        {"epochs", ValueType::Int, "10"},
        {"seed", ValueType::Int, "0", 0, 9.2e18},
    };
  }();
  return keys;
}

namespace {

const std::set<std::string> kCppKeywords = {"alignas",       "alignof",     "and",
                                            "and_eq",        "asm",         "auto",
                                            "bitand",        "bitor",       "bool",
                                            "break",         "case",        "catch",
                                            "char",          "char8_t",     "char16_t",
                                            "char32_t",      "class",       "compl",
                                            "concept",       "const",       "consteval",
                                            "constexpr",     "constinit",   "const_cast",
                                            "continue",      "co_await",    "co_return",
                                            "co_yield",      "decltype",    "default",
                                            "delete",        "do",          "double",
                                            "dynamic_cast",  "else",        "enum",
                                            "explicit",      "export",      "extern",
                                            "false",         "float",       "for",
                                            "friend",        "goto",        "if",
                                            "inline",        "int",         "long",
                                            "mutable",       "namespace",   "new",
                                            "noexcept",      "not",         "not_eq",
                                            "nullptr",       "operator",    "or",
                                            "or_eq",         "private",     "protected",
                                            "public",        "register",    "reinterpret_cast",
                                            "requires",      "return",      "short",
                                            "signed",        "sizeof",      "static",
                                            "static_assert", "static_cast", "struct",
                                            "switch",        "template",    "this",
                                            "thread_local",  "throw",       "true",
                                            "try",           "typedef",     "typeid",
                                            "typename",      "union",       "unsigned",
                                            "using",         "virtual",     "void",
                                            "volatile",      "wchar_t",     "while",
                                            "xor",           "xor_eq",      "std",
                                            "cnnc",          "Halide"};

std::string describeRange(const KeySpec& spec) {
  std::string low = spec.minInclusive ? fmt::format("at least {}", spec.min)
                                      : fmt::format("greater than {}", spec.min);
  if (spec.max >= 1e18 ||
      (spec.max == std::numeric_limits<int32_t>::max() && spec.type != ValueType::Float))
    return low;
  std::string high = spec.maxInclusive ? fmt::format("at most {}", spec.max)
                                       : fmt::format("less than {}", spec.max);
  return low + " and " + high;
}

class Analyzer {
 public:
  explicit Analyzer(Diagnostics& diags) : diags_(diags) {}

  Network run(const FileAST& file) {
    if (file.statements.empty() && !diags_.hasErrors()) {
      diags_.error({file.end.file, 1, 1, 1}, "file has no statements; expected 'network NAME'");
      return std::move(net_);
    }
    // Every layer's name up front, to tell a later layer from an unknown one.
    std::map<std::string, int> counts;
    for (const Statement& s : file.statements) {
      laterNetwork_ = laterNetwork_ || s.kind == StatementKind::Network;
      if (s.kind != StatementKind::Layer && !(s.kind == StatementKind::Unknown && s.name)) continue;
      int count = ++counts[s.keyword.text];
      std::string name = s.name ? s.name->text : fmt::format("{}{}", s.keyword.text, count);
      allNames_.emplace(name, s.keyword.loc.line);
    }
    for (size_t i = 0; i < file.statements.size(); ++i) {
      const Statement& s = file.statements[i];
      // A misspelt `network`, or one out of place, is reported where it stands.
      if (i == 0 && (s.kind == StatementKind::Unknown || laterNetwork_)) networkReported_ = true;
      if (i == 0 && s.kind != StatementKind::Network && !networkReported_) {
        diags_.error(s.keyword.loc,
                     fmt::format("expected 'network NAME' as the first statement, found '{}'",
                                 s.keyword.text));
        networkReported_ = true;
      }
      switch (s.kind) {
        case StatementKind::Network:
          networkStatement(s, i);
          break;
        case StatementKind::Input:
          inputStatement(s);
          break;
        case StatementKind::Layer:
          layerStatement(s);
          break;
        case StatementKind::Train:
          trainStatement(s);
          break;
        case StatementKind::Unknown:
          unknownStatement(s);
          break;
      }
    }
    if (!seenNetwork_ && !networkReported_)
      diags_.error(file.end, "missing 'network NAME' statement");
    if (!inputLoc_ && !inputReported_) diags_.error(file.end, "missing 'input' statement");
    // A layer statement that failed to parse would have been one.
    if (net_.layers.empty() && !diags_.hasErrors())
      diags_.error(file.end, "the network has no layers");
    if (trainLoc_) checkTrain();
    return std::move(net_);
  }

 private:
  // ---- statements ----------------------------------------------------------

  void networkStatement(const Statement& s, size_t index) {
    if (seenNetwork_) {
      diags_.error(s.keyword.loc,
                   fmt::format("'network' given twice; the first is at line {}", net_.loc.line));
      return;
    }
    seenNetwork_ = true;
    if (index != 0) diags_.error(s.keyword.loc, "'network' must be the first statement");
    const Token& name = *s.argument;
    if (kCppKeywords.count(name.text) || name.text.rfind("__", 0) == 0)
      diags_.error(
          name.loc,
          fmt::format("network name '{}' cannot be a C++ namespace; choose another", name.text));
    net_.name = name.text;
    net_.loc = s.keyword.loc;
  }

  void inputStatement(const Statement& s) {
    if (inputLoc_) {
      diags_.error(s.keyword.loc,
                   fmt::format("'input' given twice; the first is at line {}", inputLoc_->line));
      return;
    }
    inputLoc_ = s.keyword.loc;
    if (!net_.layers.empty()) {
      diags_.error(s.keyword.loc, "'input' must come before the first layer");
      return;
    }
    const Token& shapeToken = *s.argument;
    std::vector<int64_t> dims;
    bool ok = true;
    size_t start = 0;
    const std::string& text = shapeToken.text;
    while (ok && start <= text.size()) {
      size_t end = text.find('x', start);
      if (end == std::string::npos) end = text.size();
      auto dim = parseInteger(text.substr(start, end - start), shapeToken.loc, "input size");
      ok = dim.has_value();
      if (ok && *dim < 1) {
        diags_.error(shapeToken.loc, fmt::format("input sizes must be at least 1, got {}", text));
        ok = false;
      }
      if (ok) dims.push_back(*dim);
      start = end + 1;
    }
    if (!ok) return;
    if (dims.size() != 1 && dims.size() != 3) {
      diags_.error(shapeToken.loc,
                   fmt::format("input is CxHxW (an image) or N (a vector), got {}", text));
      return;
    }
    Shape shape{dims};
    if (!checkElements(shape, shapeToken.loc, "the input")) return;
    net_.inputShape = shape;
    inputKnown_ = true;
  }

  // A named layer of an unknown kind keeps its name, so that layers reading
  // it do not report it missing; its shape stays unknown.
  void unknownStatement(const Statement& s) {
    if (!s.name) return;
    names_.emplace(s.name->text, static_cast<int>(net_.layers.size()));
    Layer layer;
    layer.name = s.name->text;
    layer.loc = s.keyword.loc;
    net_.layers.push_back(std::move(layer));
    known_.push_back(false);
  }

  void layerStatement(const Statement& s) {
    if (!inputLoc_ && !inputReported_) {
      diags_.error(s.keyword.loc, "a layer before the 'input' statement; declare 'input' first");
      inputReported_ = true;
    }
    const LayerKindInfo* info = findKind(s.keyword.text);
    std::string name = layerName(s, info);
    int index = static_cast<int>(net_.layers.size());
    if (!name.empty()) names_[name] = index;

    Layer layer;
    layer.name = name;
    layer.loc = s.keyword.loc;
    CNNC_INTERNAL_ASSERT(info, "the parser let an unknown layer kind through");
    bool ok = !name.empty();
    layer.kind = info->kind;

    // Keys: `from` is structure, the others attributes of the kind.
    std::vector<std::pair<std::string, Location>> keyLocations;
    const KeyValue* from = nullptr;
    std::vector<std::pair<std::string, Value>> values;
    std::set<std::string> written;  // valid or not: an invalid key is not also "missing"
    bool unknownKey = false;        // a misspelt key is not also "missing"
    for (const KeyValue& kv : s.keys) {
      written.insert(kv.key.text);
      if (!firstTimeKey(kv, keyLocations)) continue;
      keyLocations.push_back({kv.key.text, kv.value.loc});
      if (kv.key.text == "from") {
        from = &kv;
        continue;
      }
      const KeySpec* spec = findSpec(info->keys, kv.key.text);
      if (!spec) {
        std::vector<std::string> names = {"from"};
        for (const auto& k : info->keys) names.push_back(k.name);
        diags_.error(kv.key.loc, fmt::format("unknown key '{}' for {}{}", kv.key.text, info->name,
                                             didYouMean(kv.key.text, names)));
        ok = false;
        unknownKey = true;
        continue;
      }
      auto value = parseValue(*spec, kv.value);
      if (!value) {
        ok = false;
        continue;
      }
      values.push_back({spec->name, *value});
    }

    std::vector<int> inputs = resolveInputs(s, from, index, info, ok);
    for (const KeySpec& spec : info->keys) {
      auto it =
          std::find_if(values.begin(), values.end(), [&](auto& v) { return v.first == spec.name; });
      if (it != values.end()) {
        layer.attributes.push_back({spec.name, it->second});
      } else if (!spec.defaultFromKey.empty()) {
        auto source = std::find_if(values.begin(), values.end(),
                                   [&](auto& v) { return v.first == spec.defaultFromKey; });
        if (source != values.end()) layer.attributes.push_back({spec.name, source->second});
      } else if (spec.required()) {
        if (written.count(spec.name) || unknownKey) {
          ok = false;
          continue;
        }
        diags_.error(s.keyword.loc, fmt::format("{} '{}' is missing the required key '{}'",
                                                info->name, name, spec.name));
        ok = false;
      } else {
        layer.attributes.push_back({spec.name, *parseDefault(spec)});
      }
    }
    layer.inputs = inputs;

    // Shapes only when everything this layer stands on is known.
    bool shapeKnown = false;
    if (ok && std::all_of(inputs.begin(), inputs.end(), [&](int i) { return known(i); }) &&
        !inputs.empty()) {
      std::vector<Shape> inputShapes;
      std::vector<std::string> inputNames;
      for (int i : inputs) {
        inputShapes.push_back(net_.shapeOf(i));
        inputNames.push_back(i == kInputIndex ? "input" : net_.layers[i].name);
      }
      ShapeContext ctx(layer, inputShapes, inputNames, keyLocations, diags_);
      if (auto shape = info->inferShape(ctx)) {
        layer.outputShape = *shape;
        shapeKnown = checkElements(*shape, layer.loc, fmt::format("the output of '{}'", name));
        if (shapeKnown && info->params) layer.params = info->params(layer, inputShapes);
        for (const auto& p : layer.params)
          shapeKnown = shapeKnown && checkElements(Shape{p.shape}, layer.loc,
                                                   fmt::format("parameter '{}.{}'", name, p.name));
        if (shapeKnown && info->flops) layer.forwardFlops = info->flops(layer, inputShapes);
      }
    }
    net_.layers.push_back(std::move(layer));
    known_.push_back(shapeKnown);
  }

  void trainStatement(const Statement& s) {
    if (!trainLoc_) trainLoc_ = s.keyword.loc;
    for (const KeyValue& kv : s.keys) {
      auto previous = trainKeyLocations_.find(kv.key.text);
      if (previous != trainKeyLocations_.end()) {
        diags_.error(kv.key.loc, fmt::format("train key '{}' given twice; the first is at line {}",
                                             kv.key.text, previous->second.line));
        continue;
      }
      trainKeyLocations_[kv.key.text] = kv.key.loc;
      const KeySpec* spec = findSpec(trainKeys(), kv.key.text);
      if (!spec) {
        std::vector<std::string> names;
        for (const auto& k : trainKeys()) names.push_back(k.name);
        diags_.error(kv.key.loc, fmt::format("unknown train key '{}'{}", kv.key.text,
                                             didYouMean(kv.key.text, names)));
        continue;
      }
      if (auto value = parseValue(*spec, kv.value)) trainValues_[spec->name] = *value;
    }
  }

  // ---- train settings against the network ----------------------------------

  void checkTrain() {
    auto valueOr = [&](const std::string& key) -> Value {
      auto it = trainValues_.find(key);
      return it != trainValues_.end() ? it->second : *parseDefault(*findSpec(trainKeys(), key));
    };
    auto given = [&](const std::string& key) { return trainKeyLocations_.count(key) > 0; };
    auto locOf = [&](const std::string& key) { return trainKeyLocations_.at(key); };
    std::string optimizer = std::get<std::string>(valueOr("optimizer"));
    std::string schedule = std::get<std::string>(valueOr("lr_schedule"));

    auto applies = [&](const std::string& key) {
      if (key == "momentum" || key == "nesterov") return optimizer == "sgd";
      if (key == "beta1" || key == "beta2" || key == "eps") return optimizer == "adam";
      if (key == "step_size" || key == "gamma") return schedule == "step";
      return true;
    };
    for (const KeySpec& spec : trainKeys()) {
      if (given(spec.name) && !applies(spec.name)) {
        std::string owner = spec.name == "step_size" || spec.name == "gamma"
                                ? "lr_schedule=step"
                                : (optimizer == "sgd" ? "optimizer=adam" : "optimizer=sgd");
        diags_.error(locOf(spec.name),
                     fmt::format("train key '{}' applies only with {} (this network "
                                 "trains with {})",
                                 spec.name, owner,
                                 spec.name == "step_size" || spec.name == "gamma"
                                     ? "lr_schedule=" + schedule
                                     : "optimizer=" + optimizer));
      }
    }
    if (!given("loss"))
      diags_.error(*trainLoc_, "train settings need a loss (loss=cross_entropy or loss=mse)");
    if (schedule == "step" && !given("step_size"))
      diags_.error(locOf("lr_schedule"), "lr_schedule=step needs step_size (in epochs)");
    if (optimizer == "sgd" && std::get<bool>(valueOr("nesterov")) &&
        std::get<double>(valueOr("momentum")) <= 0)
      diags_.error(locOf("nesterov"),
                   "nesterov=true needs momentum greater than 0 (as torch.optim.SGD)");

    // A required key that was given but invalid has been reported; it has no value.
    if (trainValues_.count("loss") &&
        std::get<std::string>(trainValues_.at("loss")) == "cross_entropy" && !net_.layers.empty() &&
        known_.back()) {
      const Shape& out = net_.outputShape();
      bool classVector =
          (out.isFlat() && out.dims[0] >= 2) ||
          (out.isImage() && out.height() == 1 && out.width() == 1 && out.channels() >= 2);
      if (!classVector)
        diags_.error(locOf("loss"),
                     fmt::format("loss=cross_entropy needs a vector of class scores, but "
                                 "the output of '{}' is {}",
                                 net_.output().name, out.str()));
    }

    TrainSettings settings;
    settings.loc = *trainLoc_;
    for (const KeySpec& spec : trainKeys()) {
      if (!applies(spec.name)) continue;
      if (spec.required() && !trainValues_.count(spec.name)) continue;
      settings.attributes.push_back({spec.name, valueOr(spec.name)});
    }
    net_.train = settings;
  }

  // ---- names and inputs -----------------------------------------------------

  // The layer's name, explicit or KIND + its 1-based count; empty on error.
  std::string layerName(const Statement& s, const LayerKindInfo* info) {
    int count = ++kindCounts_[s.keyword.text];
    std::string name;
    Location loc = s.keyword.loc;
    if (s.name) {
      name = s.name->text;
      loc = s.name->loc;
      if (name == "input") {
        diags_.error(loc, "'input' names the network input and cannot name a layer");
        return "";
      }
    } else {
      name = fmt::format("{}{}", s.keyword.text, count);
    }
    auto previous = names_.find(name);
    if (previous != names_.end() && info) {
      std::string which =
          s.name ? "" : fmt::format(" (the automatic name of this {})", s.keyword.text);
      diags_.error(loc, fmt::format("duplicate layer name '{}'{}; the first is at line {}", name,
                                    which, net_.layers[previous->second].loc.line));
      return "";
    }
    return name;
  }

  std::vector<int> resolveInputs(const Statement& s, const KeyValue* from, int index,
                                 const LayerKindInfo* info, bool& ok) {
    std::vector<int> inputs;
    if (!from) {
      if (info && info->minInputs > 1) {
        diags_.error(s.keyword.loc,
                     fmt::format("{} needs from= with at least {} layers (e.g. from=a,b)",
                                 info->name, info->minInputs));
        ok = false;
        return inputs;
      }
      inputs.push_back(index - 1 >= 0 ? index - 1 : kInputIndex);
      return inputs;
    }
    const ValueNode& value = from->value;
    if (info && (static_cast<int>(value.atoms.size()) < info->minInputs ||
                 static_cast<int>(value.atoms.size()) > info->maxInputs)) {
      std::string expected =
          info->maxInputs == 1 ? "one layer" : fmt::format("at least {} layers", info->minInputs);
      diags_.error(value.loc, fmt::format("{} takes {} in from=, got {}", info->name, expected,
                                          value.atoms.size()));
      ok = false;
    }
    std::set<std::string> seen;
    for (const Token& atom : value.atoms) {
      if (atom.kind == TokenKind::Invalid) {
        ok = false;
        continue;
      }
      if (atom.kind != TokenKind::Identifier) {
        diags_.error(atom.loc, fmt::format("from= takes layer names, got '{}'", atom.text));
        ok = false;
        continue;
      }
      if (!seen.insert(atom.text).second) {
        diags_.error(atom.loc, fmt::format("'{}' is named twice in from=", atom.text));
        ok = false;
        continue;
      }
      if (atom.text == "input") {
        inputs.push_back(kInputIndex);
        continue;
      }
      auto it = names_.find(atom.text);
      if (it == names_.end() || it->second == index) {
        auto later = allNames_.find(atom.text);
        std::vector<std::string> candidates = {"input"};
        for (const auto& layer : net_.layers) candidates.push_back(layer.name);
        std::string message =
            it != names_.end() ? fmt::format("layer '{}' cannot read its own output", atom.text)
            : later != allNames_.end()
                ? fmt::format(
                      "from= names '{}', which is defined later (line {}); from= may only "
                      "name earlier layers",
                      atom.text, later->second)
                : fmt::format("from= names unknown layer '{}'{}", atom.text,
                              didYouMean(atom.text, candidates));
        diags_.error(atom.loc, message);
        ok = false;
        continue;
      }
      inputs.push_back(it->second);
    }
    return inputs;
  }

  bool known(int index) const { return index == kInputIndex ? inputKnown_ : known_[index]; }

  // ---- values -----------------------------------------------------------------

  bool firstTimeKey(const KeyValue& kv, const std::vector<std::pair<std::string, Location>>& seen) {
    for (const auto& [key, loc] : seen) {
      if (key == kv.key.text) {
        diags_.error(kv.key.loc,
                     fmt::format("key '{}' given twice in this statement", kv.key.text));
        return false;
      }
    }
    return true;
  }

  static const KeySpec* findSpec(const std::vector<KeySpec>& specs, const std::string& name) {
    for (const auto& spec : specs)
      if (spec.name == name) return &spec;
    return nullptr;
  }

  std::optional<Value> parseDefault(const KeySpec& spec) {
    Diagnostics scratch;
    ValueNode node;
    Token token{TokenKind::Number, spec.defaultText, {}, 0};
    if (spec.type == ValueType::Enum || spec.type == ValueType::Bool)
      token.kind = TokenKind::Identifier;
    node.atoms.push_back(token);
    Analyzer analyzer(scratch);
    auto value = analyzer.parseValue(spec, node);
    CNNC_INTERNAL_ASSERT(
        value && !scratch.hasErrors(),
        fmt::format("default '{}' of key '{}' is invalid", spec.defaultText, spec.name));
    return value;
  }

  std::optional<int64_t> parseInteger(const std::string& text, const Location& loc,
                                      const std::string& key) {
    bool integral = !text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos;
    if (!integral) {
      diags_.error(loc, fmt::format("'{}' expects a whole number, got '{}'", key, text));
      return std::nullopt;
    }
    errno = 0;
    char* end = nullptr;
    long long value = std::strtoll(text.c_str(), &end, 10);
    if (errno == ERANGE || value > kMaxElements || value < -kMaxElements) {
      diags_.error(loc, fmt::format("number {} is out of range for '{}'", text, key));
      return std::nullopt;
    }
    return value;
  }

  bool checkRange(const KeySpec& spec, double value, const std::string& text, const Location& loc) {
    bool low = spec.minInclusive ? value >= spec.min : value > spec.min;
    bool high = spec.maxInclusive ? value <= spec.max : value < spec.max;
    if (low && high) return true;
    diags_.error(loc, fmt::format("'{}' must be {}, got {}", spec.name, describeRange(spec), text));
    return false;
  }

 public:
  std::optional<Value> parseValue(const KeySpec& spec, const ValueNode& node) {
    if (node.isList()) {
      diags_.error(node.loc, fmt::format("'{}' takes a single value, not a list", spec.name));
      return std::nullopt;
    }
    const Token& atom = node.atoms.front();
    if (atom.kind == TokenKind::Invalid) return std::nullopt;  // the lexer reported it
    auto wrongType = [&](const char* expected) -> std::optional<Value> {
      diags_.error(atom.loc,
                   fmt::format("'{}' expects {}, got '{}'", spec.name, expected, atom.text));
      return std::nullopt;
    };
    switch (spec.type) {
      case ValueType::Int: {
        if (atom.kind != TokenKind::Number) return wrongType("a whole number");
        auto value = parseInteger(atom.text, atom.loc, spec.name);
        if (!value || !checkRange(spec, double(*value), atom.text, atom.loc)) return std::nullopt;
        return Value(*value);
      }
      case ValueType::Float: {
        if (atom.kind != TokenKind::Number) return wrongType("a number");
        errno = 0;
        double value = std::strtod(atom.text.c_str(), nullptr);
        if (errno == ERANGE || !std::isfinite(value)) {
          diags_.error(atom.loc,
                       fmt::format("number {} is out of range for '{}'", atom.text, spec.name));
          return std::nullopt;
        }
        if (!checkRange(spec, value, atom.text, atom.loc)) return std::nullopt;
        return Value(value);
      }
      case ValueType::Bool:
        if (atom.kind != TokenKind::Identifier || (atom.text != "true" && atom.text != "false"))
          return wrongType("true or false");
        return Value(atom.text == "true");
      case ValueType::Enum: {
        bool valid =
            atom.kind == TokenKind::Identifier &&
            std::find(spec.choices.begin(), spec.choices.end(), atom.text) != spec.choices.end();
        if (!valid) {
          std::string hint = didYouMean(atom.text, spec.choices);
          if (hint.empty())
            hint = fmt::format(" (expected one of: {})", fmt::join(spec.choices, ", "));
          diags_.error(atom.loc,
                       fmt::format("unknown value '{}' for '{}'{}", atom.text, spec.name, hint));
          return std::nullopt;
        }
        return Value(atom.text);
      }
      case ValueType::PadSize:
        if (atom.kind == TokenKind::Identifier && atom.text == "same")
          return Value(std::string("same"));
        [[fallthrough]];
      case ValueType::Size: {
        const char* expected = spec.type == ValueType::PadSize ? "N, HxW or same" : "N or HxW";
        if (atom.kind == TokenKind::Number) {
          auto value = parseInteger(atom.text, atom.loc, spec.name);
          if (!value || !checkRange(spec, double(*value), atom.text, atom.loc)) return std::nullopt;
          return Value(Size2{*value, *value});
        }
        if (atom.kind != TokenKind::Dimensions) return wrongType(expected);
        size_t x = atom.text.find('x');
        if (atom.text.find('x', x + 1) != std::string::npos) return wrongType(expected);
        auto h = parseInteger(atom.text.substr(0, x), atom.loc, spec.name);
        auto w = parseInteger(atom.text.substr(x + 1), atom.loc, spec.name);
        if (!h || !w || !checkRange(spec, double(*h), atom.text, atom.loc) ||
            !checkRange(spec, double(*w), atom.text, atom.loc))
          return std::nullopt;
        return Value(Size2{*h, *w});
      }
    }
    return std::nullopt;
  }

 private:
  bool checkElements(const Shape& shape, const Location& loc, const std::string& what) {
    int64_t n = 1;
    for (int64_t d : shape.dims) {
      if (d > 0 && n > kMaxElements / d) {
        n = kMaxElements + 1;
        break;
      }
      n *= d;
    }
    if (n <= kMaxElements) return true;
    diags_.error(loc,
                 fmt::format("{} has shape {}: more than 2^31-1 elements for one example, Halide's "
                             "limit for a buffer",
                             what, shape.str()));
    return false;
  }

  Diagnostics& diags_;
  Network net_;
  bool seenNetwork_ = false, networkReported_ = false, laterNetwork_ = false;
  std::optional<Location> inputLoc_;
  bool inputKnown_ = false, inputReported_ = false;
  std::map<std::string, int> names_;
  std::map<std::string, int> allNames_;  // name -> line
  std::map<std::string, int> kindCounts_;
  std::vector<bool> known_;
  std::optional<Location> trainLoc_;
  std::map<std::string, Location> trainKeyLocations_;
  std::map<std::string, Value> trainValues_;
};

}  // namespace

Network analyze(const FileAST& file, Diagnostics& diags) {
  return Analyzer(diags).run(file);
}

std::optional<Value> parseKeyValue(const KeySpec& spec, const ValueNode& node, Diagnostics& diags) {
  return Analyzer(diags).parseValue(spec, node);
}

}  // namespace cnnc
