// Copies between host and device memory for the engine's copy hook (engine/memory.h). Host memory of
// unknown origin goes through a per-device page-locked staging buffer in 8 MiB chunks: pageable copies
// would be staged by the driver anyway, and page-locked ones run at full link speed.
#pragma once
#include <cstddef>

#include "kernels/common/dtype.h"

namespace scpn::cuda {

// Host-involved copies return when the bytes have arrived (the host may read or reuse its buffer);
// device-to-device copies are enqueued on the destination device's stream, ordered before later work.
void copy_between(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace scpn::cuda
