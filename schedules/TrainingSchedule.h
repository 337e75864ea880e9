// Schedules of the training step: the forward pass as at inference, and the
// backward pass's gradients stored, vectorized and parallel. Kept apart from
// the algorithms in compiler/Training.cpp and compiler/layers/.
#pragma once

#include "NetworkSchedule.h"
#include "Training.h"

namespace cnnc {

void scheduleTraining(const Network& net, LoweredTraining& training, const ScheduleOptions& options);

}  // namespace cnnc
