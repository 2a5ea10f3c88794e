// The counter-based random numbers (Philox 4x32-10) that every device draws identically: the header the
// layers above the engine include for seeded streams (kernels/common/philox.h defines them).
#pragma once
#include "kernels/common/philox.h"
