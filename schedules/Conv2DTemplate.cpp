#include "Conv2DTemplate.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "RegisterTile.h"

namespace cnnc::conv2d {

using Halide::Func;
using Halide::RVar;
using Halide::TailStrategy;
using Halide::Var;

int naturalFloatVector(const Halide::Target& target) {
  if (target.has_feature(Halide::Target::AVX512)) return 16;
  if (target.has_feature(Halide::Target::AVX2) || target.has_feature(Halide::Target::AVX)) return 8;
  return 4;
}

std::string Knobs::str() const {
  const char* where = input == InputAt::Inline ? "inline" : input == InputAt::Root ? "root" : "task";
  std::ostringstream s;
  s << "vector_width=" << vectorWidth << " channel_vectors=" << channelVectors << " tile_x=" << tileX
    << " tile_y=" << tileY << " reduction_unroll=" << reductionUnroll << " rows_per_task=" << rowsPerTask
    << " channel_tasks=" << channelTasks << " reduction_block=" << reductionBlock
    << " block_columns=" << blockColumns << " channels_outer=" << channelsOuter << " input=" << where
    << " parallel=" << parallel;
  return s.str();
}

// The register tile: chooseRegisterTile (RegisterTile.cpp has its reasoning).
Knobs defaultKnobs(const Conv2DShape& s, int batch, const Halide::Target& target) {
  Knobs k;
  const int natural = naturalFloatVector(target);
  const bool avx512 = natural == 16;
  const bool fma = avx512 || target.has_feature(Halide::Target::FMA);
  const int P = s.outWidth(), Q = s.outHeight(), N = std::max(batch, 1), K = s.filters;
  k.vectorWidth = natural;
  while (k.vectorWidth > 4 && k.vectorWidth / 2 >= K) k.vectorWidth /= 2;
  const int vec = k.vectorWidth;
  RegisterTile tile = chooseRegisterTile(P, Q, K, vec, avx512, fma);
  k.channelVectors = tile.channelVectors;
  k.tileX = tile.tileX;
  k.tileY = tile.tileY;

  // Input channels unrolled: 4 where they divide (measured 1-2% over 2 on
  // W1), all of them for an image's 3.
  int Cg = s.channelsPerGroup();
  k.reductionUnroll = Cg <= 4 ? Cg : Cg % 4 == 0 ? 4 : Cg % 2 == 0 ? 2 : 1;

  // Tasks: row blocks x examples. Two output rows per task where there
  // are plenty of tasks (W1: 10% over one row: a task's tiles share its
  // input rows in L1/L2); one tile row when tiles are two rows high (W2b at
  // N=8: 4 rows per task 20% slower than 2). Channel tiles become tasks
  // below 8 row tasks (W2d at N=1 has 14 rows: 14 tasks beat 56 by 8%).
  // Kernels taller than 3 read a halo of kh - stride extra input rows per
  // task: more rows per task amortize it (the 7x7 stem at N=8: 8 rows 4%
  // over 2).
  k.rowsPerTask = k.tileY;
  if (k.tileY == 1 && Q * N / 2 >= 32) k.rowsPerTask = 2;
  while (s.kernelH > 3 && k.rowsPerTask < 8 && Q * N / (2 * k.rowsPerTask) >= 32) k.rowsPerTask *= 2;
  int tasks = (Q + k.rowsPerTask - 1) / k.rowsPerTask * N;
  int channelTiles = (K + vec * k.channelVectors - 1) / (vec * k.channelVectors);
  k.channelTasks = tasks < 8 && channelTiles > 1;
  k.channelsOuter = true;
  // A padded input is a select per load: store the rows each task reads.
  k.input = (s.padX > 0 || s.padY > 0) ? InputAt::Task : InputAt::Inline;
  // Below ~2 MFLOP waking the thread pool costs more than it saves.
  k.parallel = s.flopsPerExample() * N >= 2e6;
  return k;
}

void setKnob(Knobs& k, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos) throw std::invalid_argument("expected knob=value, got '" + assignment + "'");
  std::string name = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  auto integer = [&](int lo, int hi) {
    int v = std::stoi(value);
    if (v < lo || v > hi) throw std::invalid_argument(name + " out of range: " + value);
    return v;
  };
  auto boolean = [&] {
    if (value == "1" || value == "true") return true;
    if (value == "0" || value == "false") return false;
    throw std::invalid_argument(name + ": expected true or false, got " + value);
  };
  if (name == "vector_width") k.vectorWidth = integer(1, 64);
  else if (name == "channel_vectors") k.channelVectors = integer(1, 8);
  else if (name == "tile_x") k.tileX = integer(1, 64);
  else if (name == "tile_y") k.tileY = integer(1, 8);
  else if (name == "reduction_unroll") k.reductionUnroll = integer(1, 16);
  else if (name == "rows_per_task") k.rowsPerTask = integer(1, 1024);
  else if (name == "channel_tasks") k.channelTasks = boolean();
  else if (name == "channels_outer") k.channelsOuter = boolean();
  else if (name == "parallel") k.parallel = boolean();
  else if (name == "reduction_block") k.reductionBlock = integer(0, 4096);
  else if (name == "block_columns") k.blockColumns = integer(0, 4096);
  else if (name == "input") {
    if (value == "inline") k.input = InputAt::Inline;
    else if (value == "root") k.input = InputAt::Root;
    else if (value == "task") k.input = InputAt::Task;
    else throw std::invalid_argument("input: expected inline, root or task, got " + value);
  } else {
    throw std::invalid_argument("unknown knob '" + name + "'");
  }
}

