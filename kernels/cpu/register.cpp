// Fills the CPU column of the dispatch table: one line per kernel.
#include "kernels/cpu/kernels.h"

namespace scpn {

void register_cpu_kernels(KernelTable& k) {
  k.fill.cpu = cpu::fill;
  k.cast.cpu = cpu::cast;
  k.random.cpu = cpu::random;
  k.unary.cpu = cpu::unary;
  k.binary.cpu = cpu::binary;
  k.where.cpu = cpu::where;
  k.axpy.cpu = cpu::axpy;
  k.reduce.cpu = cpu::reduce;
  // gemm.h
  k.gemm.cpu = cpu::gemm_ours;
  // conv2d.h
  // batch_norm.h
  // pool.h
  // softmax.h / loss kernels
  // select.h
  // optimizer.h
}

}  // namespace scpn
