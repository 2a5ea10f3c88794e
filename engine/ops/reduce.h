// Differentiable reductions. dims may be negative; an empty dims list means all dimensions.
// sum: d/dx = broadcast of the output gradient; mean: the same divided by the count.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace scpn {

Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Max over dims (no gradient): used for statistics and tests.
Tensor amax(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Sums a broadcast gradient back to `shape` (the inverse of broadcasting), with autograd.
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace scpn
