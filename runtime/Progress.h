// Progress display for long work counted in steps (an epoch's batches, a
// dataset's chunks): on a terminal a one-line bar redrawn in place, otherwise
// plain lines that a log file can keep. Knows nothing of training: the caller
// supplies the label, the counts and a detail text.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace cnnc {

class Progress {
 public:
  enum class Style {
    Bar,    // one line redrawn with '\r', at most ~10 times a second
    Lines,  // the summary line per task, and for long tasks a line per tenth at most
    None    // nothing
  };
  // Seconds on a monotonic clock; replaceable so that tests control time.
  using Clock = std::function<double()>;

  // Whether `out` is a terminal: only std::cout, std::cerr and std::clog can
  // be, when their file descriptor is one (any other stream is not).
  static bool isTerminal(const std::ostream& out);

  Progress(std::ostream& out, Style style, Clock clock = {});

  Style style() const { return style_; }

  // Starts a task of `total` steps; `label` leads its lines ("epoch 3/10").
  void start(const std::string& label, int64_t total);
  // `done` of the task's steps are finished and `items` processed so far (for
  // the rate: images/s); `detail` follows the counts ("loss 0.43  acc 87.2%").
  void update(int64_t done, int64_t items, const std::string& detail);
  // Ends the task: its summary line replaces the bar.
  void finish(const std::string& summary);
  // A line of its own, between or during tasks (a drawn bar is cleared first
  // and redrawn at the next update).
  void message(const std::string& line);

  // Removes a drawn bar (before an error is reported, say).
  void clear();

  // Seconds since start().
  double elapsed() const;

  // Redraws of the bar at most this often, in seconds.
  static constexpr double kRedrawInterval = 0.1;
  // Lines mode writes an intermediate line only this long after the last
  // one, so that short tasks give only their summary line.
  static constexpr double kLineInterval = 2.0;

 private:
  void drawBar(int64_t done, int64_t items, const std::string& detail);

  std::ostream& out_;
  Style style_;
  Clock clock_;
  std::string label_;
  int64_t total_ = 0;
  double startTime_ = 0;
  double lastDraw_ = -1;  // < 0: nothing drawn yet in this task
  double lastLine_ = 0;
  int nextTenth_ = 1;       // Lines: the next tenth of the task that may get a line
  size_t drawnLength_ = 0;  // Bar: the length of the line now on screen, 0 if none
};

// "1:05" or "2:03:07".
std::string formatDuration(double seconds);

}  // namespace cnnc
