// The loader's threads: workers claim whole batches in order, at most `prefetch` ahead of the
// consumer; slot b % (prefetch + 1) holds batch b. Errors travel in the slot and surface in next().
#include "train/data/loader.h"

#include <cstring>

#include "engine/error.h"
#include "train/data/decode.h"
#include "train/data/random.h"

namespace scpn::data {

Loader::Loader(std::shared_ptr<const Dataset> dataset, Pipeline transforms, LoaderOptions options)
    : dataset_(std::move(dataset)), transforms_(std::move(transforms)), options_(std::move(options)) {
  const LoaderOptions& o = options_;
  SCPN_CHECK(dataset_ != nullptr, "loader: no dataset");
  SCPN_CHECK(dataset_->size() > 0, "loader: the dataset is empty");
  SCPN_CHECK(o.batch_size > 0, "loader: batch_size must be positive, got ", o.batch_size);
  SCPN_CHECK(o.channels > 0 && o.height > 0 && o.width > 0, "loader: the sample shape channels x height x width ",
             "must be positive, got ", o.channels, "x", o.height, "x", o.width);
  SCPN_CHECK(o.workers >= 1, "loader: workers must be at least 1, got ", o.workers);
  SCPN_CHECK(o.prefetch >= 0, "loader: prefetch must be >= 0, got ", o.prefetch);
  SCPN_CHECK(o.max_skipped >= 0, "loader: max_skipped must be >= 0, got ", o.max_skipped);
  SCPN_CHECK(o.shard_count >= 1 && o.shard_index >= 0 && o.shard_index < o.shard_count, "loader: shard ",
             o.shard_index, " of ", o.shard_count, " does not exist");
  const int64_t n = dataset_->size();
  num_batches_ = o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
  SCPN_CHECK(num_batches_ > 0, "loader: drop_last with batch_size ", o.batch_size, " leaves no batch of the ", n,
             " samples");
  if (options_.prefetch == 0) options_.prefetch = 2 * o.workers;
  if (!options_.allocate) options_.allocate = [](const Shape& s, DType t) { return Tensor::empty(s, t, kCPU); };
  // One more slot than batches in flight: the batch last returned keeps its buffers until the consumer
  // asks for the next one, so a plain `while (auto b = loader.next())` loop never forces a fresh buffer.
  slots_.resize(size_t(options_.prefetch) + 1);
  for (int w = 0; w < options_.workers; ++w) threads_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  SCPN_CHECK(epoch >= 0, "loader: epoch must be >= 0, got ", epoch);
  SCPN_CHECK(first_batch >= 0 && first_batch <= num_batches_, "loader: batch ", first_batch,
             " is outside the epoch's ", num_batches_, " batches");
  std::unique_lock<std::mutex> lock(mutex_);
  // Stop handing out work, abandon what is in flight, and wait until no worker touches a slot.
  active_ = false;
  ++generation_;
  idle_cv_.wait(lock, [&] { return busy_ == 0; });
  order_ = epoch_order(dataset_->size(), options_.seed, uint64_t(epoch), options_.shuffle);
  epoch_ = epoch;
  next_produce_ = next_consume_ = first_batch;
  for (Slot& s : slots_) s.ready = false;
  epoch_skips_.clear();
  active_ = true;
  lock.unlock();
  work_cv_.notify_all();
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  SCPN_CHECK(active_, "loader: call start_epoch() before next()");
  if (next_consume_ >= num_batches_) return std::nullopt;
  const int64_t b = next_consume_;
  Slot& slot = slots_[size_t(b) % slots_.size()];
  ready_cv_.wait(lock, [&] { return slot.ready && slot.batch == b; });
  const int64_t skipped = int64_t(epoch_skips_.size() + slot.skips.size());
  if (!slot.error && skipped > options_.max_skipped)
    slot.error = std::make_exception_ptr(Error(cat(
        "loader: more than max_skipped = ", options_.max_skipped, " bad images in epoch ", epoch_, " (", skipped,
        " skipped by batch ", b, "); the last: ", slot.skips.back())));
  // The error stays in the slot, so calling next() again reports it again.
  if (slot.error) std::rethrow_exception(slot.error);
  epoch_skips_.insert(epoch_skips_.end(), slot.skips.begin(), slot.skips.end());

  const int64_t rows = int64_t(slot.indices.size());
  Batch out;
  out.images = rows == options_.batch_size ? slot.images : slot.images.slice(0, rows);
  out.labels = rows == options_.batch_size ? slot.labels : slot.labels.slice(0, rows);
  out.indices = slot.indices;
  out.epoch = epoch_;
  out.index = b;
  slot.ready = false;
  ++next_consume_;
  lock.unlock();
  work_cv_.notify_all();
  return out;
}

LoaderPosition Loader::position() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {epoch_, next_consume_};
}

