// The convolution lab's problems, its f64 reference and the engine's kernel on the same buffers (conv2d.h).
#include "tools/kernel_lab/conv2d.h"

#include <cmath>
#include <utility>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"

namespace lab {

Conv2dProblem make_conv2d_problem(std::string name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                  uint64_t seed) {
  Conv2dProblem p;
  p.name = std::move(name);
  p.N = N;
  p.C = C;
  p.H = H;
  p.W = W;
  p.K = K;
  Random random(seed);
  p.x.resize(size_t(N * C * H * W));
  p.w.resize(size_t(K * C * 9));
  for (float& v : p.x) v = float(random.uniform());
  for (float& v : p.w) v = float(random.uniform());
  return p;
}

Conv2dProblem resnet_conv2d_problem() {
  return make_conv2d_problem("3x3 convolution [8, 64, 32, 32] -> [8, 64, 32, 32] (ResNet-18 layer1, 32 px)", 8, 64, 32,
                           32, 64, 2026);
}

std::vector<Conv2dProblem> conv2d_check_problems() {
  return {make_conv2d_problem("[2, 3, 7, 9] -> 5 filters", 2, 3, 7, 9, 5, 1),
          make_conv2d_problem("[1, 16, 5, 4] -> 13 filters (plane smaller than a tile)", 1, 16, 5, 4, 13, 2),
          make_conv2d_problem("[3, 8, 17, 33] -> 32 filters", 3, 8, 17, 33, 32, 3),
          make_conv2d_problem("[2, 64, 8, 8] -> 70 filters", 2, 64, 8, 8, 70, 4),
          make_conv2d_problem("[1, 1, 1, 1] -> 1 filter", 1, 1, 1, 1, 1, 5)};
}

std::vector<double> conv2d_reference(const Conv2dProblem& p) {
  std::vector<double> y(size_t(p.output_size()));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t k = 0; k < p.K; ++k)
      for (int64_t oh = 0; oh < p.H; ++oh)
        for (int64_t ow = 0; ow < p.W; ++ow) {
          double s = 0;
          for (int64_t c = 0; c < p.C; ++c)
            for (int64_t r = 0; r < 3; ++r)
              for (int64_t q = 0; q < 3; ++q) {
                const int64_t ih = oh + r - 1, iw = ow + q - 1;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
                s += double(p.x[size_t(((n * p.C + c) * p.H + ih) * p.W + iw)]) *
                     double(p.w[size_t(((k * p.C + c) * 3 + r) * 3 + q)]);
              }
          y[size_t(((n * p.K + k) * p.H + oh) * p.W + ow)] = s;
        }
  return y;
}

double conv2d_tolerance(const Conv2dProblem& p) {
  // Each term is below 1 in magnitude; float sums of C·9 of them in any order (and FMA or not) stay well
  // within this, while an indexing mistake is off by a whole term.
  return 1e-6 * double(p.C * 9);
}

void conv2d_engine_cpu(const Conv2dProblem& p, float* y) {
  scpn::Conv2dParams params;
  params.N = p.N;
  params.C = p.C;
  params.H = p.H;
  params.W = p.W;
  params.K = p.K;
  params.R = params.S = 3;
  params.pad_h = params.pad_w = 1;
  scpn::ExecContext ctx{scpn::kCPU};
  ctx.gemm = scpn::cpu::gemm_ours;
  scpn::cpu::conv2d_forward(ctx, scpn::DType::f32, params, p.x.data(), p.w.data(), nullptr, y);
}

}  // namespace lab
