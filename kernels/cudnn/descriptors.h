// RAII owners of the cuDNN descriptors used by the cuDNN paths (kernels/cudnn/conv2d.cpp, batch_norm.cpp):
// each descriptor is created, filled and destroyed in one scope, so an exception thrown half-way leaks
// nothing. Tested through gpu/conv2d, gpu/batch_norm and tests/gpu/test_conv2d_cudnn.cpp.
#pragma once
#include <cstdint>
#include <limits>

#include <cudnn.h>

#include "kernels/common/error.h"
#include "kernels/context.h"
#include "kernels/cuda/check.h"

namespace scpn::cudnn {

// The cuDNN data type of an arithmetic dtype (f32 and f64 are the dtypes the CUDA float kernels take).
inline cudnnDataType_t data_type(DType t, const char* kernel) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    default: throw Error(cat(kernel, ": dtype ", dtype_name(t), " is not supported on CUDA (f32, f64)"));
  }
}

// cuDNN's legacy descriptors take int sizes; a size that does not fit is an error naming the kernel
// (callers split work so that it never happens for valid shapes).
inline int to_int(int64_t v, const char* what, const char* kernel) {
  SCPN_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), kernel, ": ", what, " = ", v,
             " does not fit cuDNN's 32-bit sizes");
  return int(v);
}

// The blend factors alpha/beta that cuDNN reads from host memory: double for double data, float otherwise.
struct Blend {
  float f;
  double d;
  explicit Blend(double v) : f(float(v)), d(v) {}
  const void* for_type(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d) : &f; }
};

class TensorDescriptor {
 public:
  TensorDescriptor() { SCPN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_)); }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;

  // A contiguous NCHW tensor.
  void set_nchw(cudnnDataType_t type, int n, int c, int h, int w) {
    SCPN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, type, n, c, h, w));
  }
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor() { SCPN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&desc_)); }
  ~FilterDescriptor() { cudnnDestroyFilterDescriptor(desc_); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;

  // Weights [k, c_per_group, r, s], contiguous.
  void set_kcrs(cudnnDataType_t type, int k, int c, int r, int s) {
    SCPN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(desc_, type, CUDNN_TENSOR_NCHW, k, c, r, s));
  }
  cudnnFilterDescriptor_t get() const { return desc_; }

 private:
  cudnnFilterDescriptor_t desc_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor() { SCPN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&desc_)); }
  ~ConvolutionDescriptor() { cudnnDestroyConvolutionDescriptor(desc_); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;

  cudnnConvolutionDescriptor_t get() const { return desc_; }

 private:
  cudnnConvolutionDescriptor_t desc_ = nullptr;
};

}  // namespace scpn::cudnn
