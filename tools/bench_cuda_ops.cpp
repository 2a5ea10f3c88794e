// CUDA benchmark of the engine's GPU kernels on cuda:0 (conv2d, batch norm, GEMM, elementwise, reductions),
// each row set against a floor from the copy bandwidth and GEMM rate measured in the same run.
// Usage: bench_cuda_ops [--quick] [--reps N] [--only GROUP[,GROUP...]]
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "engine/tensor.h"
#include "kernels/cuda/check.h"

using namespace scpn;

namespace {

// ---- what is measured ---------------------------------------------------------------------------------

// conv2d forward + backward-data + backward-filter for every distinct ResNet-18/50 convolution at batch 64
// on 224x224 images, batch norm train forward + backward (cuDNN's and ours, called directly), GEMM (square
// and classifier-layer shapes), and elementwise / reduction kernels on tensors far larger than L2, reported
// as GB/s and as a share of the device-to-device copy bandwidth. Row names are those of
// tools/bench/torch_ops.py (PyTorch, same shapes), which tools/device_check.sh runs beside this one.

// Convolution shapes at batch 64. Names are shared with tools/bench/torch_ops.py (keep the two lists equal).
// r18 / r50: how many convolutions of this shape one forward of that network runs (torchvision layout;
// ResNet-50 puts the stride on the 3x3 of a bottleneck).
struct ConvShape {
  const char* name;
  int r18, r50;
  int64_t cin, cout, in_hw, kernel, stride, pad;
};
const ConvShape kConvShapes[] = {
    // ResNet-18 (and the ResNet-50 shapes it shares)
    {"stem_7x7s2_3-64@224", 1, 1, 3, 64, 224, 7, 2, 3},
    {"3x3_64-64@56", 4, 3, 64, 64, 56, 3, 1, 1},
    {"3x3s2_64-128@56", 1, 0, 64, 128, 56, 3, 2, 1},
    {"3x3_128-128@28", 3, 3, 128, 128, 28, 3, 1, 1},
    {"1x1s2_64-128@56", 1, 0, 64, 128, 56, 1, 2, 0},
    {"3x3s2_128-256@28", 1, 0, 128, 256, 28, 3, 2, 1},
    {"3x3_256-256@14", 3, 5, 256, 256, 14, 3, 1, 1},
    {"1x1s2_128-256@28", 1, 0, 128, 256, 28, 1, 2, 0},
    {"3x3s2_256-512@14", 1, 0, 256, 512, 14, 3, 2, 1},
    {"3x3_512-512@7", 3, 2, 512, 512, 7, 3, 1, 1},
    {"1x1s2_256-512@14", 1, 0, 256, 512, 14, 1, 2, 0},
    // ResNet-50 bottlenecks only
    {"1x1_64-64@56", 0, 1, 64, 64, 56, 1, 1, 0},
    {"1x1_64-256@56", 0, 4, 64, 256, 56, 1, 1, 0},
    {"1x1_256-64@56", 0, 2, 256, 64, 56, 1, 1, 0},
    {"1x1_256-128@56", 0, 1, 256, 128, 56, 1, 1, 0},
    {"3x3s2_128-128@56", 0, 1, 128, 128, 56, 3, 2, 1},
    {"1x1_128-512@28", 0, 4, 128, 512, 28, 1, 1, 0},
    {"1x1s2_256-512@56", 0, 1, 256, 512, 56, 1, 2, 0},
    {"1x1_512-128@28", 0, 3, 512, 128, 28, 1, 1, 0},
    {"1x1_512-256@28", 0, 1, 512, 256, 28, 1, 1, 0},
    {"3x3s2_256-256@28", 0, 1, 256, 256, 28, 3, 2, 1},
    {"1x1_256-1024@14", 0, 6, 256, 1024, 14, 1, 1, 0},
    {"1x1s2_512-1024@28", 0, 1, 512, 1024, 28, 1, 2, 0},
    {"1x1_1024-256@14", 0, 5, 1024, 256, 14, 1, 1, 0},
    {"1x1_1024-512@14", 0, 1, 1024, 512, 14, 1, 1, 0},
    {"3x3s2_512-512@14", 0, 1, 512, 512, 14, 3, 2, 1},
    {"1x1_512-2048@7", 0, 3, 512, 2048, 7, 1, 1, 0},
    {"1x1s2_1024-2048@14", 0, 1, 1024, 2048, 14, 1, 2, 0},
    {"1x1_2048-512@7", 0, 2, 2048, 512, 7, 1, 1, 0},
};
constexpr int64_t kConvBatch = 64;

// Batch-norm inputs [N, C, H, W]: after the stem, and the widest tensor of each ResNet-50 stage.
struct BnShape {
  int64_t n, c, h, w;
};
const BnShape kBnShapes[] = {{64, 64, 112, 112}, {64, 256, 56, 56}, {64, 512, 28, 28}, {64, 1024, 14, 14},
                             {64, 2048, 7, 7}};

// Row-major GEMMs C[m,n] = op(A)·op(B). The fc rows are ResNet-50's classifier at batch 64
// (y = x·Wᵀ, dx = dy·W, dW = dyᵀ·x) and ResNet-18's forward; sq8192 is the matrix ceiling.
struct GemmShape {
  const char* name;
  bool trans_a, trans_b;
  int64_t m, n, k;
};
const GemmShape kGemmShapes[] = {
    {"sq2048_NN", false, false, 2048, 2048, 2048},
    {"sq4096_NN", false, false, 4096, 4096, 4096},
    {"sq8192_NN", false, false, 8192, 8192, 8192},
    {"fc50_fwd_64x1000x2048_NT", false, true, 64, 1000, 2048},
    {"fc50_dx_64x2048x1000_NN", false, false, 64, 2048, 1000},
    {"fc50_dw_1000x2048x64_TN", true, false, 1000, 2048, 64},
    {"fc18_fwd_64x1000x512_NT", false, true, 64, 1000, 512},
};
const char* const kMatrixCeilingGemm = "sq8192_NN";

// Elementwise and reduction tensors: 64 Mi floats = 256 MiB, several times the H100/H200 L2 (50-60 MB).
constexpr int64_t kBig = int64_t(64) << 20;

// ---- measurement ----------------------------------------------------------------------------------------

// groups: copy, conv, bn, gemm, elementwise, reduce (copy always runs: it is the bandwidth ceiling).
// --quick: ResNet-18 convolutions only, no sq8192 GEMM (sq4096 sets the matrix ceiling), 5 timed runs per
// row (default 20).
struct Options {
  bool quick = false;
  int reps = 20;
  std::set<std::string> only;  // empty: every group
  bool wants(const std::string& group) const { return only.empty() || only.count(group) > 0; }
};

struct Row {
  std::string group, name, impl;
  double ms = 0;
  double flop = 0;   // 0 for bandwidth rows
  double bytes = 0;  // fewest bytes the operation must move through device memory
  std::string detail;  // extra columns for the human table
};

struct Ceilings {
  double copy_gbs = 0;       // device-to-device copy, bytes read + written
  double matrix_tflops = 0;  // TF32 GEMM through cuBLAS
};

class EventTimer {
 public:
  explicit EventTimer(cudaStream_t stream) : stream_(stream) {
    SCPN_CUDA_CHECK(cudaEventCreate(&start_));
    SCPN_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Median milliseconds of `fn` (work enqueued on the stream) over `reps` timed runs after `warmup` runs.
  double median_ms(const std::function<void()>& fn, int warmup, int reps) {
    for (int i = 0; i < warmup; ++i) fn();
    SCPN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<float> times;
    for (int r = 0; r < reps; ++r) {
      SCPN_CUDA_CHECK(cudaEventRecord(start_, stream_));
      fn();
      SCPN_CUDA_CHECK(cudaEventRecord(stop_, stream_));
      SCPN_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      SCPN_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

class Bench {
 public:
  Bench(const Options& opt, const ExecContext& ctx)
      : opt_(opt), ctx_(ctx), dev_(ctx.device), timer_(static_cast<cudaStream_t>(ctx.stream)) {}

  // CUDA events around each call on the engine's stream, median of the timed runs after 2 warm-ups (the
  // first call of a convolution shape runs cuDNN's algorithm search).
  double time(const std::function<void()>& fn) { return timer_.median_ms(fn, 2, opt_.reps); }

  Tensor random(const Shape& shape, double low = -1.0, double high = 1.0) {
    return uniform(shape, low, high, gen_, DType::f32, dev_);
  }
  Tensor empty(const Shape& shape) { return Tensor::empty(shape, DType::f32, dev_); }

  // Records a row and prints its machine-readable line at once (a run cut short keeps what it measured),
  // tab-separated, then a human table at the end:
  //   row  <name>  <impl>  <median ms>  <rate>  <TFLOP/s|GB/s>  <floor ms>  <% of copy bandwidth or ->
  void emit(Row r) {
    const double floor_t = floor_ms(r);
    std::printf("row\t%s:%s\t%s\t%.4f\t%s\t%s\t%s\t%s\n", r.group.c_str(), r.name.c_str(), r.impl.c_str(), r.ms,
                rate_text(r, false).c_str(), unit(r), floor_t > 0 ? fmt(floor_t, 4).c_str() : "-",
                pct_of_copy(r).c_str());
    std::fflush(stdout);
    rows_.push_back(std::move(r));
  }

  // Runs one row's measurement; an error (a cuDNN status, a launch failure) is printed as
  // "error<TAB>what<TAB>message" and counted, and the other rows still run.
  bool guard(const std::string& what, const std::function<void()>& fn) {
    try {
      fn();
      return true;
    } catch (const std::exception& e) {
      std::printf("error\t%s\t%s\n", what.c_str(), e.what());
      std::fprintf(stderr, "bench_cuda_ops: %s failed: %s\n", what.c_str(), e.what());
      std::fflush(stdout);
      cudaGetLastError();  // clears a non-sticky error so that the next row starts clean
      ++failures_;
      return false;
    }
  }
  int failures() const { return failures_; }

  static std::string fmt(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }
  static const char* unit(const Row& r) { return r.flop > 0 ? "TFLOP/s" : (r.bytes > 0 ? "GB/s" : "-"); }
  static double rate(const Row& r) { return r.flop > 0 ? r.flop / (r.ms * 1e9) : r.bytes / (r.ms * 1e6); }
  static std::string rate_text(const Row& r, bool with_unit) {
    if (r.flop == 0 && r.bytes == 0) return "-";
    const std::string v = fmt(rate(r), r.flop > 0 ? 1 : 0);
    return with_unit ? v + (r.flop > 0 ? " TF/s" : " GB/s") : v;
  }
  // Bandwidth rows only: the achieved GB/s as a share of the copy ceiling.
  std::string pct_of_copy(const Row& r) const {
    if (r.flop > 0 || r.bytes == 0 || ceil_.copy_gbs <= 0) return "-";
    return fmt(100.0 * rate(r) / ceil_.copy_gbs, 0);
  }

  // Floor (METHOD.md): max(FLOPs / matrix ceiling, bytes / copy bandwidth), the two ceilings measured here
  // (a large D2D copy counting bytes read + written; a TF32 GEMM through cuBLAS).
  double floor_ms(const Row& r) const {
    double f = 0;
    if (r.flop > 0 && ceil_.matrix_tflops > 0) f = std::max(f, r.flop / (ceil_.matrix_tflops * 1e9));
    if (r.bytes > 0 && ceil_.copy_gbs > 0) f = std::max(f, r.bytes / (ceil_.copy_gbs * 1e6));
    return f;
  }

  void run_copy();
  void run_conv();
  void run_bn();
  void run_gemm();
  void run_elementwise();
  void run_reduce();
  void print_table() const;

 private:
  Options opt_;
  ExecContext ctx_;
  Device dev_;
  EventTimer timer_;
  Generator gen_{2026};
  Ceilings ceil_;
  std::vector<Row> rows_;
  int failures_ = 0;

  cudaStream_t stream() const { return static_cast<cudaStream_t>(ctx_.stream); }
};

// The bandwidth ceiling: cudaMemcpyAsync device-to-device of 256 MiB, counting bytes read + written.
void Bench::run_copy() {
  guard("copy:d2d_256MiB", [&] {
    Tensor src = random({kBig}), dst = empty({kBig});
    const size_t bytes = src.nbytes();
    const double ms = time([&] {
      SCPN_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream()));
    });
    ceil_.copy_gbs = 2.0 * double(bytes) / (ms * 1e6);
    emit({"copy", "d2d_256MiB", "cuda", ms, 0, 2.0 * double(bytes), "cudaMemcpyAsync D2D"});
  });
}

void Bench::run_conv() {
  const KernelTable& k = kernels();
  const auto fwd = k.conv2d_forward.on(dev_);
  const auto bwd_data = k.conv2d_backward_data.on(dev_);
  const auto bwd_filter = k.conv2d_backward_filter.on(dev_);
  const DType t = DType::f32;
  double net_ms[2] = {0, 0};
  bool net_complete[2] = {true, true};
  for (const ConvShape& s : kConvShapes) {
    if (opt_.quick && s.r18 == 0) {
      net_complete[1] = false;
      continue;
    }
    const bool ok = guard(cat("conv:", s.name), [&] {
      Conv2dParams p;
      p.N = kConvBatch;
      p.C = s.cin;
      p.H = p.W = s.in_hw;
      p.K = s.cout;
      p.R = p.S = s.kernel;
      p.stride_h = p.stride_w = s.stride;
      p.pad_h = p.pad_w = s.pad;
      const int64_t P = p.P(), Q = p.Q();
      Tensor x = random({p.N, p.C, p.H, p.W});
      Tensor w = random({p.K, p.C, p.R, p.S}, -0.1, 0.1);
      Tensor dy = random({p.N, p.K, P, Q});
      Tensor y = empty({p.N, p.K, P, Q}), dx = empty({p.N, p.C, p.H, p.W}), dw = empty({p.K, p.C, p.R, p.S});
      const double flop = 2.0 * double(p.N * p.K * P * Q) * double(p.C * p.R * p.S);
      const double xb = double(x.nbytes()), wb = double(w.nbytes()), yb = double(y.nbytes());
      auto forward = [&] { fwd(ctx_, t, p, x.raw_data(), w.raw_data(), nullptr, y.raw_data()); };
      auto backward_data = [&] { bwd_data(ctx_, t, p, dy.raw_data(), w.raw_data(), dx.raw_data()); };
      auto backward_filter = [&] { bwd_filter(ctx_, t, p, dy.raw_data(), x.raw_data(), dw.raw_data()); };
      const double ms_f = time(forward);
      const double ms_d = time(backward_data);
      const double ms_w = time(backward_filter);
      // The three in one timed region, as a training step runs them (and as torch_ops.py times forward +
      // backward with both x and w requiring grad).
      const double ms_all = time([&] {
        forward();
        backward_data();
        backward_filter();
      });
      // Fewest bytes: forward reads x, w and writes y; backward-data reads dy, w and writes dx;
      // backward-filter reads dy, x and writes dw.
      emit({"conv.fwd", s.name, "scpn", ms_f, flop, xb + wb + yb, ""});
      emit({"conv", s.name, "scpn", ms_all, 3 * flop, 3 * (xb + wb + yb),
            cat("fwd ", fmt(ms_f, 3), " dX ", fmt(ms_d, 3), " dW ", fmt(ms_w, 3), " ms")});
      net_ms[0] += s.r18 * ms_all;
      net_ms[1] += s.r50 * ms_all;
    });
    if (!ok) {
      if (s.r18 > 0) net_complete[0] = false;
      if (s.r50 > 0) net_complete[1] = false;
    }
    // Each shape's buffers and cuDNN workspace are of their own sizes: hand them back rather than let the
    // cache grow over 29 shapes (cudaFree synchronises, outside any timed region).
    cuda::empty_cache(dev_.index);
  }
  // Whole-network convolution time (forward + backward of every convolution at batch 64): Σ count × row ms.
  const char* nets[2] = {"r18_all_convs", "r50_all_convs"};
  for (int i = 0; i < 2; ++i)
    if (net_complete[i]) emit({"net", nets[i], "scpn", net_ms[i], 0, 0, "sum over the network's convs of count x ms"});
  cuda::empty_cache(dev_.index);
}

void Bench::run_bn() {
  struct Impl {
    const char* name;
    BatchNormForwardTrainFn* forward;
    BatchNormBackwardFn* backward;
  };
  // Both implementations, whichever the dispatch slot holds (engine/cuda/register.cpp picks one).
  const Impl impls[] = {{"scpn-cudnn", cudnn::batch_norm_forward_train, cudnn::batch_norm_backward},
                        {"scpn-ours", cuda::batch_norm_forward_train, cuda::batch_norm_backward}};
  const DType t = DType::f32;
  for (const BnShape& s : kBnShapes) {
    const std::string name = cat(s.n, "x", s.c, "x", s.h, "x", s.w);
    guard(cat("bn:", name), [&] {
      const BatchNormShape shape{s.n, s.c, s.h * s.w};
      Tensor x = random({s.n, s.c, s.h, s.w}), dy = random({s.n, s.c, s.h, s.w});
      Tensor weight = random({s.c}, 0.5, 1.5), bias = random({s.c});
      Tensor y = empty({s.n, s.c, s.h, s.w}), dx = empty({s.n, s.c, s.h, s.w});
      Tensor dweight = empty({s.c}), dbias = empty({s.c}), mean = empty({s.c}), invstd = empty({s.c});
      Tensor running_mean = zeros({s.c}, t, dev_), running_var = ones({s.c}, t, dev_);
      const double tensor_bytes = double(x.nbytes());
      for (const Impl& impl : impls) {
        guard(cat("bn:", name, " ", impl.name), [&] {
          auto forward = [&] {
            impl.forward(ctx_, t, shape, 1e-5, 0.1, x.raw_data(), weight.raw_data(), bias.raw_data(),
                         running_mean.raw_data(), running_var.raw_data(), y.raw_data(), mean.raw_data(),
                         invstd.raw_data());
          };
          auto backward = [&] {
            impl.backward(ctx_, t, shape, true, 1e-5, x.raw_data(), dy.raw_data(), weight.raw_data(), mean.raw_data(),
                          invstd.raw_data(), dx.raw_data(), dweight.raw_data(), dbias.raw_data());
          };
          const double ms_f = time(forward);
          const double ms_b = time(backward);
          const double ms_all = time([&] {
            forward();
            backward();
          });
          // Fewest bytes: forward reads x and writes y; backward reads x and dy and writes dx.
          emit({"bn.fwd", name, impl.name, ms_f, 0, 2 * tensor_bytes, ""});
          emit({"bn", name, impl.name, ms_all, 0, 5 * tensor_bytes,
                cat("fwd ", fmt(ms_f, 3), " bwd ", fmt(ms_b, 3), " ms")});
        });
      }
    });
  }
  cuda::empty_cache(dev_.index);
}

void Bench::run_gemm() {
  const auto gemm = kernels().gemm.on(dev_);
  for (const GemmShape& s : kGemmShapes) {
    if (opt_.quick && std::strcmp(s.name, kMatrixCeilingGemm) == 0) continue;
    guard(cat("gemm:", s.name), [&] {
      // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed); row-major.
      Tensor a = random(s.trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k});
      Tensor b = random(s.trans_b ? Shape{s.n, s.k} : Shape{s.k, s.n});
      Tensor c = empty({s.m, s.n});
      const GemmArgs g = dense_gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, a.raw_data(), b.raw_data(), c.raw_data());
      const double ms = time([&] { gemm(ctx_, DType::f32, g); });
      const double flop = 2.0 * double(s.m) * double(s.n) * double(s.k);
      const bool ceiling = std::strcmp(s.name, opt_.quick ? "sq4096_NN" : kMatrixCeilingGemm) == 0;
      if (ceiling) ceil_.matrix_tflops = flop / (ms * 1e9);
      emit({"gemm", s.name, "scpn", ms, flop, double(a.nbytes() + b.nbytes() + c.nbytes()),
            ceiling ? "the matrix ceiling" : ""});
    });
  }
  cuda::empty_cache(dev_.index);
}

void Bench::run_elementwise() {
  const KernelTable& k = kernels();
  const auto unary = k.unary.on(dev_);
  const auto binary = k.binary.on(dev_);
  const auto axpy = k.axpy.on(dev_);
  const DType t = DType::f32;
  guard("elementwise", [&] {
    Tensor a = random({kBig}), b = random({kBig}), out = empty({kBig});
    const double nb = double(a.nbytes());
    BroadcastLayout flat;
    flat.ndim = 1;
    flat.shape[0] = kBig;
    flat.a_stride[0] = 1;
    flat.b_stride[0] = 1;
    auto binary_row = [&](BinaryOp op, const char* name) {
      guard(cat("elementwise:", name), [&] {
        const double ms = time([&] { binary(ctx_, op, t, flat, a.raw_data(), b.raw_data(), out.raw_data()); });
        emit({"elementwise", name, "scpn", ms, 0, 3 * nb, "read a, b; write out"});
      });
    };
    binary_row(BinaryOp::add, "add_64Mi");
    binary_row(BinaryOp::mul, "mul_64Mi");
    binary_row(BinaryOp::relu_backward, "relu_backward_64Mi");
    guard("elementwise:relu_64Mi", [&] {
      const double ms = time([&] { unary(ctx_, UnaryOp::relu, t, kBig, a.raw_data(), 0.0, out.raw_data()); });
      emit({"elementwise", "relu_64Mi", "scpn", ms, 0, 2 * nb, "read x; write out"});
    });
    guard("elementwise:axpy_64Mi", [&] {
      // out += 0.5·a: reads both, writes out; the values stay bounded over the runs.
      const double ms = time([&] { axpy(ctx_, t, kBig, 0.5, a.raw_data(), out.raw_data()); });
      emit({"elementwise", "axpy_64Mi", "scpn", ms, 0, 3 * nb, "read x, y; write y"});
    });
    guard("elementwise:add_bcast_channel_64x256x4096", [&] {
      // A per-channel bias added to an NCHW-like [64, 256, 4096] tensor: b broadcast with strides (0, 1, 0).
      Tensor channel = random({256});
      BroadcastLayout bc;
      bc.ndim = 3;
      bc.shape[0] = 64;
      bc.shape[1] = 256;
      bc.shape[2] = 4096;
      bc.a_stride[0] = 256 * 4096;
      bc.a_stride[1] = 4096;
      bc.a_stride[2] = 1;
      bc.b_stride[0] = 0;
      bc.b_stride[1] = 1;
      bc.b_stride[2] = 0;
      const double ms =
          time([&] { binary(ctx_, BinaryOp::add, t, bc, a.raw_data(), channel.raw_data(), out.raw_data()); });
      emit({"elementwise", "add_bcast_channel_64x256x4096", "scpn", ms, 0, 2 * nb, "read a; write out"});
    });
  });
  cuda::empty_cache(dev_.index);
}

void Bench::run_reduce() {
  const auto reduce = kernels().reduce.on(dev_);
  struct ReduceShape {
    const char* name;
    int64_t outer, reduce, inner;
  };
  // [outer, reduce, inner] with the middle dimension summed; 64 Mi floats each. sum_rows: contiguous rows
  // (a row per output); sum_cols and sum_mid: the summed dimension is strided (inner > 1).
  const ReduceShape shapes[] = {
      {"sum_all_64Mi", 1, kBig, 1},
      {"sum_rows_65536x1024", 65536, 1024, 1},
      {"sum_rows_16384x4096", 16384, 4096, 1},
      {"sum_cols_65536x1024", 1, 65536, 1024},
      {"sum_mid_64x256x4096", 64, 256, 4096},
  };
  guard("reduce", [&] {
    Tensor x = random({kBig});
    for (const ReduceShape& s : shapes) {
      guard(cat("reduce:", s.name), [&] {
        Tensor out = empty({s.outer * s.inner});
        const double ms = time(
            [&] { reduce(ctx_, ReduceOp::sum, DType::f32, s.outer, s.reduce, s.inner, x.raw_data(), out.raw_data()); });
        emit({"reduce", s.name, "scpn", ms, 0, double(x.nbytes() + out.nbytes()), "read x; write out"});
      });
    }
  });
  cuda::empty_cache(dev_.index);
}

void Bench::print_table() const {
  std::printf("\n%-44s %-11s %9s %11s %9s %8s %6s  %s\n", "row", "impl", "ms", "rate", "floor ms", "ms/floor",
              "%copy", "detail");
  for (const Row& r : rows_) {
    const double floor_t = floor_ms(r);
    const std::string pct = pct_of_copy(r);
    std::printf("%-44s %-11s %9.3f %11s %9s %8s %6s  %s\n", (r.group + ":" + r.name).c_str(), r.impl.c_str(), r.ms,
                rate_text(r, true).c_str(), floor_t > 0 ? fmt(floor_t, 3).c_str() : "-",
                floor_t > 0 ? fmt(r.ms / floor_t, 2).c_str() : "-", pct == "-" ? "" : (pct + "%").c_str(),
                r.detail.c_str());
  }
  std::printf("\nceilings: copy %.0f GB/s (D2D, read+write), matrix %.1f TFLOP/s (TF32 GEMM %s)\n", ceil_.copy_gbs,
              ceil_.matrix_tflops, opt_.quick ? "sq4096_NN" : kMatrixCeilingGemm);
  std::printf("floor = max(FLOPs / matrix ceiling, fewest bytes / copy ceiling); %d row(s) failed\n", failures_);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      o.quick = true;
      o.reps = 5;
    } else if (arg == "--reps" && i + 1 < argc) {
      o.reps = std::max(1, std::stoi(argv[++i]));
    } else if (arg == "--only" && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      std::string g;
      while (std::getline(ss, g, ',')) o.only.insert(g);
    } else {
      throw Error(cat("unknown argument '", arg, "'; usage: bench_cuda_ops [--quick] [--reps N] [--only GROUPS]"));
    }
  }
  const std::set<std::string> groups = {"copy", "conv", "bn", "gemm", "elementwise", "reduce"};
  for (const std::string& g : o.only)
    if (!groups.count(g)) throw Error(cat("--only: unknown group '", g, "' (copy, conv, bn, gemm, elementwise, reduce)"));
  return o;
}

