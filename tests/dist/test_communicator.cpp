// The communicator's backends (dist/communicator.h): the in-process group on 1..4 threads and
// the solo communicator against the shared conformance checks; rank-order sums bit for bit;
// mismatched collectives refused by name; the launcher environment read.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.h"
#include "dist/in_process.h"
#include "tests/dist/conformance.h"
#include "tests/dist/on_ranks.h"

using namespace tern;
using namespace tern::dist;
using tern::dist::test::on_ranks;

TEST(InProcessCommunicator, EveryCollectiveOnOneToFourRanks) {
  for (int n = 1; n <= 4; ++n) {
    on_ranks(n, [&](Communicator& c) {
      EXPECT_EQ(c.size(), n);
      EXPECT_STREQ(c.backend(), "in-process");
      for (int rep = 0; rep < 20; ++rep) test::check_collectives(c, /*exact_order=*/true);
    });
  }
}

TEST(InProcessCommunicator, PointToPointOnTwoToFourRanks) {
  for (int n = 2; n <= 4; ++n)
    on_ranks(n, [&](Communicator& c) {
      for (int rep = 0; rep < 10; ++rep) test::check_point_to_point(c);
    });
}

TEST(InProcessCommunicator, SplitOnOneToFiveRanks) {
  for (int n = 1; n <= 5; ++n)
    on_ranks(n, [&](Communicator& c) {
      for (int rep = 0; rep < 3; ++rep) test::check_split(c);
    });
}

TEST(InProcessCommunicator, AMessageOfTheWrongSizeIsRefusedByName) {
  on_ranks(2, [](Communicator& c) {
    std::vector<float> v(10, 1.0f);
    if (c.rank() == 0) {
      c.send(v.data(), 40, 1, 0)->wait();
      return;
    }
    try {
      c.recv(v.data(), 8, 0, 0)->wait();
      ADD_FAILURE() << "a 40-byte message filled an 8-byte recv";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expects 8"), std::string::npos) << e.what();
    }
  });
}

TEST(SoloCommunicator, HasNoPeerToMessage) {
  auto c = make_solo_communicator();
  float x = 0;
  EXPECT_THROW(c->send(&x, 4, 1, 0), Error);
  EXPECT_THROW(c->recv(&x, 4, 1, 0), Error);
  EXPECT_EQ(c->split(3, 0)->size(), 1);
}

TEST(InProcessCommunicator, BytesSentFollowTheFormula) {
  on_ranks(3, [](Communicator& c) {
    std::vector<float> v(100, 1.0f);
    c.all_reduce_sum(v.data(), 100)->wait();
    EXPECT_EQ(c.stats().bytes_sent, 2 * 100 * 4) << "its whole buffer to each of 2 peers";
    std::vector<float> out(100);
    std::vector<float> in(300, 1.0f);
    c.reduce_scatter_sum(in.data(), out.data(), 100)->wait();
    EXPECT_EQ(out[0], 3.0f);
    EXPECT_EQ(c.stats().bytes_sent, 2 * 100 * 4 + 2 * 100 * 4);
  });
}

TEST(InProcessCommunicator, MismatchedCollectivesAreRefusedByName) {
  EXPECT_THROW(on_ranks(2,
                        [](Communicator& c) {
                          std::vector<float> v(8, 1.0f);
                          c.all_reduce_sum(v.data(), c.rank() == 0 ? 4 : 8)->wait();
                        }),
               Error);
  try {
    on_ranks(2, [](Communicator& c) {
      std::vector<float> v(8, 1.0f);
      if (c.rank() == 0)
        c.all_reduce_sum(v.data(), 8)->wait();
      else
        c.broadcast(v.data(), 32, 0)->wait();
    });
    ADD_FAILURE() << "a broadcast met an all-reduce";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mismatched"), std::string::npos) << e.what();
  }
}

TEST(SoloCommunicator, IsTheIdentity) {
  auto c = make_solo_communicator();
  EXPECT_EQ(c->size(), 1);
  test::check_collectives(*c, true);
}

TEST(WorldCommunicator, ReadsTheLauncherEnvironment) {
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("PMI_SIZE");
  EXPECT_EQ(launcher_world_size(), 1);
  EXPECT_STREQ(make_world_communicator()->backend(), "solo");
  setenv("PMI_SIZE", "4", 1);
  EXPECT_EQ(launcher_world_size(), 4);
  if (!have_mpi()) {
    EXPECT_THROW(make_world_communicator(), Error);
  }
  unsetenv("PMI_SIZE");
}
