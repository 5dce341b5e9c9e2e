#include <cstdlib>
#include <string>

#include "core/error.h"
#include "dist/communicator.h"
#ifdef TERN_HAVE_MPI
#include "dist/mpi.h"
#endif

namespace tern::dist {

int launcher_world_size() {
  // OpenMPI's mpirun, MPICH / Hydra and srun's PMI. Not SLURM_NTASKS: it describes the whole
  // allocation, also to a single process started in it without srun.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n >= 1) return n;
    }
  }
  return 1;
}

bool have_mpi() {
#ifdef TERN_HAVE_MPI
  return true;
#else
  return false;
#endif
}

void end_job_on_error(int exit_code) {
#ifdef TERN_HAVE_MPI
  mpi_abort_if_parallel(exit_code);
#else
  (void)exit_code;
#endif
}

std::unique_ptr<Communicator> make_world_communicator() {
  const int n = launcher_world_size();
  if (n <= 1) return make_solo_communicator();
#ifdef TERN_HAVE_MPI
  return make_mpi_communicator();
#else
  fail(ErrorKind::request, "launched as one of " + std::to_string(n) +
                               " ranks, but this tern was built without MPI (install "
                               "libopenmpi-dev and rebuild: bash scripts/setup.sh)");
#endif
}

void broadcast_text(Communicator& comm, std::string& text, int root) {
  if (comm.size() == 1) return;
  int64_t n = int64_t(text.size());
  comm.broadcast(&n, sizeof n, root)->wait();
  text.resize(size_t(n));
  if (n > 0) comm.broadcast(text.data(), n, root)->wait();
}

}  // namespace tern::dist