int packTile(const Conv2DShape& s, const Knobs& k) {
  int tileC = k.vectorWidth * k.channelVectors;
  if (s.filters % tileC == 0) return tileC;
  return (s.filters + k.vectorWidth - 1) / k.vectorWidth * k.vectorWidth;
}

namespace {

void scheduleInput(Conv2DFuncs& f, const Conv2DShape& s, const Knobs& k, const Func& out, const Var& taskLevel) {
  const Var &c = f.c, &x = f.x, &y = f.y, &n = f.n;
  const int vec = k.vectorWidth;
  TailStrategy tail = TailStrategy::GuardWithIf;
  switch (k.input) {
    case InputAt::Inline: return;
    case InputAt::Root:
      f.input.compute_root();
      if (k.parallel) {
        Var yn("yn");
        f.input.fuse(y, n, yn).parallel(yn);
      }
      break;
    case InputAt::Task: f.input.compute_at(out, taskLevel); break;
  }
  // Few channels (an image): vectorize along the row instead.
  if (s.channels >= vec) f.input.vectorize(c, vec, tail);
  else f.input.reorder(x, c).vectorize(x, vec, tail);
}

// The reduction-blocked variant: see Knobs::reductionBlock.
void applyBlocked(Conv2DFuncs& f, const Conv2DShape& s, const Knobs& k, int tileC, TailStrategy channelTail) {
  const Var &c = f.c, &x = f.x, &y = f.y, &n = f.n;
  const int vec = k.vectorWidth, P = s.outWidth();
  int columns = k.blockColumns > 0 ? std::min(k.blockColumns, P) : P;
  columns = std::max(k.tileX, columns / k.tileX * k.tileX);
  Var co("co"), ci("ci"), xc("xc"), xr("xr"), task("task"), rows("rows");
  Func out = f.output;
  out.compute_root().split(c, co, ci, tileC, channelTail).vectorize(ci, vec);
  Var rowLevel = co;
  if (columns < P) {
    out.split(x, xc, xr, columns, TailStrategy::ShiftInwards).reorder(ci, xr, xc, co, y, n);
    rowLevel = xc;
  } else {
    out.reorder(ci, x, co, y, n);
  }
  Var taskLevel = y;
  if (k.parallel) {
    if (k.channelTasks) out.fuse(co, y, rows).fuse(rows, n, task).parallel(task);
    else out.fuse(y, n, task).parallel(task);
    taskLevel = task;
  }
  if (k.channelTasks && columns >= P) rowLevel = k.parallel ? task : co;

  // conv: the row buffer (tileC x columns), initialized to the bias; each
  // block adds a register tile `partial` summed over B input channels.
  RVar rco("rco"), rci("rci");
  Var b("b"), xo("xo"), xi("xi");
  f.conv.compute_at(out, rowLevel).vectorize(c, vec, TailStrategy::RoundUp);
  f.conv.update().split(f.r.x, rco, rci, k.reductionBlock);
  Func partial = f.conv.update().rfactor(rco, b);
  f.conv.update()
      .split(x, xo, xi, k.tileX, TailStrategy::RoundUp)
      .reorder(c, xi, xo, rco, y, n)
      .vectorize(c, vec, TailStrategy::RoundUp)
      .unroll(c)
      .unroll(xi);
  partial.compute_at(f.conv, xo)
      .vectorize(c, vec, TailStrategy::RoundUp)
      .unroll(c)
      .unroll(x);
  partial.update()
      .reorder(c, x, y, rci, f.r.y, f.r.z, n, b)
      .vectorize(c, vec, TailStrategy::RoundUp)
      .unroll(c)
      .unroll(x);
  if (k.reductionUnroll > 1) partial.update().unroll(rci, k.reductionUnroll, TailStrategy::GuardWithIf);
  scheduleInput(f, s, k, out, taskLevel);
}

}  // namespace

