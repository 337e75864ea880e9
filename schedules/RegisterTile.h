// The register tile of a convolution's output (channel vectors x columns x
// rows, accumulated over the whole reduction in registers), chosen by a
// small cost model; shared by the network schedule (Conv2DSchedule) and the
// standalone template (Conv2DTemplate). Depends on nothing.
#pragma once

namespace cnnc {

struct RegisterTile {
  int channelVectors = 1;  // vectors of output channels
  int tileX = 1;           // output columns
  int tileY = 1;           // output rows
};

// The best tile for an output of `width` x `height` x `filters` in vectors
// of `vectorWidth` floats, on a target with 32 vector registers (AVX-512)
// or 16, with FMA or without (the reasoning is in the .cpp). With
// `transposed`, the tile is transposed to columns as it is stored: one row
// of a power of two columns, at least 4.
RegisterTile chooseRegisterTile(int width, int height, int filters, int vectorWidth, bool avx512,
                                bool fma, bool transposed = false);

}  // namespace cnnc
