// The batch loader: worker threads decode and transform samples straight into preallocated batch
// buffers, a bounded number of batches ahead of the consumer.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/tensor.h"
#include "train/data/dataset.h"
#include "train/data/transforms.h"

namespace scpn::data {

// What happens when a sample cannot be read (Dataset::load throws SampleError):
//   fail: next() rethrows the SampleError (its message names the path and the reason);
//   skip: the sample is replaced by the next readable one in dataset order (i+1, i+2, … wrapping),
//         every failed read is counted (a bad replacement candidate too), and next() throws once an
//         epoch has skipped more than max_skipped.
enum class BadImagePolicy { fail, skip };

// Allocates a batch buffer; the seam through which the CUDA backend supplies page-locked host memory
// for asynchronous copies. Called from the worker threads, so it must be thread-safe. The default
// allocates ordinary CPU tensors.
using BatchAllocator = std::function<Tensor(const Shape& shape, DType dtype)>;

struct LoaderOptions {
  int64_t batch_size = 32;
  int64_t channels = 0, height = 0, width = 0;  // the shape every transformed sample must have
  bool shuffle = true;
  bool drop_last = false;  // drop a final batch smaller than batch_size
  uint64_t seed = 0;
  int workers = 2;    // decoding threads, >= 1
  int prefetch = 0;   // batches produced ahead of the consumer; 0: 2 × workers. Buffers: prefetch + 1.
  BadImagePolicy bad_images = BadImagePolicy::fail;
  int64_t max_skipped = 0;  // per epoch, under BadImagePolicy::skip
  // Data-parallel sharding: each batch of batch_size samples (the global batch) is split into shard_count
  // contiguous parts and this loader returns part shard_index, rows [B·i/n, B·(i+1)/n). The epoch's order
  // and every sample's augmentation do not depend on the sharding, so n shards together are the batch
  // one loader would return.
  int64_t shard_index = 0, shard_count = 1;
  BatchAllocator allocate;  // empty: CPU tensors
};

struct Batch {
  Tensor images;                 // [B, C, H, W] f32, transformed
  Tensor labels;                 // [B] i64
  std::vector<int64_t> indices;  // the dataset index of each sample (after any bad-image replacement)
  int64_t epoch = 0, index = 0;  // this batch's position in the run
};

// Where the loader stands: `batch` is the index of the next batch next() returns in `epoch`.
struct LoaderPosition {
  int64_t epoch = 0, batch = 0;
  bool operator==(const LoaderPosition&) const = default;
};

// Every batch is a pure function of (dataset, transforms, seed, epoch, batch index): the epoch's order
// comes from (seed, epoch) and each sample's augmentation from (seed, epoch, index), so the number of
// threads never changes a batch, and start_epoch(epoch, batch) resumes where a saved position() left off.
class Loader {
 public:
  // Validates the options (errors name the option and the value) and starts the worker threads,
  // which wait for start_epoch().
  Loader(std::shared_ptr<const Dataset> dataset, Pipeline transforms, LoaderOptions options);
  // Stops the workers (each finishes at most the sample in hand) and joins them; safe mid-epoch.
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const { return num_batches_; }
  const LoaderOptions& options() const { return options_; }

  // Begins (or resumes) epoch `epoch` at batch `first_batch`, abandoning any batches in flight.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch in order, or nothing once the epoch is done. Rethrows a worker's
  // error (a SampleError under the fail policy, a transform error naming the sample) at the batch it
  // belongs to. A returned batch's buffers are reused only after every copy of it is dropped, so hold
  // the Batch while anything (an asynchronous device copy) still reads it.
  std::optional<Batch> next();

  LoaderPosition position() const;
  int64_t skipped() const;                    // bad images skipped so far in this epoch
  std::vector<std::string> skip_messages() const;  // their SampleError messages, in batch order

 private:
  struct Slot {
    Tensor images, labels;  // full-size buffers
    std::vector<int64_t> indices;
    int64_t batch = -1;  // the batch the slot holds once ready
    bool ready = false;
    std::exception_ptr error;
    std::vector<std::string> skips;  // messages of the samples skipped in this batch
  };

  void worker_loop();
  void fill(Slot& slot, int64_t batch, uint64_t generation);
  void load_sample(Slot& slot, int64_t row, int64_t index, float* image_out);
  void ensure_buffers(Slot& slot);

  std::shared_ptr<const Dataset> dataset_;
  Pipeline transforms_;
  LoaderOptions options_;
  int64_t num_batches_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_, idle_cv_;
  std::vector<Slot> slots_;
  std::vector<int64_t> order_;  // written only while no worker is busy
  int64_t epoch_ = 0, next_produce_ = 0, next_consume_ = 0;
  bool active_ = false;
  int busy_ = 0;
  std::atomic<uint64_t> generation_{0};  // bumped to abandon batches in flight
  std::atomic<bool> stop_{false};
  std::vector<std::string> epoch_skips_;
  std::vector<std::thread> threads_;
};

}  // namespace scpn::data
