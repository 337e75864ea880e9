#include "ChildProcesses.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>

#include <fmt/format.h>

#include <Halide.h>

#include "Emit.h"

namespace cnnc {

namespace {

using Clock = std::chrono::steady_clock;

// A failure as the child reports it: its kind ('H' for a Halide compile
// error, 'E' for anything else) and message.
struct Failure {
  char kind = 'E';
  std::string message;
};

[[noreturn]] void rethrow(const Failure& failure) {
  if (failure.kind == 'H') throw Halide::CompileError(failure.message);
  throw EmitError(failure.message);
}

std::optional<Failure> runHere(const ChildJob& job) {
  try {
    job.work();
    return std::nullopt;
  } catch (const Halide::CompileError& e) {
    return Failure{'H', e.what()};
  } catch (const std::exception& e) {
    return Failure{'E', e.what()};
  }
}

// In the child: runs the job and reports a failure on `fd`; never returns.
[[noreturn]] void childMain(const ChildJob& job, int fd) {
  std::optional<Failure> failure = runHere(job);
  if (failure) {
    std::string report = failure->kind + failure->message.substr(0, 16000);
    ssize_t ignored = ::write(fd, report.data(), report.size());
    (void)ignored;
  }
  ::close(fd);
  // No static destructors or atexit handlers: they belong to the parent.
  std::_Exit(failure ? 1 : 0);
}

struct Running {
  size_t job;
  int fd;
  Clock::time_point started;
};

std::string readAll(int fd) {
  std::string text;
  char chunk[4096];
  ssize_t got;
  while ((got = ::read(fd, chunk, sizeof chunk)) > 0) text.append(chunk, static_cast<size_t>(got));
  return text;
}

}  // namespace

int availableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

void runChildJobs(const std::vector<ChildJob>& jobs, int parallelism,
                  const std::function<void(const std::string&, double)>& done) {
  auto seconds = [](Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  };
  if (parallelism <= 1 || jobs.size() <= 1) {
    for (const ChildJob& job : jobs) {
      Clock::time_point started = Clock::now();
      if (std::optional<Failure> failure = runHere(job)) rethrow(*failure);
      if (done) done(job.description, seconds(started));
    }
    return;
  }

  std::map<pid_t, Running> running;
  std::optional<Failure> firstFailure;
  size_t next = 0;
  while (next < jobs.size() || !running.empty()) {
    while (!firstFailure && next < jobs.size() && static_cast<int>(running.size()) < parallelism) {
      int fds[2];
      if (::pipe(fds) != 0) throw EmitError(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
      // Buffered output would otherwise be written by the parent and the child.
      std::cout.flush();
      std::cerr.flush();
      std::fflush(nullptr);
      pid_t pid = ::fork();
      if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw EmitError(fmt::format("cannot start a compile process: {}", std::strerror(errno)));
      }
      if (pid == 0) {
        ::close(fds[0]);
        childMain(jobs[next], fds[1]);
      }
      ::close(fds[1]);
      running[pid] = Running{next, fds[0], Clock::now()};
      ++next;
    }
    if (running.empty()) break;
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw EmitError(fmt::format("waiting for a compile process: {}", std::strerror(errno)));
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    Running child = it->second;
    running.erase(it);
    std::string report = readAll(child.fd);
    ::close(child.fd);
    const ChildJob& job = jobs[child.job];
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (done) done(job.description, seconds(child.started));
      continue;
    }
    Failure failure;
    if (!report.empty()) {
      failure.kind = report[0];
      failure.message = report.substr(1);
    } else if (WIFSIGNALED(status)) {
      failure.message = fmt::format("compiling the {} pipeline was killed by signal {} ({}){}", job.description,
                                    WTERMSIG(status), strsignal(WTERMSIG(status)),
                                    WTERMSIG(status) == SIGKILL ? "; out of memory?" : "");
    } else {
      failure.message = fmt::format("compiling the {} pipeline failed (exit status {})", job.description,
                                    WEXITSTATUS(status));
    }
    if (!firstFailure) firstFailure = failure;
  }
  if (firstFailure) rethrow(*firstFailure);
}

}  // namespace cnnc
