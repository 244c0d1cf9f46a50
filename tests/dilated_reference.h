// The brute-force float64 definition (core/dilated_reference.h) under the tests' namespace.
#pragma once

#include "longnet/core/dilated_reference.h"

namespace longnet::testing {
using reference::reference_dilated_attention;
using reference::reference_multiplicity;
using reference::rel_error;
}  // namespace longnet::testing
