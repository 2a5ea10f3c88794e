// Declarations of the CUDA backend's kernels, for kernels/cuda/register.cu. Our kernels (kernels/cuda/F.cu)
// are in scpn::cuda; the cuDNN paths (kernels/cudnn/F.cpp) in scpn::cudnn; the cuBLAS GEMM
// (kernels/cublas/gemm.cpp) in scpn::cublas. Grouped by contract header, like kernels/cpu/kernels.h.
#pragma once
#include "kernels/registry.h"

namespace scpn::cuda {

// elementwise.h
void fill(const ExecContext&, DType, int64_t, double, void*);
void cast(const ExecContext&, int64_t, DType, const void*, DType, void*);
void random(const ExecContext&, DType, int64_t, RandomDist, double, double, uint64_t, uint64_t, void*);
void unary(const ExecContext&, UnaryOp, DType, int64_t, const void*, double, void*);
void binary(const ExecContext&, BinaryOp, DType, const BroadcastLayout&, const void*, const void*, void*);
void where(const ExecContext&, DType, int64_t, const uint8_t*, const void*, const void*, void*);
void axpy(const ExecContext&, DType, int64_t, double, const void*, void*);
// reduce.h
void reduce(const ExecContext&, ReduceOp, DType, int64_t, int64_t, int64_t, const void*, void*);
// conv2d.h (the bias gradient; the convolutions themselves run in cuDNN)
void conv2d_backward_bias(const ExecContext&, DType, const Conv2dParams&, const void*, void*);
// batch_norm.h
void batch_norm_forward_train(const ExecContext&, DType, const BatchNormShape&, double, double, const void*,
                              const void*, const void*, void*, void*, void*, void*, void*);
void batch_norm_forward_eval(const ExecContext&, DType, const BatchNormShape&, double, const void*, const void*,
                             const void*, const void*, const void*, void*, void*, void*);
void batch_norm_backward(const ExecContext&, DType, const BatchNormShape&, bool, double, const void*, const void*,
                         const void*, const void*, const void*, void*, void*, void*);
// pool.h
void max_pool2d_forward(const ExecContext&, DType, const MaxPool2dParams&, const void*, void*, int32_t*);
void max_pool2d_backward(const ExecContext&, DType, const MaxPool2dParams&, const void*, const int32_t*, void*);
void avg_pool_1x1_forward(const ExecContext&, DType, int64_t, int64_t, const void*, void*);
void avg_pool_1x1_backward(const ExecContext&, DType, int64_t, int64_t, const void*, void*);
// softmax.h / loss kernels
void log_softmax_forward(const ExecContext&, DType, const SoftmaxParams&, const void*, void*);
void log_softmax_backward(const ExecContext&, DType, const SoftmaxParams&, const void*, const void*, void*);
void cross_entropy_forward(const ExecContext&, DType, const CrossEntropyParams&, const void*, const int64_t*, void*,
                           double*);
void cross_entropy_backward(const ExecContext&, DType, const CrossEntropyParams&, const void*, const int64_t*,
                            const double*, const void*, void*);
// l2_normalize.h
void l2_normalize_forward(const ExecContext&, DType, const L2NormalizeParams&, const void*, void*, void*);
void l2_normalize_backward(const ExecContext&, DType, const L2NormalizeParams&, const void*, const void*,
                           const void*, void*);
// select.h
void abs_kth_values(const ExecContext&, DType, const AbsKthParams&, const void*, const int64_t*, void*, void*);
void magnitude_mask(const ExecContext&, DType, int64_t, const void*, double, void*);
// masked_weight.h
void masked_weight_forward(const ExecContext&, DType, const MaskedWeightParams&, const void*, const void*, void*);
void masked_weight_backward(const ExecContext&, DType, const MaskedWeightParams&, const void*, const void*,
                            const void*, const void*, void*, void*);
// optimizer.h
void sgd_step(const ExecContext&, DType, const SgdStepArgs&);
void adamw_step(const ExecContext&, DType, const AdamWStepArgs&);
// grad_integration.h
void grad_integrate(const ExecContext&, DType, const GradIntegrationArgs&);
void grad_sum_squares(const ExecContext&, DType, const GradListArgs&, double*);
void grad_scale(const ExecContext&, DType, const GradListArgs&, double);

}  // namespace scpn::cuda

namespace scpn::cudnn {

// conv2d.h: algorithms chosen once per shape by measurement and cached (kernels/cudnn/conv2d.cpp)
void conv2d_forward(const ExecContext&, DType, const Conv2dParams&, const void*, const void*, const void*, void*);
void conv2d_backward_data(const ExecContext&, DType, const Conv2dParams&, const void*, const void*, void*);
void conv2d_backward_filter(const ExecContext&, DType, const Conv2dParams&, const void*, const void*, void*);
// batch_norm.h: cuDNN's spatial batch norm (kernels/cudnn/batch_norm.cpp); eval-mode backward is ours
void batch_norm_forward_train(const ExecContext&, DType, const BatchNormShape&, double, double, const void*,
                              const void*, const void*, void*, void*, void*, void*, void*);
void batch_norm_forward_eval(const ExecContext&, DType, const BatchNormShape&, double, const void*, const void*,
                             const void*, const void*, const void*, void*, void*, void*);
void batch_norm_backward(const ExecContext&, DType, const BatchNormShape&, bool, double, const void*, const void*,
                         const void*, const void*, const void*, void*, void*, void*);

}  // namespace scpn::cudnn

namespace scpn::cublas {

// gemm.h: cublasGemmEx, TF32 tensor cores for f32 when the context allows them (kernels/cublas/gemm.cpp)
void gemm(const ExecContext&, DType, const GemmArgs&);

}  // namespace scpn::cublas
