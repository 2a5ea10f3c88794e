#include "engine/concurrent.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <vector>

namespace scpn {

void run_concurrently(int64_t count, int at_once, const std::function<void(int64_t)>& job) {
  if (count <= 0) return;
  if (at_once <= 1 || count == 1) {
    for (int64_t i = 0; i < count; ++i) job(i);
    return;
  }
  // An exception must not leave an OpenMP region (the program would terminate): each job's is kept.
  std::vector<std::exception_ptr> errors(static_cast<size_t>(count));
#pragma omp parallel num_threads(int(std::min<int64_t>(at_once, count)))
  {
    // This thread's nested regions (every kernel's) get one thread, whatever the nesting settings; the
    // setting belongs to this region's implicit task and ends with it.
    omp_set_num_threads(1);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < count; ++i) {
      try {
        job(i);
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace scpn
