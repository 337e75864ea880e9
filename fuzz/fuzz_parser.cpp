// Fuzzes the whole front end: any bytes must give either diagnostics or an
// IR, never a crash or a hang; and an IR must print and parse back to itself.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "Frontend.h"
#include "IRPrinter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc;
  try {
    Diagnostics diags;
    std::optional<SourceFile> source;
    std::string text(reinterpret_cast<const char*>(data), size);
    std::optional<Network> net = analyzeText("fuzz.net", text, diags, source);
    std::string rendered = diags.render();
    if (net && diags.hasErrors()) abort();
    if (!net && !diags.hasErrors()) abort();
    if (net) {
      std::string printed = printIR(*net);
      Diagnostics again;
      std::optional<SourceFile> printedSource;
      std::optional<Network> reparsed = analyzeText("printed.ir", printed, again, printedSource);
      if (!reparsed || !sameNetwork(*net, *reparsed)) {
        fprintf(stderr, "IR round trip failed:\n%s\n%s\n", printed.c_str(), again.render().c_str());
        abort();
      }
    }
  } catch (const InternalError& e) {
    fprintf(stderr, "internal error: %s\n", e.what());
    abort();
  }
  return 0;
}
