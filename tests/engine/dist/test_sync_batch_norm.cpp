// Synchronised batch norm: N ranks (threads) each holding a slice of a batch give the outputs, input
// gradients, summed affine gradients and running statistics of one batch_norm over the whole batch, in
// f64 to rounding, for 2 and 4 ranks, 4-D and 2-D inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <mutex>

#include "engine/autograd.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"
#include "tests/support/ranks.h"

using namespace scpn;

namespace {

struct Result {
  Tensor y, grad_x, grad_w, grad_b, running_mean, running_var;
};

// One batch norm over x (all ranks' rows), loss Σ y·r.
Result reference(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& r) {
  Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  Tensor rm = zeros({x.size(1)}, DType::f64), rv = ones({x.size(1)}, DType::f64);
  Tensor y = batch_norm(x, w, b, rm, rv, {.training = true, .momentum = 0.3});
  backward(sum(mul(y, r)));
  return {y.detach(), x.grad(), w.grad(), b.grad(), rm, rv};
}

void check_close(const Tensor& a, const Tensor& e, const char* what) {
  const auto report = test::compare(a, e, 1e-12, 1e-10);
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

}  // namespace

TEST_CASE("N ranks with B/N rows each equal one batch norm over B rows") {
  for (int world : {2, 4}) {
    for (bool image : {true, false}) {
      CAPTURE(world);
      CAPTURE(image);
      Generator gen(7);
      const Shape shape = image ? Shape{8, 3, 2, 3} : Shape{8, 5};
      const int64_t c = shape[1], rows = shape[0] / world;
      Tensor x = add_scalar(normal(shape, 0, 2, gen, DType::f64), 3.0);  // off-centre: a real mean to remove
      Tensor r = normal(shape, 0, 1, gen, DType::f64);
      Tensor w = uniform({c}, 0.5, 1.5, gen, DType::f64), b = normal({c}, 0, 1, gen, DType::f64);
      const Result ref = reference(x, w, b, r);

      std::mutex m;
      Tensor grad_w_sum = zeros({c}, DType::f64), grad_b_sum = zeros({c}, DType::f64);
      auto outcomes = test::run_ranks(world, 20, [&](int rank, dist::TcpCommunicator& comm) {
        Tensor xr = x.slice(rank * rows, (rank + 1) * rows).clone().requires_grad_();
        Tensor wr = w.clone().requires_grad_(), br = b.clone().requires_grad_();
        Tensor rm = zeros({c}, DType::f64), rv = ones({c}, DType::f64);
        BatchNormOptions opt{.training = true, .momentum = 0.3};
        opt.sync_group = &comm;
        Tensor y = batch_norm(xr, wr, br, rm, rv, opt);
        backward(sum(mul(y, r.slice(rank * rows, (rank + 1) * rows))));
        std::lock_guard<std::mutex> lock(m);
        check_close(y, ref.y.slice(rank * rows, (rank + 1) * rows), "y");
        check_close(xr.grad(), ref.grad_x.slice(rank * rows, (rank + 1) * rows), "grad x");
        check_close(rm, ref.running_mean, "running mean");
        check_close(rv, ref.running_var, "running var");
        grad_w_sum = add(grad_w_sum, wr.grad());
        grad_b_sum = add(grad_b_sum, br.grad());
      });
      for (auto& o : outcomes) REQUIRE_MESSAGE(!o.threw, o.error);
      check_close(grad_w_sum, ref.grad_w, "Σ ranks' grad weight");
      check_close(grad_b_sum, ref.grad_b, "Σ ranks' grad bias");
    }
  }
}

TEST_CASE("one row per rank is enough; one value per channel in the whole group is refused") {
  auto two = test::run_ranks(2, 5, [&](int rank, dist::TcpCommunicator& comm) {
    BatchNormOptions opt;
    opt.sync_group = &comm;
    Tensor y = batch_norm(full({1, 2}, rank, DType::f64), Tensor(), Tensor(), Tensor(), Tensor(), opt);
    const double expected = rank == 0 ? -1 / std::sqrt(1 + 4e-5) : 1 / std::sqrt(1 + 4e-5);  // var 0.25, eps 1e-5
    CHECK(y.to_vector()[0] == doctest::Approx(expected).epsilon(1e-12));
  });
  for (auto& o : two) CHECK_MESSAGE(!o.threw, o.error);
  auto outcomes = test::run_ranks(1, 5, [&](int, dist::TcpCommunicator& comm) {
    BatchNormOptions opt;
    opt.sync_group = &comm;
    batch_norm(ones({1, 2}, DType::f64), Tensor(), Tensor(), Tensor(), Tensor(), opt);
  });
  REQUIRE(outcomes[0].threw);
  CHECK(outcomes[0].error == "sync_batch_norm: expected more than 1 value per channel over the group when training, got 1");
}
