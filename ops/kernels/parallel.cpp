// Thread placement of the kernels' OpenMP teams (see place_this_thread in parallel.h).
#include "ops/kernels/parallel.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace tapegrad {
namespace kernels {
namespace {

// False when the consumer chose a binding (any of the OpenMP runtimes' variables is set, even to
// "false") or opted out with TAPEGRAD_PLACE_THREADS=0 (or off / false / no). Read once.
bool placement_enabled() {
  static const bool enabled = [] {
    for (const char* var : {"OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY"}) {
      if (std::getenv(var) != nullptr) return false;
    }
    const char* own = std::getenv("TAPEGRAD_PLACE_THREADS");
    if (own == nullptr) return true;
    for (const char* no : {"0", "off", "false", "no"}) {
      if (std::strcmp(own, no) == 0) return false;
    }
    return true;
  }();
  return enabled;
}

#ifdef __linux__
// The CPU number of the k-th CPU (from 0) set in mask; -1 if there are fewer.
int nth_cpu(const cpu_set_t& mask, int k) {
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask) && k-- == 0) return cpu;
  }
  return -1;
}

// Worker k to the (k mod P)-th CPU of its mask, for good; the master to the first CPU, then its
// own mask back (the move is made when the mask is set; restoring it does not move the thread).
void place(int thread, const cpu_set_t& mask) {
  const int cpus = CPU_COUNT(&mask);
  if (cpus < 2) return;
  const int cpu = nth_cpu(mask, thread % cpus);
  if (cpu < 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (thread != 0) {
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
  } else if (sched_setaffinity(0, sizeof one, &one) == 0) {
    sched_setaffinity(0, sizeof mask, &mask);
  }
}
#endif

}  // namespace

void place_this_thread() {
  thread_local bool placed = false;
  if (placed || omp_get_level() != 1 || omp_get_active_level() != 1) return;
  if (omp_get_num_threads() < 2) return;
  placed = true;
  if (!placement_enabled()) return;
#ifdef __linux__
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) place(omp_get_thread_num(), mask);
#endif
}

}  // namespace kernels
}  // namespace tapegrad
