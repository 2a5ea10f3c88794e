// Device names as configs and command lines write them (engine/devices.h): the strict form check, and
// "auto" / "cuda:N" resolved against the devices this process can use.
#include <doctest/doctest.h>

#include "engine/devices.h"
#include "kernels/common/error.h"

using namespace scpn;

TEST_CASE("parse_device accepts cpu and cuda:N and names the key on anything else") {
  CHECK(parse_device("cpu", "device") == kCPU);
  CHECK(parse_device("cuda:0", "device") == cuda_device(0));
  CHECK(parse_device("cuda:12", "device") == cuda_device(12));
  for (const char* bad : {"", "CPU", "gpu", "cuda", "cuda:", "cuda:-1", "cuda:1x", "cuda: 1", "cuda:99999", "auto"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(parse_device(bad, "--device"),
                         cat("--device: '", bad, "' is not a device (expected cpu or cuda:N, e.g. cuda:0)").c_str(), Error);
  }
}

TEST_CASE("resolve_device: auto is cuda:0 only when a device is usable; a missing cuda:N says why") {
  const int count = cuda_device_count();
  CHECK(resolve_device("auto", "device") == (count > 0 ? cuda_device(0) : kCPU));
  CHECK(resolve_device("cpu", "device") == kCPU);
  if (count == 0) {
    MESSAGE("no CUDA device here: ", no_cuda_device_reason());
    CHECK_THROWS_WITH_AS(resolve_device("cuda:0", "device"),
                         cat("device: cuda:0 requested, but no CUDA device is usable (", no_cuda_device_reason(), ")").c_str(),
                         Error);
  } else {
    CHECK(resolve_device("cuda:0", "device") == cuda_device(0));
    CHECK_THROWS_WITH_AS(resolve_device(cat("cuda:", count), "device"),
                         cat("device: cuda:", count, " requested, but only ", count, " CUDA device(s) are visible (cuda:0 to cuda:",
                             count - 1, ")").c_str(),
                         Error);
  }
}
