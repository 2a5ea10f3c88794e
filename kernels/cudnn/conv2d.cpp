// conv2d forward, data gradient and filter gradient on cuDNN (contract: kernels/conv2d.h). The algorithm
// for each (direction, shape, dtype, math mode, device) is measured once with cudnnFind*AlgorithmEx and
// cached. Checked against the CPU kernels through the conv2d op by gpu/conv2d.
#include "kernels/conv2d.h"

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include "kernels/cuda/scratch.h"
#include "kernels/cudnn/descriptors.h"

namespace scpn::cudnn {

namespace {

enum class Direction : int { forward, backward_data, backward_filter };

// The workspace cap when the caller sets none (p.workspace_limit_bytes == 0). The search allocates only
// what the hungriest algorithm under the cap asks for, so small convolutions never touch this much; for
// ResNet layers at batch 256 the FFT / Winograd variants that win need tens to a few hundred MiB, and an
// algorithm that needs more than 1 GiB (over 1% of an H100) is rarely the fastest by enough to pay for it.
constexpr size_t kDefaultWorkspaceLimit = size_t(1) << 30;

size_t workspace_cap(const Conv2dParams& p) {
  return p.workspace_limit_bytes > 0 ? size_t(p.workspace_limit_bytes) : kDefaultWorkspaceLimit;
}

// TF32 tensor cores for f32 when the context allows them; otherwise plain FMA arithmetic (no tensor-core
// rounding), which is what parity mode and f64 need.
cudnnMathType_t requested_math(const ExecContext& ctx, DType t) {
  return t == DType::f32 && ctx.allow_tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

// Whether a measured algorithm's math type fits the request. Down-conversion of f32 inputs to f16/bf16 is
// never acceptable; under FMA only FMA (or the default, which the FMA descriptor then pins) is.
bool math_allowed(cudnnMathType_t requested, cudnnMathType_t found) {
  if (found == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  if (requested == CUDNN_FMA_MATH) return found == CUDNN_FMA_MATH || found == CUDNN_DEFAULT_MATH;
  return true;
}

std::string describe(const Conv2dParams& p, int64_t images, DType t) {
  return cat("x [", images, ", ", p.C, ", ", p.H, ", ", p.W, "] w [", p.K, ", ", p.channels_per_group(), ", ", p.R,
             ", ", p.S, "] stride ", p.stride_h, "x", p.stride_w, " pad ", p.pad_h, "x", p.pad_w, " groups ", p.groups,
             " ", dtype_name(t));
}

// Images per cuDNN call: cuDNN's legacy descriptors hold int sizes and strides, so a call's x and y must
// each stay under 2^31 elements; larger batches run in slices of the batch.
int64_t images_per_call(const Conv2dParams& p, const char* kernel) {
  const int64_t per_image = std::max(p.C * p.H * p.W, p.K * p.P() * p.Q());
  const int64_t limit = std::numeric_limits<int>::max();
  SCPN_CHECK(per_image <= limit, kernel, ": one image of ", per_image, " elements exceeds cuDNN's 2^31 limit");
  return std::max<int64_t>(1, std::min(p.N, limit / per_image));
}

// The descriptors of one cuDNN call over `images` images.
struct CallDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;

  CallDescriptors(const char* kernel, DType t, const Conv2dParams& p, int64_t images, cudnnMathType_t math) {
    const cudnnDataType_t type = data_type(t, kernel);
    x.set_nchw(type, to_int(images, "N", kernel), to_int(p.C, "C", kernel), to_int(p.H, "H", kernel),
               to_int(p.W, "W", kernel));
    y.set_nchw(type, to_int(images, "N", kernel), to_int(p.K, "K", kernel), to_int(p.P(), "P", kernel),
               to_int(p.Q(), "Q", kernel));
    w.set_kcrs(type, to_int(p.K, "K", kernel), to_int(p.channels_per_group(), "C/groups", kernel),
               to_int(p.R, "R", kernel), to_int(p.S, "S", kernel));
    SCPN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv.get(), to_int(p.pad_h, "pad_h", kernel), to_int(p.pad_w, "pad_w", kernel),
        to_int(p.stride_h, "stride_h", kernel), to_int(p.stride_w, "stride_w", kernel), 1, 1,
        CUDNN_CROSS_CORRELATION, type));
    SCPN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.get(), to_int(p.groups, "groups", kernel)));
    SCPN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), math));
  }
};