int64_t Loader::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return int64_t(epoch_skips_.size());
}

std::vector<std::string> Loader::skip_messages() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return epoch_skips_;
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || (active_ && next_produce_ < num_batches_ && next_produce_ < next_consume_ + options_.prefetch);
    });
    if (stop_) return;
    const int64_t b = next_produce_++;
    Slot& slot = slots_[size_t(b) % slots_.size()];
    const uint64_t generation = generation_;
    ++busy_;
    lock.unlock();
    fill(slot, b, generation);
    lock.lock();
    --busy_;
    if (generation == generation_ && !stop_) {
      slot.batch = b;
      slot.ready = true;
      ready_cv_.notify_all();
    }
    if (busy_ == 0) idle_cv_.notify_all();
  }
}

void Loader::ensure_buffers(Slot& slot) {
  // A buffer is rewritten only when no Batch handed out earlier still refers to it; otherwise the
  // slot gets fresh buffers and the old ones live on with their Batch.
  auto reusable = [](const Tensor& t) {
    if (!t.defined() || t.impl_ptr().use_count() != 1 || t.impl()->storage.use_count() != 1) return false;
    std::atomic_thread_fence(std::memory_order_acquire);  // see the last holder's writes before ours
    return true;
  };
  const LoaderOptions& o = options_;
  if (!reusable(slot.images)) slot.images = o.allocate({o.batch_size, o.channels, o.height, o.width}, DType::f32);
  if (!reusable(slot.labels)) slot.labels = o.allocate({o.batch_size}, DType::i64);
  SCPN_CHECK(slot.images.device().is_cpu() && slot.labels.device().is_cpu() &&
                 slot.images.shape() == Shape({o.batch_size, o.channels, o.height, o.width}) &&
                 slot.images.dtype() == DType::f32 && slot.labels.dtype() == DType::i64,
             "loader: the batch allocator must return host tensors of the requested shape and dtype");
}

void Loader::fill(Slot& slot, int64_t batch, uint64_t generation) {
  slot.error = nullptr;
  slot.skips.clear();
  const int64_t global_rows = std::min(options_.batch_size, dataset_->size() - batch * options_.batch_size);
  const int64_t first = global_rows * options_.shard_index / options_.shard_count;
  const int64_t begin = batch * options_.batch_size + first;  // this shard's first position in the epoch
  const int64_t rows = global_rows * (options_.shard_index + 1) / options_.shard_count - first;
  try {
    slot.indices.assign(size_t(rows), -1);
    ensure_buffers(slot);
    const int64_t sample_floats = options_.channels * options_.height * options_.width;
    float* images = slot.images.data<float>();
    for (int64_t r = 0; r < rows; ++r) {
      if (stop_ || generation_ != generation) return;  // abandoned: the slot is never marked ready
      load_sample(slot, r, order_[size_t(begin + r)], images + r * sample_floats);
      if (int64_t(slot.skips.size()) > options_.max_skipped) return;  // next() reports the excess
    }
  } catch (...) {
    slot.error = std::current_exception();
  }
}

void Loader::load_sample(Slot& slot, int64_t row, int64_t index, float* image_out) {
  const int64_t n = dataset_->size();
  int64_t source = index;
  Image img;
  for (;;) {
    try {
      img = dataset_->load(source);
      break;
    } catch (const SampleError& e) {
      if (options_.bad_images == BadImagePolicy::fail) throw;
      slot.skips.push_back(e.what());
      if (int64_t(slot.skips.size()) > options_.max_skipped) return;
      source = (source + 1) % n;
      SCPN_CHECK(source != index, "loader: no readable image in the dataset (", dataset_->describe(index), " and all ",
                 n - 1, " others failed)");
    }
  }
  // The augmentation stream belongs to the position's sample, whichever file replaced it.
  SampleRng rng(options_.seed, uint64_t(epoch_), uint64_t(index));
  try {
    img = transforms_(std::move(img), rng);
  } catch (const Error& e) {
    throw Error(cat("sample ", dataset_->describe(source), ": ", e.what()));
  }
  const LoaderOptions& o = options_;
  if (img.channels != o.channels || img.height != o.height || img.width != o.width)
    throw Error(cat("sample ", dataset_->describe(source), ": the transforms (", transforms_.describe(), ") produce ",
                    img.channels, "x", img.height, "x", img.width, " but the loader's sample shape is ", o.channels,
                    "x", o.height, "x", o.width));
  std::memcpy(image_out, img.pixels.data(), img.pixels.size() * sizeof(float));
  slot.labels.data<int64_t>()[row] = dataset_->label(source);
  slot.indices[size_t(row)] = source;
}

}  // namespace scpn::data
