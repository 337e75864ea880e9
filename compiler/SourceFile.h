// A .net file in memory, checked to be text before anything reads it: not
// empty, valid UTF-8 without control characters, no line over 64 KiB.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cnnc {

class Diagnostics;

class SourceFile {
 public:
  static constexpr size_t kMaxLineBytes = 64 * 1024;
  static constexpr size_t kMaxFileBytes = 64 * 1024 * 1024;

  // Reads and validates `path`. A file that cannot be read or is not text is
  // reported through `diags` and makes the call throw StageFailed.
  static SourceFile read(const std::string& path, Diagnostics& diags);
  // Validates text already in memory (tests, fuzzing).
  static SourceFile fromText(std::string name, std::string text, Diagnostics& diags);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  int lineCount() const { return static_cast<int>(lineStarts_.size()); }
  // The text of 1-based line `line`, without its line terminator.
  std::string_view line(int line) const;

 private:
  SourceFile(std::string name, std::string text);
  void validate(Diagnostics& diags) const;

  std::string name_;
  std::string text_;
  std::vector<size_t> lineStarts_;
};

// Number of UTF-8 code points in `bytes` (the column arithmetic of diagnostics).
int codePointCount(std::string_view bytes);

}  // namespace cnnc
