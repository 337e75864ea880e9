#include "Progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include <unistd.h>

namespace cnnc {

namespace {

constexpr int kBarWidth = 24;

double steadySeconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string formatRate(double itemsPerSecond) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f/s", itemsPerSecond);
  return text;
}

}  // namespace

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto total = static_cast<int64_t>(std::llround(seconds));
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  else
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  return text;
}

bool Progress::isTerminal(const std::ostream& out) {
  int fd = -1;
  if (&out == &std::cout)
    fd = STDOUT_FILENO;
  else if (&out == &std::cerr || &out == &std::clog)
    fd = STDERR_FILENO;
  return fd >= 0 && ::isatty(fd) == 1;
}

Progress::Progress(std::ostream& out, Style style, Clock clock)
    : out_(out), style_(style), clock_(clock ? std::move(clock) : Clock(steadySeconds)) {}

double Progress::elapsed() const {
  return clock_() - startTime_;
}

void Progress::start(const std::string& label, int64_t total) {
  label_ = label;
  total_ = std::max<int64_t>(total, 0);
  startTime_ = clock_();
  lastDraw_ = -1;
  lastLine_ = startTime_;
  nextTenth_ = 1;
}

void Progress::update(int64_t done, int64_t items, const std::string& detail) {
  if (style_ == Style::None) return;
  double now = clock_();
  if (style_ == Style::Bar) {
    if (lastDraw_ >= 0 && now - lastDraw_ < kRedrawInterval && done < total_) return;
    lastDraw_ = now;
    drawBar(done, items, detail);
    return;
  }
  // Lines: a line when a new tenth is reached and the last line is old
  // enough; the tenths passed meanwhile are skipped, so at most nine lines.
  if (total_ <= 0 || done >= total_) return;
  int tenth = static_cast<int>(done * 10 / total_);
  if (tenth < nextTenth_) return;
  nextTenth_ = tenth + 1;
  if (now - lastLine_ < kLineInterval) return;
  lastLine_ = now;
  double seconds = now - startTime_;
  out_ << label_ << "  " << done << "/" << total_ << "  " << detail;
  if (seconds > 0) out_ << "  " << formatRate(static_cast<double>(items) / seconds);
  out_ << '\n' << std::flush;
}

void Progress::drawBar(int64_t done, int64_t items, const std::string& detail) {
  double seconds = clock_() - startTime_;
  int filled = total_ > 0 ? static_cast<int>(std::min<int64_t>(done, total_) * kBarWidth / total_)
                          : kBarWidth;
  std::string line = label_ + " [" + std::string(filled, '#') +
                     std::string(kBarWidth - filled, '.') + "] " + std::to_string(done) + "/" +
                     std::to_string(total_);
  if (!detail.empty()) line += "  " + detail;
  if (seconds > 0 && items > 0) line += "  " + formatRate(static_cast<double>(items) / seconds);
  if (done > 0 && done < total_)
    line += "  ETA " + formatDuration(seconds / static_cast<double>(done) *
                                      static_cast<double>(total_ - done));
  // Spaces over what is left of a longer previous line.
  size_t length = line.size();
  if (length < drawnLength_) line += std::string(drawnLength_ - length, ' ');
  out_ << '\r' << line << std::flush;
  drawnLength_ = length;
}

void Progress::clear() {
  if (drawnLength_ == 0) return;
  out_ << '\r' << std::string(drawnLength_, ' ') << '\r' << std::flush;
  drawnLength_ = 0;
  lastDraw_ = -1;  // the bar comes back at the next update
}

void Progress::finish(const std::string& summary) {
  if (style_ == Style::None) return;
  clear();
  out_ << summary << '\n' << std::flush;
}

void Progress::message(const std::string& line) {
  if (style_ == Style::None) return;
  clear();
  out_ << line << '\n' << std::flush;
}

}  // namespace cnnc
