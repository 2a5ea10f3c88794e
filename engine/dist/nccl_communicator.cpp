// NCCL collectives with a TCP control plane (nccl_communicator.h). NCCL runs in non-blocking mode, so that
// no call can hang: initialisation and every collective are polled against the timeout, and a collective
// that does not finish in time aborts the NCCL communicator and the group.
#include "engine/dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <thread>

#include "engine/cuda/check_nccl.h"
#include "engine/cuda/runtime.h"

namespace scpn::dist {

namespace {

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  throw Error("NCCL: unsupported dtype");
}

}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  bool aborted = false;
};

NcclCommunicator::NcclCommunicator(const LaunchInfo& info, Device device, Seconds timeout)
    : control_(std::make_unique<TcpCommunicator>(info, timeout)), device_(device), impl_(std::make_unique<Impl>()) {
  SCPN_CHECK(device.is_cuda(), "the NCCL communicator needs a CUDA device, got ", device.str());
  cuda::require_device(device.index);
  SCPN_CUDA_CHECK(cudaSetDevice(device.index));
  impl_->stream = static_cast<cudaStream_t>(cuda::exec_context_for(device.index).stream);
  SCPN_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->done, cudaEventDisableTiming));

  // Rank 0 creates the id; the control plane hands it to the others.
  ncclUniqueId id{};
  if (rank() == 0) SCPN_NCCL_CHECK(ncclGetUniqueId(&id));
  Tensor id_bytes = Tensor::empty({int64_t(sizeof id)}, DType::u8);
  std::memcpy(id_bytes.raw_data(), &id, sizeof id);
  control_->broadcast(id_bytes, 0, "NCCL unique id");
  std::memcpy(&id, id_bytes.raw_data(), sizeof id);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t rc = ncclCommInitRankConfig(&impl_->comm, size(), id, rank(), &config);
  if (rc != ncclInProgress) SCPN_NCCL_CHECK(rc);
  wait(cat("NCCL initialisation of ", size(), " ranks"));
  // Every rank has its NCCL communicator before any collective runs.
  control_->barrier("NCCL initialised");
}

NcclCommunicator::~NcclCommunicator() {
  if (impl_->comm) {
    if (impl_->aborted) ncclCommAbort(impl_->comm);
    else ncclCommDestroy(impl_->comm);
  }
  if (impl_->done) cudaEventDestroy(impl_->done);
}

void NcclCommunicator::agree(const char* kind, const Tensor& t, const std::string& what) {
  SCPN_CHECK(t.defined() && t.device() == device_, kind, " '", what, "': the tensor must be on ", device_.str(),
             ", got ", t.defined() ? t.device().str() : std::string("an undefined tensor"));
  // The control plane compares the names; the kind, size and dtype are part of the name it compares.
  control_->barrier(cat(what, " [", kind, " ", t.numel(), " ", dtype_name(t.dtype()), "]"));
}

void NcclCommunicator::wait(const std::string& description) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout());
  for (;;) {
    ncclResult_t async = ncclSuccess;
    SCPN_NCCL_CHECK(ncclCommGetAsyncError(impl_->comm, &async));
    const bool enqueued = async != ncclInProgress;
    if (enqueued && async != ncclSuccess) {
      const std::string message = cat("NCCL failed during ", description, " on ", control_->describe_rank(rank()), ": ",
                                      cuda_check::describe(async));
      abort(message);
      throw CollectiveError(message);
    }
    if (enqueued) {
      const cudaError_t q = cudaEventQuery(impl_->done);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) SCPN_CUDA_CHECK(q);
    }
    if (Clock::now() > deadline) {
      const std::string message = cat(description, " did not complete within ", timeout().count(), " s on ",
                                      control_->describe_rank(rank()), "; another rank may have died or stalled");
      abort(message);
      throw CollectiveError(message);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclCommunicator::all_reduce_sum(const Tensor& t, const std::string& what) {
  agree("all_reduce", t, what);
  ncclResult_t rc = ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), ncclSum,
                                  impl_->comm, impl_->stream);
  if (rc != ncclInProgress) SCPN_NCCL_CHECK(rc);
  SCPN_CUDA_CHECK(cudaEventRecord(impl_->done, impl_->stream));
  wait(cat("all_reduce '", what, "'"));
}

void NcclCommunicator::broadcast(const Tensor& t, int root, const std::string& what) {
  agree("broadcast", t, cat(what, " from rank ", root));
  ncclResult_t rc = ncclBroadcast(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), root,
                                  impl_->comm, impl_->stream);
  if (rc != ncclInProgress) SCPN_NCCL_CHECK(rc);
  SCPN_CUDA_CHECK(cudaEventRecord(impl_->done, impl_->stream));
  wait(cat("broadcast '", what, "'"));
}

void NcclCommunicator::all_gather(const Tensor& in, const Tensor& out, const std::string& what) {
  SCPN_CHECK(out.defined() && out.dtype() == in.dtype() && out.numel() == in.numel() * size(), "all_gather '", what,
             "': out must hold ", size(), " × ", in.numel(), " ", dtype_name(in.dtype()));
  agree("all_gather", in, what);
  ncclResult_t rc = ncclAllGather(in.raw_data(), out.raw_data(), size_t(in.numel()), nccl_type(in.dtype()),
                                  impl_->comm, impl_->stream);
  if (rc != ncclInProgress) SCPN_NCCL_CHECK(rc);
  SCPN_CUDA_CHECK(cudaEventRecord(impl_->done, impl_->stream));
  wait(cat("all_gather '", what, "'"));
}

void NcclCommunicator::barrier(const std::string& what) {
  // Queued device work first, so that the barrier also orders what the GPUs did.
  SCPN_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  control_->barrier(what);
}

std::vector<std::string> NcclCommunicator::all_gather_text(const std::string& text, const std::string& what) {
  return control_->all_gather_text(text, what);
}

void NcclCommunicator::abort(const std::string& reason) noexcept {
  if (impl_->comm && !impl_->aborted) {
    impl_->aborted = true;
    ncclCommAbort(impl_->comm);
    impl_->comm = nullptr;
  }
  control_->abort(reason);
}

}  // namespace scpn::dist
