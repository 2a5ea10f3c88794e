// Runs a test body once with each CPU GEMM of this build in the dispatch slot (ours, and OpenBLAS when
// built): kernels built on GEMM must be right whichever GEMM the context hands them.
#pragma once
#include <doctest/doctest.h>

#include <utility>
#include <vector>

#include "engine/dispatch.h"

namespace scpn::test {

// `body(name)` per GEMM; the registered GEMM is put back when the body ends, a failed REQUIRE included.
template <class Body>
void with_each_cpu_gemm(Body&& body) {
  struct RestoreGemm {
    GemmFn* registered = kernels().gemm.cpu;
    ~RestoreGemm() { kernels().gemm.cpu = registered; }
  } restore;
  std::vector<std::pair<const char*, GemmFn*>> gemms = {{"ours", cpu::gemm_ours}};
#if defined(SCPN_HAVE_OPENBLAS)
  gemms.push_back({"openblas", cpu::gemm_openblas});
#endif
  for (const auto& [name, fn] : gemms) {
    kernels().gemm.cpu = fn;
    CAPTURE(name);
    body(name);
  }
}

}  // namespace scpn::test
