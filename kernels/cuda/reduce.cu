// CUDA reduction over the middle axis of [outer, reduce, inner] (kernels/reduce.h), with the CPU kernel's
// rules: sums accumulate in double; max/min skip NaN (an all-NaN or empty slice gives ∓inf) and keep the
// earliest of equal values (visible only as the sign of a zero).
#include <climits>
#include <cmath>
#include <cstdint>

#include "kernels/reduce.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/scratch.h"

namespace scpn::cuda {

namespace {

constexpr unsigned kFullMask = 0xffffffffu;

// ---- accumulators: identity, add one value (in increasing r within a thread), merge, warp shuffle ------

struct SumAccumulator {
  double v;
  static __device__ SumAccumulator identity() { return {0.0}; }
  __device__ void add(double x, int64_t) { v += x; }
  __device__ void merge(const SumAccumulator& o) { v += o.v; }
  __device__ SumAccumulator shuffled_down(int offset, int width) const {
    return {__shfl_down_sync(kFullMask, v, offset, width)};
  }
  __device__ double value() const { return v; }
};

// The CPU loop keeps a running extremum `a = v > a ? v : a` (max) from −inf: NaN never replaces it and
// among equal values the first one stays. Carrying the index r of the current value makes merging
// partial results give exactly that answer in any merge order: the greater value wins, and on a tie the
// smaller r.
template <bool kMax>
struct ExtremumAccumulator {
  double v;
  long long r;
  static __device__ ExtremumAccumulator identity() { return {kMax ? -INFINITY : INFINITY, LLONG_MAX}; }
  __device__ bool beaten_by(double x) const { return kMax ? x > v : x < v; }
  __device__ void add(double x, int64_t at) {
    if (beaten_by(x)) {
      v = x;
      r = at;
    }
  }
  __device__ void merge(const ExtremumAccumulator& o) {
    if (beaten_by(o.v) || (o.v == v && o.r < r)) *this = o;
  }
  __device__ ExtremumAccumulator shuffled_down(int offset, int width) const {
    return {__shfl_down_sync(kFullMask, v, offset, width), __shfl_down_sync(kFullMask, r, offset, width)};
  }
  __device__ double value() const { return v; }
};

__device__ int64_t thread_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ int64_t thread_count() { return int64_t(gridDim.x) * blockDim.x; }

// acc.add(column[r·inner]) for r = first, first + step, … < end, in increasing r, with four independent
// loads in flight per thread (one load at a time cannot cover the memory latency).
template <class T, class Acc>
__device__ void accumulate(Acc& acc, const T* __restrict__ column, int64_t inner, int64_t first, int64_t end,
                           int64_t step) {
  int64_t r = first;
  for (; r + 3 * step < end; r += 4 * step) {
    const T x0 = column[r * inner];
    const T x1 = column[(r + step) * inner];
    const T x2 = column[(r + 2 * step) * inner];
    const T x3 = column[(r + 3 * step) * inner];
    acc.add(double(x0), r);
    acc.add(double(x1), r + step);
    acc.add(double(x2), r + 2 * step);
    acc.add(double(x3), r + 3 * step);
  }
  for (; r < end; r += step) acc.add(double(column[r * inner]), r);
}

// The same for partial results: acc.merge(p[c·stride]) for c = first, first + step, … < end.
template <class Acc>
__device__ void merge_strided(Acc& acc, const Acc* __restrict__ p, int64_t stride, int64_t first, int64_t end,
                              int64_t step) {
  int64_t c = first;
  for (; c + 3 * step < end; c += 4 * step) {
    const Acc a0 = p[c * stride];
    const Acc a1 = p[(c + step) * stride];
    const Acc a2 = p[(c + 2 * step) * stride];
    const Acc a3 = p[(c + 3 * step) * stride];
    acc.merge(a0);
    acc.merge(a1);
    acc.merge(a2);
    acc.merge(a3);
  }
  for (; c < end; c += step) acc.merge(p[c * stride]);
}

// Thread t holds entry t = q·columns + i of `shared`; merges, for each column i, the entries of rows
// q < rows into row 0 by a fixed pairwise tree (the same order on every run). Every thread of the block
// calls it; afterwards the row-0 threads may read their own entries without another barrier (every
// merge into entry i was done by thread i itself). The caller needs a barrier before reusing `shared`.
template <class Acc>
__device__ void merge_rows_in_shared(Acc* shared, int rows, int columns) {
  const int t = int(threadIdx.x);
  const int q = t / columns;
  int top = 1;  // the smallest power of two >= rows
  while (top < rows) top *= 2;
  for (int s = top / 2; s > 0; s /= 2) {
    __syncthreads();
    if (q < s && q + s < rows) shared[t].merge(shared[t + s * columns]);
  }
}

// ---- the three mappings ------------------------------------------------------------------------------

// Three thread mappings cover the shapes; when few outputs share a long axis, the axis is cut into chunks
// whose partial results go to scratch memory and a second pass merges them in chunk order. Every mapping
// and chunking depends on the shape only, so results never depend on scheduling: max/min equal the CPU's
// bit for bit, sums differ from the CPU's sequential order by rounding only (a fixed tree in double).

// inner == 1, short rows or many of them: a group of `group` lanes (a power of two <= 32) per row, lanes
// striding along the row, then a shuffle tree inside the group.
template <class T, class Acc>
__global__ void reduce_rows_grouped(int64_t rows, int64_t R, int group, const T* __restrict__ x, T* __restrict__ out) {
  const int64_t thread = thread_index();
  const int lane = int(threadIdx.x) & (group - 1);
  const int64_t groups_in_grid = thread_count() / group;
  // Shuffles need every lane of the warp, so all lanes run the same iterations: while the warp's first
  // group still has a row.
  const int64_t warp_first_group = (thread / 32) * (32 / group);
  for (int64_t step = 0; warp_first_group + step < rows; step += groups_in_grid) {
    const int64_t row = thread / group + step;
    Acc acc = Acc::identity();
    if (row < rows) accumulate(acc, x + row * R, 1, lane, R, group);
    for (int offset = group / 2; offset > 0; offset /= 2) acc.merge(acc.shuffled_down(offset, group));
    if (row < rows && lane == 0) out[row] = T(acc.value());
  }
}

// One thread per (o, chunk, i): walks its column down the chunk. Coalesced across i; used when inner is
// wide (>= 32) or when each output has only a few elements.
template <class T, class Acc>
__global__ void reduce_columns(int64_t outer, int64_t R, int64_t inner, int64_t chunks, int64_t chunk_len,
                               const T* __restrict__ x, T* __restrict__ out, Acc* __restrict__ partial) {
  const int64_t tasks = outer * chunks * inner;
  for (int64_t u = thread_index(); u < tasks; u += thread_count()) {
    const int64_t i = u % inner;
    const int64_t o_chunk = u / inner;
    const int64_t c = o_chunk % chunks, o = o_chunk / chunks;
    const int64_t begin = c * chunk_len;
    const int64_t end = begin + chunk_len < R ? begin + chunk_len : R;
    Acc acc = Acc::identity();
    accumulate(acc, x + o * R * inner + i, inner, begin, end, 1);
    // u = (o·chunks + c)·inner + i: the partial's slot, and the output's index when chunks == 1.
    if (partial)
      partial[u] = acc;
    else
      out[u] = T(acc.value());
  }
}

// One block per (o, chunk) "slab" of chunk_len × inner contiguous elements, for narrow inner (< 32,
// including 1 with long rows). blockDim = inner · rows_per_step, so thread t always reads column t % inner,
// at rows t / inner, + rows_per_step, …: consecutive threads read consecutive addresses. The per-column
// results are merged by a fixed tree in shared memory.
template <class T, class Acc>
__global__ void reduce_slabs(int64_t outer, int64_t R, int64_t inner, int64_t chunks, int64_t chunk_len,
                             const T* __restrict__ x, T* __restrict__ out, Acc* __restrict__ partial) {
  __shared__ Acc shared[kBlock];  // accumulators are trivial types, as shared memory needs
  const int t = int(threadIdx.x);
  const int64_t i = t % inner;
  const int row_in_step = int(t / inner);
  const int rows_per_step = int(blockDim.x / inner);
  for (int64_t slab = blockIdx.x; slab < outer * chunks; slab += gridDim.x) {
    const int64_t o = slab / chunks, c = slab % chunks;
    const int64_t begin = c * chunk_len;
    const int64_t end = begin + chunk_len < R ? begin + chunk_len : R;
    Acc acc = Acc::identity();
    accumulate(acc, x + o * R * inner + i, inner, begin + row_in_step, end, rows_per_step);
    __syncthreads();  // the previous slab's tree is done with shared memory
    shared[t] = acc;
    merge_rows_in_shared(shared, rows_per_step, int(inner));
    if (row_in_step == 0) {
      // slab·inner + i = (o·chunks + c)·inner + i: the partial's slot, and o·inner + i when chunks == 1.
      if (partial)
        partial[slab * inner + i] = shared[t];
      else
        out[slab * inner + i] = T(shared[t].value());
    }
  }
}

// Second pass: a block per output merges its chunks' partials (thread t takes chunks t, t + blockDim, …
// in order, four loads in flight, then the fixed tree), so that thousands of chunks cost microseconds.
template <class T, class Acc>
__global__ void merge_chunks(int64_t outputs, int64_t inner, int64_t chunks, const Acc* __restrict__ partial,
                             T* __restrict__ out) {
  __shared__ Acc shared[kBlock];  // accumulators are trivial types, as shared memory needs
  const int t = int(threadIdx.x);
  for (int64_t v = blockIdx.x; v < outputs; v += gridDim.x) {
    const int64_t o = v / inner, i = v % inner;
    Acc acc = Acc::identity();
    merge_strided(acc, partial + o * chunks * inner + i, inner, t, chunks, blockDim.x);  // chunk c at [c·inner]
    __syncthreads();  // the previous output's tree is done with shared memory
    shared[t] = acc;
    merge_rows_in_shared(shared, int(blockDim.x), 1);
    if (t == 0) out[v] = T(shared[0].value());
  }
}

// ---- planning -----------------------------------------------------------------------------------------

// How much independent work a launch needs before a long reduce axis is left whole. A launch of equal
// tasks loses up to one wave of resident threads at its tail, so the targets are several waves of an
// H100/H200 (132 SMs × up to 2048 resident threads, 8 blocks of 256).
constexpr int64_t kTargetColumnTasks = int64_t(1) << 20;  // threads of reduce_columns
constexpr int64_t kTargetSlabs = 8192;                     // blocks of reduce_slabs
constexpr int64_t kManyRows = 8192;                        // rows that keep a warp each busy enough
// A chunk is never shorter than this, so that partials stay a small fraction of the traffic (<= 1/16).
constexpr int64_t kMinColumnChunk = 64;            // rows per column task
constexpr int64_t kMinSlabElements = 16 * kBlock;  // elements per slab (16 per thread)

enum class Mapping { rows_grouped, columns, slabs };

struct Plan {
  Mapping mapping = Mapping::columns;
  int group = 1;     // rows_grouped: lanes per row
  int block = kBlock;
  int64_t chunks = 1, chunk_len = 0;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for `tasks` blocks' or threads' worth of work, up to 2^20 blocks (grid-stride loops take any
// rest): many short waves rather than launch.h's few long ones, so a partly filled last wave costs little.
unsigned capped_blocks(int64_t blocks) { return unsigned(std::clamp<int64_t>(blocks, 1, int64_t(1) << 20)); }

Plan plan_reduce(int64_t outer, int64_t R, int64_t inner) {
  Plan p;
  int64_t wanted_chunks = 1;
  if (inner == 1 && (R <= 1024 || outer >= kManyRows)) {
    p.mapping = Mapping::rows_grouped;
    while (p.group < 32 && p.group < R) p.group *= 2;
  } else if (inner >= 32 || R * inner <= 512) {
    p.mapping = Mapping::columns;
    const int64_t tasks = outer * inner;
    if (tasks < kTargetColumnTasks && R >= 2 * kMinColumnChunk)
      wanted_chunks = std::min(ceil_div(kTargetColumnTasks, tasks), R / kMinColumnChunk);
  } else {
    p.mapping = Mapping::slabs;
    p.block = int(inner * (kBlock / inner));
    if (outer < kTargetSlabs && R * inner >= 2 * kMinSlabElements)
      wanted_chunks = std::min(ceil_div(kTargetSlabs, outer), R * inner / kMinSlabElements);
  }
  // Equal chunk lengths; recounting the chunks drops any that would be empty.
  p.chunk_len = std::max<int64_t>(ceil_div(R, std::max<int64_t>(wanted_chunks, 1)), 1);
  p.chunks = std::max<int64_t>(ceil_div(R, p.chunk_len), 1);
  return p;
}

template <class T, class Acc>
void launch_reduce(const ExecContext& ctx, int64_t outer, int64_t R, int64_t inner, const T* x, T* out) {
  const cudaStream_t stream = stream_of(ctx);
  const Plan p = plan_reduce(outer, R, inner);
  if (p.mapping == Mapping::rows_grouped) {
    reduce_rows_grouped<T, Acc><<<capped_blocks(ceil_div(outer * p.group, kBlock)), kBlock, 0, stream>>>(outer, R, p.group, x, out);
    SCPN_CUDA_LAUNCH_CHECK("reduce_rows_grouped");
    return;
  }
  const int64_t outputs = outer * inner;
  Scratch partials(ctx, p.chunks > 1 ? size_t(outputs * p.chunks) * sizeof(Acc) : 0);
  Acc* partial = partials.as<Acc>();
  if (p.mapping == Mapping::columns) {
    reduce_columns<T, Acc><<<capped_blocks(ceil_div(outputs * p.chunks, kBlock)), kBlock, 0, stream>>>(outer, R, inner, p.chunks,
                                                                                p.chunk_len, x, out, partial);
    SCPN_CUDA_LAUNCH_CHECK("reduce_columns");
  } else {
    reduce_slabs<T, Acc><<<capped_blocks(outer * p.chunks), p.block, 0, stream>>>(outer, R, inner, p.chunks, p.chunk_len, x, out, partial);
    SCPN_CUDA_LAUNCH_CHECK("reduce_slabs");
  }
  if (p.chunks > 1) {
    merge_chunks<T, Acc><<<capped_blocks(outputs), kBlock, 0, stream>>>(outputs, inner, p.chunks, partial, out);
    SCPN_CUDA_LAUNCH_CHECK("merge_chunks");
  }
}

}  // namespace

void reduce(const ExecContext& ctx, ReduceOp op, DType t, int64_t outer, int64_t red, int64_t inner, const void* x,
            void* out) {
  switch_float(t, "reduce", [&](auto zero) {
    using T = decltype(zero);
    if (outer <= 0 || inner <= 0) return;  // no outputs
    const T* xs = static_cast<const T*>(x);
    T* o = static_cast<T*>(out);
    const int64_t R = std::max<int64_t>(red, 0);
    switch (op) {
      case ReduceOp::sum: launch_reduce<T, SumAccumulator>(ctx, outer, R, inner, xs, o); return;
      case ReduceOp::max: launch_reduce<T, ExtremumAccumulator<true>>(ctx, outer, R, inner, xs, o); return;
      case ReduceOp::min: launch_reduce<T, ExtremumAccumulator<false>>(ctx, outer, R, inner, xs, o); return;
    }
    throw Error(cat("reduce: unknown op ", int(op)));
  });
}

}  // namespace scpn::cuda
