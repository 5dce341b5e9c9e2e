#include "apps/tern/expert_parallel_flag.h"

#include <memory>

#include "core/error.h"
#include "core/log.h"
#include "dist/communicator.h"

namespace tern::app {

model::ExpertParallel open_expert_parallel(int64_t ep, const std::string& command) {
  const int launched = dist::launcher_world_size();
  if (ep <= 0) {
    if (launched > 1)
      fail(ErrorKind::request, command + " was started as one of " + std::to_string(launched) +
                                   " ranks; give --ep " + std::to_string(launched) +
                                   " to spread the experts over them");
    return {};
  }
  if (ep != launched)
    fail(ErrorKind::request, "--ep " + std::to_string(ep) + " but " + std::to_string(launched) +
                                 " rank(s) were started (mpirun -np N with N = --ep)");
  if (ep == 1) return {};
  static std::unique_ptr<dist::Communicator> world;  // lives until exit, as MPI does
  if (!world) world = dist::make_world_communicator();
  if (world->rank() != 0) set_log_level(LogLevel::warn);
  return model::ExpertParallel{world.get()};
}

bool is_lead(const model::ExpertParallel& ep) {
  return ep.rank() == 0;
}

}  // namespace tern::app