// ---- the algorithm cache -------------------------------------------------------------------------------

struct AlgoChoice {
  int algo = 0;                          // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  cudnnMathType_t math = CUDNN_FMA_MATH;  // what the descriptor must say when the algorithm runs
  size_t workspace = 0;
};

using CacheKey = std::array<int64_t, 18>;

CacheKey cache_key(Direction dir, const ExecContext& ctx, DType t, const Conv2dParams& p, int64_t images) {
  return {int64_t(dir), ctx.device.index, int64_t(t), int64_t(requested_math(ctx, t)), int64_t(ctx.deterministic),
          int64_t(workspace_cap(p)), images, p.C, p.H, p.W, p.K, p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
          p.groups};
}

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}
std::map<CacheKey, AlgoChoice>& cache() {
  static std::map<CacheKey, AlgoChoice> c;
  return c;
}

std::optional<AlgoChoice> cached(const CacheKey& key) {
  std::lock_guard lock(cache_mutex());
  const auto it = cache().find(key);
  if (it == cache().end()) return std::nullopt;
  return it->second;
}

void remember(const CacheKey& key, const AlgoChoice& choice) {
  std::lock_guard lock(cache_mutex());
  cache().emplace(key, choice);
}

// The fastest measured algorithm that succeeded, fits the workspace cap, has an acceptable math type and,
// when the context asks for it, is deterministic. cuDNN returns the results sorted by time.
template <class Perf>
AlgoChoice fastest_usable(const char* kernel, const Perf* results, int count, const ExecContext& ctx, DType t,
                          const Conv2dParams& p, int64_t images) {
  const cudnnMathType_t requested = requested_math(ctx, t);
  for (int i = 0; i < count; ++i) {
    const Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > workspace_cap(p)) continue;
    if (ctx.deterministic && r.determinism != CUDNN_DETERMINISTIC) continue;
    if (!math_allowed(requested, r.mathType)) continue;
    AlgoChoice c;
    c.algo = int(r.algo);
    c.math = requested == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : r.mathType;
    c.workspace = r.memory;
    return c;
  }
  throw Error(cat(kernel, ": cuDNN found no usable algorithm for ", describe(p, images, t),
                  ctx.deterministic ? " among the deterministic ones" : "", " within a workspace of ",
                  workspace_cap(p), " bytes"));
}

// The most workspace any algorithm of this direction needs, among those needing no more than `cap`:
// what the search must offer so that every such algorithm can be timed.
size_t search_workspace(Direction dir, cudnnHandle_t handle, const CallDescriptors& d, size_t cap) {
  size_t most = 0;
  auto consider = [&](cudnnStatus_t status, size_t bytes) {
    if (status == CUDNN_STATUS_SUCCESS && bytes <= cap) most = std::max(most, bytes);
  };
  // Unsupported algorithms answer with an error status here; they are simply not considered.
  switch (dir) {
    case Direction::forward:
      for (int a = 0; a < CUDNN_CONVOLUTION_FWD_ALGO_COUNT; ++a) {
        size_t bytes = 0;
        consider(cudnnGetConvolutionForwardWorkspaceSize(handle, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                                         cudnnConvolutionFwdAlgo_t(a), &bytes),
                 bytes);
      }
      break;
    case Direction::backward_data:
      for (int a = 0; a < CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT; ++a) {
        size_t bytes = 0;
        consider(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                              cudnnConvolutionBwdDataAlgo_t(a), &bytes),
                 bytes);
      }
      break;
    case Direction::backward_filter:
      for (int a = 0; a < CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT; ++a) {
        size_t bytes = 0;
        consider(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, d.x.get(), d.y.get(), d.conv.get(),
                                                                d.w.get(), cudnnConvolutionBwdFilterAlgo_t(a), &bytes),
                 bytes);
      }
      break;
  }
  return most;
}

