// Device names as configs and command lines write them (engine/devices.h): the strict form check, and
// "auto" / "cuda:N" resolved against the devices this process can use.
#include <doctest/doctest.h>

#include "engine/devices.h"
#include "kernels/common/error.h"

using namespace scpn;

TEST_CASE("device names: auto, cpu and cuda:N pass the form check; anything else names the key") {
  for (const char* good : {"auto", "cpu", "cuda:0", "cuda:12"}) {
    CAPTURE(good);
    CHECK_NOTHROW(check_device_name(good, "device"));
  }
  for (const char* bad : {"", "CPU", "gpu", "cuda", "cuda:", "cuda:-1", "cuda:1x", "cuda: 1", "cuda:99999", "Auto"}) {
    CAPTURE(bad);
    const std::string expected = cat("--device: '", bad, "' is not a device (expected auto, cpu or cuda:N, e.g. cuda:0)");
    CHECK_THROWS_WITH_AS(check_device_name(bad, "--device"), expected.c_str(), Error);
    CHECK_THROWS_WITH_AS(resolve_device(bad, "--device"), expected.c_str(), Error);
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
