#include "Diagnostics.h"

#include <algorithm>
#include <cctype>
#include <tuple>

#include <fmt/format.h>

#include "SourceFile.h"

namespace cnnc {

void Diagnostics::error(const Location& loc, std::string message) {
  if (static_cast<int>(errors_.size()) >= kMaxErrors) throw StageFailed();
  errors_.push_back({loc, std::move(message)});
  if (static_cast<int>(errors_.size()) == kMaxErrors) {
    errors_.push_back({loc, fmt::format("too many errors ({}), stopping", kMaxErrors)});
    throw StageFailed();
  }
}

void Diagnostics::fatal(const Location& loc, std::string message) {
  error(loc, std::move(message));
  throw StageFailed();
}

std::string Diagnostics::render(const Diagnostic& d) const {
  std::string out =
      fmt::format("{}:{}:{}: error: {}\n", d.loc.file, d.loc.line, d.loc.col, d.message);
  if (!source_ || d.loc.line < 1 || d.loc.line > source_->lineCount()) return out;

  // Show the line, cut to a readable width around the caret when it is long.
  std::string_view line = source_->line(d.loc.line);
  constexpr size_t kShown = 160;
  size_t caretByte = 0;
  for (int cp = 1; caretByte < line.size() && cp < d.loc.col; ++cp) {
    ++caretByte;
    while (caretByte < line.size() && (static_cast<unsigned char>(line[caretByte]) & 0xC0) == 0x80)
      ++caretByte;
  }
  size_t begin = caretByte > kShown / 2 ? caretByte - kShown / 2 : 0;
  // Never start in the middle of a UTF-8 sequence.
  while (begin > 0 && (static_cast<unsigned char>(line[begin]) & 0xC0) == 0x80) --begin;
  std::string_view shown = line.substr(begin, kShown);
  while (!shown.empty() && (static_cast<unsigned char>(shown.back()) & 0xC0) == 0x80 &&
         begin + shown.size() < line.size())
    shown.remove_suffix(1);
  out += begin > 0 ? "..." : "";
  out += shown;
  out += "\n";

  // The caret line keeps the tabs of the source so that it lines up.
  std::string caret = begin > 0 ? "   " : "";
  std::string_view before = line.substr(begin, caretByte - begin);
  for (size_t i = 0; i < before.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(before[i]);
    if ((c & 0xC0) == 0x80) continue;
    caret += c == '\t' ? '\t' : ' ';
  }
  caret += '^';
  int tildes = std::min(std::max(d.loc.length, 1), 80) - 1;
  caret.append(static_cast<size_t>(tildes), '~');
  out += caret + "\n";
  return out;
}

std::string Diagnostics::render() const {
  // In file order: stages report in their own order, readers read top down.
  std::vector<Diagnostic> sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.loc.line, a.loc.col) < std::tie(b.loc.line, b.loc.col);
  });
  std::string out;
  for (const auto& d : sorted) out += render(d);
  return out;
}

void internalError(const char* file, int line, const std::string& message) {
  throw InternalError(fmt::format("{} (at {}:{})", message, file, line));
}

// Edit distance where swapping two neighbours counts as one typo (optimal
// string alignment), ignoring case: `rleu` is one step from `relu`.
static size_t editDistance(const std::string& a, const std::string& b) {
  auto same = [&](size_t i, size_t j) {
    return std::tolower(static_cast<unsigned char>(a[i])) ==
           std::tolower(static_cast<unsigned char>(b[j]));
  };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (same(i - 1, j - 1) ? 0 : 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.size() > 64) return "";
  std::string best;
  size_t bestDistance = 0;
  for (const auto& candidate : candidates) {
    size_t d = editDistance(word, candidate);
    if (best.empty() || d < bestDistance) best = candidate, bestDistance = d;
  }
  // A typo changes about one character in three, at least one, at most three.
  size_t allowed = std::clamp<size_t>(std::max(word.size(), best.size()) / 3, 1, 3);
  return !best.empty() && bestDistance <= allowed ? best : "";
}

std::string didYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string match = closestMatch(word, candidates);
  return match.empty() ? "" : fmt::format("; did you mean '{}'?", match);
}

}  // namespace cnnc
