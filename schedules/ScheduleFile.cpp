#include "ScheduleFile.h"

#include <algorithm>

#include <fmt/format.h>

#include "Diagnostics.h"
#include "LayerKinds.h"
#include "Lexer.h"
#include "Parser.h"
#include "Sema.h"
#include "SourceFile.h"

namespace cnnc {

const std::vector<KeySpec>& scheduleKnobs(LayerKind kind) {
  static const std::vector<KeySpec> kConv2D = {
      {"vector_width", ValueType::Int, "16", 4, 16},
      {"channel_vectors", ValueType::Int, "4", 1, 8},
      {"tile_x", ValueType::Int, "5", 1, 32},
      {"reduction_unroll", ValueType::Int, "2", 1, 8},
      {"materialize_input", ValueType::Bool, "false"},
      {"vectorize_columns", ValueType::Bool, "false"},
      {"tile_y", ValueType::Int, "1", 1, 32},
      {"task_rows", ValueType::Int, "0", 0, 1024},
      {"input_columns_innermost", ValueType::Bool, "false"},
      {"winograd", ValueType::Bool, "false"},
      {"winograd_tiles", ValueType::Int, "4", 1, 16},
  };
  static const std::vector<KeySpec> kNone;
  return kind == LayerKind::Conv2D ? kConv2D : kNone;
}

std::optional<ScheduleOverrides> parseScheduleFile(const SourceFile& source, const Network& net,
                                                   Diagnostics& diags) {
  ScheduleOverrides overrides;
  try {
    FileAST file = parse(lex(source, diags), diags);
    std::vector<std::string> layerNames;
    for (const Layer& layer : net.layers) layerNames.push_back(layer.name);
    for (const Statement& s : file.statements) {
      if (s.kind == StatementKind::Unknown) continue;  // the parser reported it
      if (s.kind != StatementKind::Layer || !s.name) {
        diags.error(s.keyword.loc, "expected 'LAYER: KIND knob=value ...'");
        continue;
      }
      int index = net.find(s.name->text);
      if (index < 0) {
        diags.error(s.name->loc, fmt::format("network '{}' has no layer '{}'{}", net.name,
                                             s.name->text, didYouMean(s.name->text, layerNames)));
        continue;
      }
      const Layer& layer = net.layers[index];
      if (s.keyword.text != kindName(layer.kind)) {
        diags.error(s.keyword.loc, fmt::format("layer '{}' is a {}, not a {}", layer.name,
                                               kindName(layer.kind), s.keyword.text));
        continue;
      }
      if (overrides.count(index)) {
        diags.error(s.name->loc,
                    fmt::format("layer '{}' is scheduled twice in this file", layer.name));
        continue;
      }
      const std::vector<KeySpec>& knobs = scheduleKnobs(layer.kind);
      std::vector<std::string> knobNames;
      for (const KeySpec& k : knobs) knobNames.push_back(k.name);
      std::vector<Attribute>& values = overrides[index];
      for (const KeyValue& kv : s.keys) {
        auto spec = std::find_if(knobs.begin(), knobs.end(),
                                 [&](const KeySpec& k) { return k.name == kv.key.text; });
        if (spec == knobs.end()) {
          std::string known =
              knobs.empty() ? fmt::format(" ({} layers have no knobs yet)", kindName(layer.kind))
                            : didYouMean(kv.key.text, knobNames);
          diags.error(kv.key.loc, fmt::format("unknown knob '{}' for {}{}", kv.key.text,
                                              kindName(layer.kind), known));
          continue;
        }
        bool repeated = std::any_of(values.begin(), values.end(),
                                    [&](const Attribute& a) { return a.key == kv.key.text; });
        if (repeated) {
          diags.error(kv.key.loc,
                      fmt::format("knob '{}' given twice for '{}'", kv.key.text, layer.name));
          continue;
        }
        if (auto value = parseKeyValue(*spec, kv.value, diags)) {
          if (spec->name == "vector_width" && std::get<int64_t>(*value) != 4 &&
              std::get<int64_t>(*value) != 8 && std::get<int64_t>(*value) != 16) {
            diags.error(kv.value.loc, fmt::format("'vector_width' must be 4, 8 or 16, got {}",
                                                  kv.value.atoms[0].text));
            continue;
          }
          if (spec->name == "winograd" && std::get<bool>(*value) && !fitsWinograd(layer)) {
            diags.error(kv.value.loc,
                        fmt::format("'winograd' needs a 3x3 kernel at stride 1, without "
                                    "dilation or groups, and an even output height and width; "
                                    "'{}' has kernel={} stride={} dilation={} groups={} and a "
                                    "{}x{} output",
                                    layer.name, layer.sizeAttr("kernel").str(),
                                    layer.sizeAttr("stride").str(),
                                    layer.sizeAttr("dilation").str(), layer.intAttr("groups"),
                                    layer.outputShape.height(), layer.outputShape.width()));
            continue;
          }
          values.push_back({spec->name, *value});
        }
      }
    }
  } catch (const StageFailed&) {
    return std::nullopt;
  }
  if (diags.hasErrors()) return std::nullopt;
  return overrides;
}

}  // namespace cnnc
