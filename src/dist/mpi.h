// The MPI backend (built when Debian's libopenmpi-dev is present: TERN_HAVE_MPI): MPI_COMM_WORLD,
// initialised on first use with MPI_THREAD_SERIALIZED (collectives come from one thread at a
// time) and finalised at exit. Non-blocking collectives (MPI_Iallreduce, ...) behind handles. A
// failed peer aborts the job through MPI's default error handler, and mpirun names the rank, so
// no rank hangs in a collective.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace tern::dist {

std::unique_ptr<Communicator> make_mpi_communicator();

// MPI_Abort on the world when MPI was initialised with more than one rank; else returns.
void mpi_abort_if_parallel(int exit_code);

}  // namespace tern::dist
