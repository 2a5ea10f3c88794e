// The convolution lab's problem: the forward of a 3×3 convolution with stride 1 and padding 1 (the shape
// of most convolutions in a ResNet), x [N, C, H, W] ⊛ w [K, C, 3, 3] → y [N, K, H, W], f32, no bias:
//   y[n, k, p, q] = Σ_{c, r, s} x[n, c, p + r − 1, q + s − 1] · w[k, c, r, s]   (x outside the image is 0).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/kernel_lab/lab.h"

namespace lab {

struct Conv2dProblem {
  std::string name;
  int64_t N = 0, C = 0, H = 0, W = 0, K = 0;
  std::vector<float> x, w;  // uniform in [-1, 1)
  int64_t output_size() const { return N * K * H * W; }
  double flops() const { return 2.0 * double(N * K * C * 9 * H * W); }  // one multiply and one add per term
};

Conv2dProblem make_conv2d_problem(std::string name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                  uint64_t seed);
// A ResNet-18 (width 64) layer1 convolution on 32×32 images (the small-image stem), batch 8: 0.6 GFLOP.
Conv2dProblem resnet_conv2d_problem();
// Small problems for --check: sizes that are no multiple of any tile, planes smaller than a tile.
std::vector<Conv2dProblem> conv2d_check_problems();

// The definition above, in double.
std::vector<double> conv2d_reference(const Conv2dProblem& p);
// The allowance a float result gets against the reference: C·9 products summed in some order.
double conv2d_tolerance(const Conv2dProblem& p);

// The numbered variants (conv2d_N_*.cpp). Each overwrites y [N, K, H, W].
void conv2d_1_direct(const Conv2dProblem& p, float* y);
void conv2d_2_im2col(const Conv2dProblem& p, float* y);
void conv2d_3_blocked(const Conv2dProblem& p, float* y);
void conv2d_4_threads(const Conv2dProblem& p, float* y);
// The engine's own CPU kernel (kernels/cpu/conv2d.cpp: im2col + the engine's GEMM, kernels/cpu/gemm.cpp).
void conv2d_engine_cpu(const Conv2dProblem& p, float* y);

// CUDA variants (conv2d.cu, built with the CUDA backend): variant 1 one thread per output, 2 a
// shared-memory tile per block. Timed with events under `policy` (once when null); skipped, with the
// reason, without a CUDA device.
Timing conv2d_cuda(int variant, const Conv2dProblem& p, std::vector<float>& y, const TimingPolicy* policy);

}  // namespace lab