// Scratch for the search. When the caching allocator cannot provide it (the device is nearly full), the
// search goes on with none: the algorithms that need no workspace are still measured.
std::optional<cuda::Scratch> search_scratch(const ExecContext& ctx, size_t bytes) {
  try {
    return std::optional<cuda::Scratch>(std::in_place, ctx, bytes);
  } catch (const Error&) {
    return std::optional<cuda::Scratch>(std::in_place, ctx, size_t(0));
  }
}

// The cached choice for this call, measuring on the call's own buffers the first time. `out` is the
// buffer the direction writes; the search overwrites it, so callers pass one whose contents do not matter.
// Measuring blocks the host until cuDNN has timed every algorithm (once per shape).
AlgoChoice choose(Direction dir, const char* kernel, const ExecContext& ctx, DType t, const Conv2dParams& p,
                  int64_t images, const CallDescriptors& d, const void* in_a, const void* in_b, void* out) {
  const CacheKey key = cache_key(dir, ctx, t, p, images);
  if (const std::optional<AlgoChoice> hit = cached(key)) return *hit;

  const auto handle = static_cast<cudnnHandle_t>(ctx.dnn);
  const std::optional<cuda::Scratch> ws = search_scratch(ctx, search_workspace(dir, handle, d, workspace_cap(p)));
  int returned = 0;
  AlgoChoice choice;
  switch (dir) {
    case Direction::forward: {
      std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> results{};
      SCPN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(handle, d.x.get(), in_a, d.w.get(), in_b, d.conv.get(),
                                                              d.y.get(), out, int(results.size()), &returned,
                                                              results.data(), ws->get(), ws->bytes()));
      choice = fastest_usable(kernel, results.data(), returned, ctx, t, p, images);
      break;
    }
    case Direction::backward_data: {
      std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> results{};
      SCPN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(handle, d.w.get(), in_a, d.y.get(), in_b,
                                                                   d.conv.get(), d.x.get(), out, int(results.size()),
                                                                   &returned, results.data(), ws->get(), ws->bytes()));
      choice = fastest_usable(kernel, results.data(), returned, ctx, t, p, images);
      break;
    }
    case Direction::backward_filter: {
      std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> results{};
      SCPN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          handle, d.x.get(), in_a, d.y.get(), in_b, d.conv.get(), d.w.get(), out, int(results.size()), &returned,
          results.data(), ws->get(), ws->bytes()));
      choice = fastest_usable(kernel, results.data(), returned, ctx, t, p, images);
      break;
    }
  }
  remember(key, choice);
  return choice;
}

const char* offset(const void* base, int64_t elements, DType t) {
  return static_cast<const char*>(base) + elements * int64_t(dtype_size(t));
}
char* offset(void* base, int64_t elements, DType t) {
  return static_cast<char*>(base) + elements * int64_t(dtype_size(t));
}

}  // namespace

void conv2d_forward(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* x, const void* w,
                    const void* bias, void* y) {
  constexpr const char* kKernel = "conv2d_forward";
  const cudnnDataType_t type = data_type(t, kKernel);
  if (p.N == 0) return;
  const auto handle = static_cast<cudnnHandle_t>(ctx.dnn);
  const Blend one(1.0), zero(0.0);
  TensorDescriptor bias_desc;
  if (bias) bias_desc.set_nchw(type, 1, to_int(p.K, "K", kKernel), 1, 1);
  const int64_t x_image = p.C * p.H * p.W, y_image = p.K * p.P() * p.Q();
  const int64_t per_call = images_per_call(p, kKernel);
  for (int64_t n0 = 0; n0 < p.N; n0 += per_call) {
    const int64_t images = std::min(per_call, p.N - n0);
    CallDescriptors d(kKernel, t, p, images, requested_math(ctx, t));
    const void* xs = offset(x, n0 * x_image, t);
    void* ys = offset(y, n0 * y_image, t);
    const AlgoChoice c = choose(Direction::forward, kKernel, ctx, t, p, images, d, xs, w, ys);
    SCPN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    cuda::Scratch ws(ctx, c.workspace);
    SCPN_CUDNN_CHECK(cudnnConvolutionForward(handle, one.for_type(t), d.x.get(), xs, d.w.get(), w, d.conv.get(),
                                             cudnnConvolutionFwdAlgo_t(c.algo), ws.get(), ws.bytes(),
                                             zero.for_type(t), d.y.get(), ys));
    // y += bias, broadcast over [images, K, P, Q].
    if (bias)
      SCPN_CUDNN_CHECK(cudnnAddTensor(handle, one.for_type(t), bias_desc.get(), bias, one.for_type(t), d.y.get(), ys));
  }
}

