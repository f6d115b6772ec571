// kernels::place_this_thread (through FlushDenormals, the first line of every kernel's parallel
// region): a team's workers end up on distinct CPUs of the process's mask, and the caller's thread
// keeps its own mask.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdlib>
#include <initializer_list>
#include <set>
#include <vector>

#include "ops/kernels/parallel.h"

#ifdef __linux__
#include <sched.h>

namespace tapegrad {
namespace {

cpu_set_t own_mask() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  EXPECT_EQ(sched_getaffinity(0, sizeof mask, &mask), 0);
  return mask;
}

// Skips when the environment asks for no placement or the process may use fewer than 2 CPUs.
bool placement_applies() {
  for (const char* var : {"OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY",
                          "TAPEGRAD_PLACE_THREADS"}) {
    if (std::getenv(var) != nullptr) return false;
  }
  const cpu_set_t mask = own_mask();
  return CPU_COUNT(&mask) >= 2;
}

TEST(ThreadPlacement, WorkersOnDistinctCpusCallerKeepsItsMask) {
  if (!placement_applies()) GTEST_SKIP() << "placement switched off or fewer than 2 CPUs";
  const cpu_set_t before = own_mask();
  const int cpus = CPU_COUNT(&before);
  const int threads = cpus < 4 ? cpus : 4;
  std::vector<cpu_set_t> masks(static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    const kernels::FlushDenormals flush;
    masks[static_cast<std::size_t>(omp_get_thread_num())] = own_mask();
  }
  const cpu_set_t after = own_mask();
  EXPECT_TRUE(CPU_EQUAL(&before, &after)) << "the caller's thread must keep its mask";
  std::set<int> pinned;
  for (int t = 1; t < threads; ++t) {
    const cpu_set_t& m = masks[static_cast<std::size_t>(t)];
    ASSERT_EQ(CPU_COUNT(&m), 1) << "worker " << t << " is not pinned to one CPU";
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &m)) {
        EXPECT_TRUE(CPU_ISSET(cpu, &before)) << "worker " << t << " left the process's mask";
        pinned.insert(cpu);
      }
    }
  }
  EXPECT_EQ(static_cast<int>(pinned.size()), threads - 1) << "two workers share a CPU";
}

}  // namespace
}  // namespace tapegrad
#endif
