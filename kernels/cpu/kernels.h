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
// conv2d.h
// batch_norm.h
// pool.h
// softmax.h / loss kernels
// select.h
// optimizer.h

}  // namespace scpn::cpu