void print_device(int device) {
  cudaDeviceProp prop{};
  SCPN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int runtime = 0, driver = 0;
  SCPN_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  SCPN_CUDA_CHECK(cudaDriverGetVersion(&driver));
  std::printf("# device: %s, sm_%d%d, %d SMs, L2 %.0f MB, %.1f GiB, CUDA runtime %d, driver %d\n", prop.name,
              prop.major, prop.minor, prop.multiProcessorCount, prop.l2CacheSize / 1e6,
              double(prop.totalGlobalMem) / double(1 << 30), runtime, driver);
  std::printf("# cuDNN: library %zu, headers %d\n", cudnnGetVersion(), int(CUDNN_VERSION));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options opt = parse(argc, argv);
    if (cuda::device_count() == 0) {
      std::fprintf(stderr, "bench_cuda_ops: no CUDA device (%s)\n", cuda::no_device_reason());
      return 1;
    }
    // The default math mode, whatever SCPN_CUDA_PARITY says: TF32 for f32, fastest algorithms.
    cuda::set_math_mode({true, false});
    const ExecContext ctx = exec_context(cuda_device(0));
    print_device(0);
    std::printf("# bench_cuda_ops: f32 (TF32 tensor cores allowed), median of %d timed runs after 2 warm-ups%s\n",
                opt.reps, opt.quick ? ", --quick (ResNet-18 convolutions only)" : "");
    std::printf("# columns: row name impl ms rate unit floor_ms pct_of_copy\n");
    std::fflush(stdout);
    Bench bench(opt, ctx);
    bench.run_copy();
    if (opt.wants("gemm")) bench.run_gemm();  // first among the FLOP rows: it sets the matrix ceiling
    if (opt.wants("elementwise")) bench.run_elementwise();
    if (opt.wants("reduce")) bench.run_reduce();
    if (opt.wants("bn")) bench.run_bn();
    if (opt.wants("conv")) bench.run_conv();
    bench.print_table();
    const cuda::MemoryStats stats = cuda::memory_stats(0);
    std::printf("allocator: %s\n", cuda::describe(stats).c_str());
    return bench.failures() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_ops: %s\n", e.what());
    return 1;
  }
}