void conv2d_backward_data(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* dy, const void* w,
                          void* dx) {
  constexpr const char* kKernel = "conv2d_backward_data";
  data_type(t, kKernel);
  if (p.N == 0) return;
  const auto handle = static_cast<cudnnHandle_t>(ctx.dnn);
  const Blend one(1.0), zero(0.0);
  const int64_t x_image = p.C * p.H * p.W, y_image = p.K * p.P() * p.Q();
  const int64_t per_call = images_per_call(p, kKernel);
  for (int64_t n0 = 0; n0 < p.N; n0 += per_call) {
    const int64_t images = std::min(per_call, p.N - n0);
    CallDescriptors d(kKernel, t, p, images, requested_math(ctx, t));
    const void* dys = offset(dy, n0 * y_image, t);
    void* dxs = offset(dx, n0 * x_image, t);
    const AlgoChoice c = choose(Direction::backward_data, kKernel, ctx, t, p, images, d, w, dys, dxs);
    SCPN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    cuda::Scratch ws(ctx, c.workspace);
    // beta = 0: dx is overwritten, pixels no window covers included.
    SCPN_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, one.for_type(t), d.w.get(), w, d.y.get(), dys, d.conv.get(),
                                                  cudnnConvolutionBwdDataAlgo_t(c.algo), ws.get(), ws.bytes(),
                                                  zero.for_type(t), d.x.get(), dxs));
  }
}

void conv2d_backward_filter(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* dy, const void* x,
                            void* dw) {
  constexpr const char* kKernel = "conv2d_backward_filter";
  data_type(t, kKernel);
  const int64_t w_elements = p.K * p.channels_per_group() * p.R * p.S;
  const auto stream = static_cast<cudaStream_t>(ctx.stream);
  if (p.N == 0) {  // an empty sum: the contract asks for zeros (all-zero bits are 0.0 in f32 and f64)
    SCPN_CUDA_CHECK(cudaMemsetAsync(dw, 0, size_t(w_elements) * dtype_size(t), stream));
    return;
  }
  const auto handle = static_cast<cudnnHandle_t>(ctx.dnn);
  const Blend one(1.0), zero(0.0);
  const int64_t x_image = p.C * p.H * p.W, y_image = p.K * p.P() * p.Q();
  const int64_t per_call = images_per_call(p, kKernel);
  for (int64_t n0 = 0; n0 < p.N; n0 += per_call) {
    const int64_t images = std::min(per_call, p.N - n0);
    CallDescriptors d(kKernel, t, p, images, requested_math(ctx, t));
    const void* xs = offset(x, n0 * x_image, t);
    const void* dys = offset(dy, n0 * y_image, t);
    // The search writes its output: let it write a scratch copy, since dw already holds the earlier
    // slices' sums when the batch runs in several calls.
    const std::optional<AlgoChoice> hit = cached(cache_key(Direction::backward_filter, ctx, t, p, images));
    AlgoChoice c;
    if (hit) {
      c = *hit;
    } else {
      cuda::Scratch probe(ctx, size_t(w_elements) * dtype_size(t));
      c = choose(Direction::backward_filter, kKernel, ctx, t, p, images, d, xs, dys, probe.get());
    }
    SCPN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    cuda::Scratch ws(ctx, c.workspace);
    // The first slice overwrites dw (beta = 0, as the contract requires); later slices add to it, in
    // batch order, so the result does not depend on timing.
    SCPN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, one.for_type(t), d.x.get(), xs, d.y.get(), dys,
                                                    d.conv.get(), cudnnConvolutionBwdFilterAlgo_t(c.algo), ws.get(),
                                                    ws.bytes(), n0 == 0 ? zero.for_type(t) : one.for_type(t),
                                                    d.w.get(), dw));
  }
}

}  // namespace scpn::cudnn
