// Declarations of the CPU kernels, for kernels/cpu/register.cpp. Grouped by contract header.
#pragma once
#include "kernels/registry.h"

namespace scpn::cpu {

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
// gemm.h
void gemm_ours(const ExecContext&, DType, const GemmArgs&);
#if defined(SCPN_HAVE_OPENBLAS)
void gemm_openblas(const ExecContext&, DType, const GemmArgs&);
#endif
// The GEMM to register, as SCPN_CPU_GEMM asks (kernels/gemm.h); `openblas` is nullptr when not built.
GemmFn select_gemm(GemmFn ours, GemmFn openblas);
// conv2d.h
void conv2d_forward(const ExecContext&, DType, const Conv2dParams&, const void*, const void*, const void*, void*);
void conv2d_backward_data(const ExecContext&, DType, const Conv2dParams&, const void*, const void*, void*);
void conv2d_backward_filter(const ExecContext&, DType, const Conv2dParams&, const void*, const void*, void*);
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

}  // namespace scpn::cpu
