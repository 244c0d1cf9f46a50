// `longnet check comm`: the smallest end-to-end check of a launch. Every rank joins the
// process grid and round-trips tensors through all-gather, reduce-scatter and all-reduce on
// the chosen device, verifying the values.
#pragma once

#include <c10/core/DeviceType.h>

namespace longnet {

// Returns 0 when every collective gave the expected values on every rank; throws otherwise.
int comm_check(c10::DeviceType device_type, int64_t elements);

}  // namespace longnet
