// The gradient-integration lab's problem: K task gradients of a list of prunable tensors, stored like the
// engine's flat gradient arena (task k's gradients of every tensor one after the other), merged by the
// conflict-aware rule of SCPN_METHOD.md §4 step 3 with the defaults (`last`, cosine weights, γ = 0.5).
// Every variant writes the merged gradient of every tensor into one flat output.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/kernel_lab/lab.h"

namespace lab {

inline constexpr int kMaxTasks = 8;  // the lab's variants keep K·(K+1)/2 sums in registers: K <= 8

// One tensor: elements [offset, offset + rows·row_len) of every task's buffer. rows = output filters of a
// convolution weight (each row is one filter's C·R·S weights), 1 for a vector.
struct IntegrationTensor {
  int64_t offset = 0, rows = 1, row_len = 0;
  std::array<int32_t, kMaxTasks> order{};  // π: the order in which partners are visited, a permutation of 0..K−1
};

struct IntegrationProblem {
  std::string name;
  int K = 0;
  double gamma = 0.5;
  std::vector<IntegrationTensor> tensors;
  std::vector<std::vector<float>> grads;  // [K][numel]
  int64_t numel = 0;
  // Bytes a variant must move at the least: every gradient read once, the output written once.
  double compulsory_bytes() const { return double(K + 1) * double(numel) * sizeof(float); }
};

// Tensors given as (rows, row_len); gradients g_k = α_r·base + noise_k per row r, with α_r drawn in
// [0, 1.5), so that tasks agree on some rows and conflict (negative dot products) on others, as the
// parent's and the subnetworks' gradients do.
IntegrationProblem make_grad_integration_problem(std::string name, int K,
                                            const std::vector<std::pair<int64_t, int64_t>>& shapes, uint64_t seed);

// The convolution weights of ResNet-18 (width 64) from the stem to layer3, K = 5 (parent + the four
// default capacities): 2.8 M elements per task, 11 MiB per gradient.
IntegrationProblem resnet18_grad_integration_problem();
// Small problems for --check: odd row lengths, one-row tensors, K from 1 to kMaxTasks.
std::vector<IntegrationProblem> grad_integration_check_problems();

// The method as written, in double: for each task i, hᵢ = gᵢ with every conflicting row projected (the last
// conflicting partner in π decides), cosine weights over the whole tensor, out = K·Σᵢ wᵢ hᵢ.
std::vector<double> grad_integration_reference(const IntegrationProblem& p);

// The numbered variants (integration_N_*.cpp). Each writes out[numel].
void grad_integration_1_naive(const IntegrationProblem& p, float* out);
void grad_integration_2_gram(const IntegrationProblem& p, float* out);
void grad_integration_3_fused(const IntegrationProblem& p, float* out);
void grad_integration_4_threads(const IntegrationProblem& p, float* out);
// The engine's own CPU kernel (kernels/cpu/grad_integration.cpp) on the same problem.
void grad_integration_engine_cpu(const IntegrationProblem& p, float* out);

// CUDA variants (grad_integration.cu, built with the CUDA backend): variant 1 one thread per row, 2 one
// block per row. Copies the problem to the device, runs the kernels (timed with events under `policy`, once
// when it is null), copies the output back. Skipped, with the reason, without a CUDA device.
Timing grad_integration_cuda(int variant, const IntegrationProblem& p, std::vector<float>& out,
                             const TimingPolicy* policy);

}  // namespace lab
