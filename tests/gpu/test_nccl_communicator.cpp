// The NCCL communicator on the device: one rank's collectives against the values they must give, the
// control plane's checks before each collective, and two ranks asked to share one GPU ending with NCCL's
// error in a message instead of a hang (NCCL wants one GPU per rank).
#include <doctest/doctest.h>

#include <thread>

#include "engine/devices.h"
#include "engine/dist/connect.h"
#include "tests/support/ranks.h"
#include "tests/support/skip.h"

using namespace scpn;

namespace {

bool skip_here() {
  if (!dist::nccl_available()) {
    test::skip_test_case("this build has no NCCL");
    return true;
  }
  if (cuda_device_count() == 0) {
    test::skip_test_case("no CUDA device: " + no_cuda_device_reason());
    return true;
  }
  return false;
}

}  // namespace

TEST_CASE("one rank: all_reduce, broadcast, all_gather and barrier on the GPU") {
  if (skip_here()) return;
  dist::LaunchInfo info;
  info.master_port = test::free_port();
  const Device gpu{DeviceType::cuda, 0};
  auto comm = dist::connect(info, "nccl", gpu, dist::Seconds(60));
  CHECK(std::string(comm->backend()) == "nccl");
  Tensor t = from_vector({1.5, -2.0, 3.25}, {3}, DType::f32, gpu);
  comm->all_reduce_sum(t, "sum");
  CHECK(t.to_vector() == std::vector<double>{1.5, -2.0, 3.25});
  Tensor b = from_vector({7, 8}, {2}, DType::f64, gpu);
  comm->broadcast(b, 0, "broadcast");
  CHECK(b.to_vector() == std::vector<double>{7, 8});
  Tensor out = Tensor::empty({1, 2}, DType::f64, gpu);
  comm->all_gather(b, out, "gather");
  CHECK(out.to_vector() == std::vector<double>{7, 8});
  comm->barrier("barrier");
  CHECK(comm->all_gather_text("x", "text") == std::vector<std::string>{"x"});
  // A CPU tensor is refused with the devices named.
  CHECK_THROWS_WITH(comm->all_reduce_sum(zeros({2}), "cpu tensor"),
                    "all_reduce 'cpu tensor': the tensor must be on cuda:0, got cpu");
}

TEST_CASE("two ranks on one GPU: NCCL's answer comes back as an error, not a hang") {
  if (skip_here()) return;
  dist::LaunchInfo info;
  info.world_size = 2;
  info.master_port = test::free_port();
  std::vector<std::string> errors(2);
  std::vector<std::vector<double>> sums(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      dist::LaunchInfo mine = info;
      mine.rank = r;
      try {
        auto comm = dist::connect(mine, "nccl", Device{DeviceType::cuda, 0}, dist::Seconds(30));
        Tensor t = full({4}, r + 1, DType::f32, Device{DeviceType::cuda, 0});
        comm->all_reduce_sum(t, "sum");
        sums[size_t(r)] = t.to_vector();
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  if (errors[0].empty() && errors[1].empty()) {
    MESSAGE("this NCCL lets two ranks share a GPU");
    CHECK(sums[0] == std::vector<double>{3, 3, 3, 3});
    CHECK(sums[1] == sums[0]);
  } else {
    MESSAGE("rank 0: ", errors[0], "\nrank 1: ", errors[1]);
    CHECK(!errors[0].empty());
    CHECK(!errors[1].empty());
  }
}
