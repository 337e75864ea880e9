// User errors and internal errors are different mechanisms (as Halide's
// user_assert and internal_assert): a user error is a located diagnostic about
// the .net file and makes cnnc exit with 1; an internal error is a bug in cnnc
// and makes it exit with 2 asking for a report.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "Location.h"

namespace cnnc {

class SourceFile;

struct Diagnostic {
  Location loc;
  std::string message;
};

// Collects located errors for one source file and renders them as
// `file:line:col: error: message`, the source line and a caret.
class Diagnostics {
 public:
  static constexpr int kMaxErrors = 20;

  explicit Diagnostics(const SourceFile* source = nullptr) : source_(source) {}
  void setSource(const SourceFile* source) { source_ = source; }

  // Records an error. Throws TooManyErrors once kMaxErrors are recorded.
  void error(const Location& loc, std::string message);
  // Records an error and stops the current stage (throws StageFailed).
  [[noreturn]] void fatal(const Location& loc, std::string message);

  bool hasErrors() const { return !errors_.empty(); }
  const std::vector<Diagnostic>& errors() const { return errors_; }

  std::string render() const;  // every diagnostic, in order
  std::string render(const Diagnostic& d) const;

 private:
  const SourceFile* source_;
  std::vector<Diagnostic> errors_;
};

// Thrown to abandon a stage whose diagnostics are already recorded.
struct StageFailed : std::exception {
  const char* what() const noexcept override { return "compilation failed"; }
};

// A bug in cnnc, never the user's fault.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] void internalError(const char* file, int line, const std::string& message);

#define CNNC_INTERNAL_ASSERT(cond, message)                            \
  do {                                                                 \
    if (!(cond)) ::cnnc::internalError(__FILE__, __LINE__, (message)); \
  } while (0)

// "did you mean ...?": the candidate closest to `word` by edit distance, if
// it is close enough to be a plausible typo; empty otherwise.
std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "".
std::string didYouMean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace cnnc
