// SCPN_HD marks functions shared by the CPU backend and CUDA kernels, so both run the same arithmetic
// (the CPU tests then check the math; only the launch is GPU-only).
#pragma once
#if defined(__CUDACC__)
#define SCPN_HD __host__ __device__ inline
#else
#define SCPN_HD inline
#endif
