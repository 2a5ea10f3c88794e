// The dispatch table: one slot per kernel, each holding a CPU and a CUDA function pointer. The slots
// are filled once at start-up by register_cpu_kernels() (kernels/cpu/register.cpp) and, in CUDA builds,
// register_cuda_kernels() (kernels/cuda/register.cu) — one line per kernel, no static self-registration.
// An op front-end asks `kernels().conv2d_forward.on(device)`; an empty slot throws an error naming the
// kernel and the device, and `supports(device)` lets tests skip cleanly.
#pragma once
#include "kernels/common/error.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"

namespace scpn {

template <class Fn>
struct KernelSlot {
  const char* name;
  Fn cpu = nullptr;
  Fn cuda = nullptr;

  explicit KernelSlot(const char* kernel_name) : name(kernel_name) {}
  bool supports(Device d) const { return (d.is_cpu() ? cpu : cuda) != nullptr; }
  Fn on(Device d) const {
    Fn f = d.is_cpu() ? cpu : cuda;
    if (!f) throw Error(cat("kernel '", name, "' has no implementation for device ", d.str()));
    return f;
  }
};

struct KernelTable {
  // elementwise.h
  KernelSlot<FillFn> fill{"fill"};
  KernelSlot<CastFn> cast{"cast"};
  KernelSlot<RandomFn> random{"random"};
  KernelSlot<UnaryFn> unary{"unary"};
  KernelSlot<BinaryFn> binary{"binary"};
  KernelSlot<WhereFn> where{"where"};
  KernelSlot<AxpyFn> axpy{"axpy"};
  // reduce.h
  KernelSlot<ReduceFn> reduce{"reduce"};
  // gemm.h
  KernelSlot<GemmFn> gemm{"gemm"};
  // conv2d.h
  // batch_norm.h
  // pool.h
  // softmax.h / loss kernels
  // select.h (k-th value for masks)
  // optimizer.h
};

// The process-wide table, filled by register_kernels() (engine/dispatch.cpp) before first use.
KernelTable& kernels();

void register_cpu_kernels(KernelTable&);
void register_cuda_kernels(KernelTable&);  // defined only in CUDA builds

}  // namespace scpn
