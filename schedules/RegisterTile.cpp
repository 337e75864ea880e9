#include "RegisterTile.h"

#include <algorithm>

namespace cnnc {

// Each candidate that fits the registers (its accumulators, its weight
// vectors and one broadcast, and a temporary per product without FMA) is
// scored, lower is better, by
//   waste^2: computed outputs over needed ones (tiles that overhang the
//          row, the column or K are recomputed or rounded up), squared:
//          on W1 4x5 (exact on 100 columns) beat 4x6 (102) by 1.5%,
//   loads: (vectors + broadcasts) per FMA, as (1 + loads / 2): with one
//          vector load and one broadcast per group of FMAs, both load
//          ports keep up, but each load is an instruction in the loop,
//   size:  (1 + 2 / accumulators): more accumulators hide the FMA latency
//          and amortize the loop and the tile's stores.
// On W1/W2 it picks 4x5 (W1, 100 columns), 4x3 over 2 rows (56 columns),
// 4x6 (the stem's 112 columns) and 2x14 (14x14 outputs); each within the
// noise of the best variant measured (bench/NOTES.md).
RegisterTile chooseRegisterTile(int width, int height, int filters, int vectorWidth, bool avx512,
                                bool fma, bool transposed) {
  const int registers = avx512 ? 32 : 16;
  const int maxAccumulators = avx512 ? 28 : fma ? 12 : 8;
  const int P = std::max(width, 1), Q = std::max(height, 1), K = std::max(filters, 1);
  const int vectors = (K + vectorWidth - 1) / vectorWidth;
  RegisterTile best;
  double bestScore = 1e30;
  for (int cv = 1; cv <= std::min(4, vectors); ++cv)
    for (int ty = 1; ty <= std::min(transposed ? 1 : 2, Q); ++ty)
      for (int tx = 1; tx <= std::min(P, 16); ++tx) {
        // Other widths transpose in scalar inserts (W2c: 4x6 1.35 ms
        // against 4x4's 1.16 at batch 1).
        if (transposed && (tx < 4 || (tx & (tx - 1)) != 0)) continue;
        int acc = cv * tx * ty;
        if (acc > maxAccumulators || acc + cv + 1 + (fma ? 0 : 1) > registers) continue;
        int tileC = cv * vectorWidth;
        double waste = double((P + tx - 1) / tx * tx) / P * double((Q + ty - 1) / ty * ty) / Q *
                       double((K + tileC - 1) / tileC * tileC) / K;
        double loads = double(cv + tx * ty) / acc;
        double score = waste * waste * (1 + loads / 2) * (1 + 2.0 / acc);
        if (score < bestScore - 1e-9) {
          bestScore = score;
          best = {cv, tx, ty};
        }
      }
  return best;
}

}  // namespace cnnc