void apply(Conv2DFuncs& f, const Conv2DShape& s, int batch, Knobs k) {
  const Var &c = f.c, &x = f.x, &y = f.y, &n = f.n;
  const int P = s.outWidth(), Q = s.outHeight(), K = s.filters, Cg = s.channelsPerGroup();
  const int vec = k.vectorWidth;
  k.tileX = std::max(1, std::min(k.tileX, P));
  k.tileY = std::max(1, std::min(k.tileY, Q));
  k.rowsPerTask = std::max(k.tileY, k.rowsPerTask / k.tileY * k.tileY);
  if (k.rowsPerTask > Q) k.rowsPerTask = Q / k.tileY * k.tileY;
  if (k.reductionUnroll > Cg) k.reductionUnroll = Cg;
  const int tileC = vec * k.channelVectors;

  // Parameters in PyTorch's layout: packed once per call, vectorized over
  // output channels (packed weights, WeightLayout::Packed, skip this).
  if (!f.weightsPacked) f.weights.compute_root().vectorize(c, vec, TailStrategy::RoundUp);
  f.bias.compute_root().vectorize(c, vec, TailStrategy::RoundUp);

  // The output in register tiles. Channels: whole tiles when they divide K;
  // otherwise the last tile shifts inwards (recomputing a few channels), or
  // with fewer channels than a tile, the tile is guarded.
  TailStrategy channelTail = K % tileC == 0 ? TailStrategy::RoundUp
                             : K > tileC    ? TailStrategy::ShiftInwards
                                            : TailStrategy::GuardWithIf;
  if (k.reductionBlock > 0 && k.reductionBlock < Cg && Cg % k.reductionBlock == 0 && s.groups == 1) {
    applyBlocked(f, s, k, tileC, channelTail);
    return;
  }
  Var co("co"), ci("ci"), xo("xo"), xi("xi"), yo("yo"), yi("yi"), yt("yt"), task("task");
  Func out = f.output;
  out.compute_root()
      .split(c, co, ci, tileC, channelTail)
      .split(x, xo, xi, k.tileX, TailStrategy::ShiftInwards)
      .split(y, yo, yi, k.tileY, TailStrategy::ShiftInwards)
      .vectorize(ci, vec)
      .unroll(ci)
      .unroll(xi)
      .unroll(yi);
  // Row blocks of rowsPerTask rows (yo counts tileY rows).
  int tilesPerTask = k.rowsPerTask / k.tileY;
  if (tilesPerTask > 1) out.split(yo, yt, yo, tilesPerTask, TailStrategy::GuardWithIf);
  else yt = yo;
  // yt is the task's row block; yo (when split) the tile rows inside it.
  bool coOuter = k.channelsOuter || k.channelTasks;
  if (tilesPerTask > 1) {
    if (coOuter) out.reorder(ci, xi, yi, xo, yo, co, yt, n);
    else out.reorder(ci, xi, yi, co, xo, yo, yt, n);  // both channel tiles at each column tile
  } else {
    if (coOuter) out.reorder(ci, xi, yi, xo, co, yt, n);
    else out.reorder(ci, xi, yi, co, xo, yt, n);
  }
  Var taskLevel = yt;
  if (k.parallel) {
    Var rows("rows");
    if (k.channelTasks) {
      out.fuse(co, yt, rows).fuse(rows, n, task).parallel(task);
    } else {
      out.fuse(yt, n, task).parallel(task);
    }
    taskLevel = task;
  } else if (k.channelTasks) {
    taskLevel = co;
  }

  // The accumulator tile over the whole reduction, in registers.
  RVar rc = f.r.x, rkx = f.r.y, rky = f.r.z;
  Var tileLevel = coOuter ? xo : co;  // the innermost loop over tiles
  f.conv.compute_at(out, tileLevel)
      .vectorize(c, vec, TailStrategy::RoundUp)
      .unroll(c)
      .unroll(x)
      .unroll(y);
  f.conv.update()
      .reorder(c, x, y, rc, rkx, rky, n)
      .vectorize(c, vec, TailStrategy::RoundUp)
      .unroll(c)
      .unroll(x)
      .unroll(y);
  if (k.reductionUnroll > 1) f.conv.update().unroll(rc, k.reductionUnroll, TailStrategy::GuardWithIf);

  scheduleInput(f, s, k, out, taskLevel);
  (void)batch;
}

}  // namespace cnnc::conv2d
