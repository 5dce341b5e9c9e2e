// The MPI backend against the same conformance checks, run by ctest under `mpirun -np N`
// (tests/dist/CMakeLists.txt): every rank runs this gtest binary; a failure on any rank fails
// mpirun.
#include <gtest/gtest.h>

#include "dist/mpi.h"
#include "tests/dist/conformance.h"

TEST(MpiCommunicator, EveryCollective) {
  auto c = tern::dist::make_mpi_communicator();
  ASSERT_GE(c->size(), 2) << "run under mpirun -np 2 or more";
  EXPECT_STREQ(c->backend(), "mpi");
  for (int rep = 0; rep < 5; ++rep) tern::dist::test::check_collectives(*c, /*exact_order=*/false);
}

TEST(MpiCommunicator, PointToPoint) {
  auto c = tern::dist::make_mpi_communicator();
  for (int rep = 0; rep < 5; ++rep) tern::dist::test::check_point_to_point(*c);
}

TEST(MpiCommunicator, Split) {
  auto c = tern::dist::make_mpi_communicator();
  for (int rep = 0; rep < 3; ++rep) tern::dist::test::check_split(*c);
}
