// Scratch device memory for one kernel call (cuDNN workspace, CUB temporaries), borrowed from the
// caching allocator through the ExecContext and returned when the object dies. Returning it right after
// the work is enqueued is safe: the allocator hands the block only to later work on the same stream.
#pragma once
#include <cstddef>

#include "kernels/common/error.h"
#include "kernels/context.h"

namespace scpn::cuda {

class Scratch {
 public:
  Scratch(const ExecContext& ctx, size_t bytes) : ctx_(ctx), bytes_(bytes) {
    if (bytes_ == 0) return;
    SCPN_CHECK(ctx.allocate, "scratch memory requested on ", ctx.device.str(), " without an allocator");
    ptr_ = ctx.allocate(bytes_, ctx.device.index);
  }
  ~Scratch() {
    if (ptr_) ctx_.release(ptr_, bytes_, ctx_.device.index);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  void* get() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  ExecContext ctx_;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace scpn::cuda
