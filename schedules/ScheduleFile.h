// Schedule files (`cnnc --schedule FILE`): knob values per layer, in .net
// syntax, one layer per line, as a tuner writes them or a person edits them:
//
//   # conv1 with 8-wide vectors and a 1x12 register tile
//   conv1: conv2d vector_width=8 channel_vectors=1 tile_x=12
//
// The name must be a layer of the network and the kind its kind; an unknown
// layer, kind or knob, or a value out of range, is a located error. Layers
// the file does not mention keep their default schedules.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "IR.h"

namespace cnnc {

class Diagnostics;
class SourceFile;
struct KeySpec;

// Layer index -> the knobs the file sets for it.
using ScheduleOverrides = std::map<int, std::vector<Attribute>>;

// The knobs each kind's schedule template accepts (empty: none yet).
const std::vector<KeySpec>& scheduleKnobs(LayerKind kind);

// Parses `source` against `net`; nullopt when `diags` received errors.
std::optional<ScheduleOverrides> parseScheduleFile(const SourceFile& source, const Network& net,
                                                   Diagnostics& diags);

}  // namespace cnnc
