// The engine's one exception type, scpn::Error, with cat() and SCPN_CHECK: the header every layer above
// kernels/ includes for them (kernels/common/error.h defines them, shared with the kernels).
#pragma once
#include "kernels/common/error.h"
