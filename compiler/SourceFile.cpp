#include "SourceFile.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "Diagnostics.h"

namespace cnnc {

int codePointCount(std::string_view bytes) {
  int count = 0;
  for (char c : bytes)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  return count;
}

SourceFile::SourceFile(std::string name, std::string text)
    : name_(std::move(name)), text_(std::move(text)) {
  // A UTF-8 byte order mark is not part of the text.
  if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) text_.replace(0, 3, "");
  lineStarts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n' && i + 1 < text_.size()) lineStarts_.push_back(i + 1);
}

std::string_view SourceFile::line(int line) const {
  if (line < 1 || line > lineCount()) return {};
  size_t begin = lineStarts_[line - 1];
  size_t end = text_.find('\n', begin);
  if (end == std::string::npos) end = text_.size();
  if (end > begin && text_[end - 1] == '\r') --end;
  return std::string_view(text_).substr(begin, end - begin);
}

SourceFile SourceFile::read(const std::string& path, Diagnostics& diags) {
  Location fileLoc{path, 0, 0, 1};
  std::ifstream in(path, std::ios::binary);
  if (!in) diags.fatal(fileLoc, fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) diags.fatal(fileLoc, fmt::format("cannot read '{}' (is it a directory?)", path));
  if (static_cast<uint64_t>(size) > kMaxFileBytes)
    diags.fatal(fileLoc,
                fmt::format("'{}' is {} bytes, larger than the {} MiB a .net file may have", path,
                            size, kMaxFileBytes >> 20));
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), size);
  if (!in) diags.fatal(fileLoc, fmt::format("cannot read '{}'", path));
  return fromText(path, std::move(text), diags);
}

SourceFile SourceFile::fromText(std::string name, std::string text, Diagnostics& diags) {
  SourceFile source(std::move(name), std::move(text));
  source.validate(diags);
  return source;
}

// Length of the valid UTF-8 sequence at text[i], or 0 when it is not valid
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
static size_t utf8SequenceLength(const std::string& text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t length;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0)
    length = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0)
    length = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0)
    length = 4, cp = c & 0x07;
  else
    return 0;
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static const uint32_t kMinimum[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

void SourceFile::validate(Diagnostics& diags) const {
  auto at = [&](int line, int col) { return Location{name_, line, col, 1}; };
  if (text_.empty()) diags.fatal(at(1, 1), "file is empty; expected 'network NAME'");
  int line = 1;
  int col = 1;
  size_t lineStart = 0;
  for (size_t i = 0; i < text_.size(); ++col) {
    unsigned char c = static_cast<unsigned char>(text_[i]);
    if (c == '\n') {
      ++line;
      col = 0;
      lineStart = ++i;
      continue;
    }
    if (i - lineStart >= kMaxLineBytes)
      diags.fatal(at(line, 1),
                  fmt::format("line {} is longer than {} KiB", line, kMaxLineBytes / 1024));
    if (c < 0x20 && c != '\t' && c != '\r' && c != '\f')
      diags.fatal(
          at(line, col),
          fmt::format("file is not text: control byte 0x{:02X} (is this a binary file?)", c));
    size_t length = utf8SequenceLength(text_, i);
    if (length == 0)
      diags.fatal(at(line, col), fmt::format("file is not UTF-8 text: invalid byte 0x{:02X}", c));
    i += length;
  }
}

}  // namespace cnnc
