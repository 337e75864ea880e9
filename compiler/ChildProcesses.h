// Independent compile jobs run in child processes, several at a time: Halide
// lowers and LLVM compiles one pipeline on one core, and a network's
// pipelines (batch N, batch 1, activations, train step) share nothing but
// the files they write.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace cnnc {

struct ChildJob {
  std::string description;     // for messages: "forward (batch N)"
  std::function<void()> work;  // runs in the child; a throw fails the job
};

// Runs every job, at most `parallelism` at once (each in a fork()ed child;
// with parallelism 1, in this process). `done` is called in this process as
// each job finishes, with its description and seconds. The first job to
// fail is rethrown here once all have stopped: a Halide::CompileError as
// one, anything else as an EmitError, with the child's message.
void runChildJobs(const std::vector<ChildJob>& jobs, int parallelism,
                  const std::function<void(const std::string&, double)>& done);

// The cores this process may run on.
int availableCores();

}  // namespace cnnc
