// Collective semantics every Communicator backend must have, checked from one rank's side: the
// in-process tests run it on N threads, the MPI test on N processes under mpirun.
#pragma once

#include <gtest/gtest.h>
#include <chrono>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dist/communicator.h"

namespace tern::dist::test {

// A value rank r contributes at index i: integers, so any summation order gives the same bits.
inline float int_value(int r, int64_t i) {
  return float((r + 1) * 1000 + i % 997);
}
// Values whose sum depends on order (magnitudes 1e-3 .. 1e4).
inline float wide_value(int r, int64_t i) {
  return std::ldexp(1.0f + 0.37f * float((r * 31 + i * 17) % 101) / 101.0f, int((r + i) % 24) - 10);
}

// `exact_order`: sums must equal the rank-order sum bit for bit (the in-process backend).
inline void check_collectives(Communicator& c, bool exact_order) {
  const int r = c.rank(), n = c.size();
  const int64_t len = 1000 + 37;  // not a multiple of any vector width
  const CommStats before = c.stats();

  // all_reduce_sum: exact for integers in any order; rank order for the in-process backend.
  std::vector<float> a(static_cast<size_t>(len)), w(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) a[size_t(i)] = int_value(r, i), w[size_t(i)] = wide_value(r, i);
  c.all_reduce_sum(a.data(), len)->wait();
  c.all_reduce_sum(w.data(), len)->wait();
  for (int64_t i = 0; i < len; ++i) {
    float want = 0, want_wide = 0;
    for (int q = 0; q < n; ++q) want += int_value(q, i), want_wide += wide_value(q, i);
    ASSERT_EQ(a[size_t(i)], want) << "rank " << r << " i " << i;
    if (exact_order)
      ASSERT_EQ(w[size_t(i)], want_wide) << "rank order, rank " << r << " i " << i;
    else
      ASSERT_NEAR(w[size_t(i)], want_wide, 1e-6f * std::fabs(want_wide)) << r << " " << i;
  }

  // reduce_scatter_sum: block b of every rank's input summed onto rank b.
  std::vector<float> in(static_cast<size_t>(n * len)), out(static_cast<size_t>(len), -1.0f);
  for (int b = 0; b < n; ++b)
    for (int64_t i = 0; i < len; ++i) in[size_t(b * len + i)] = int_value(r, i + b * 7);
  c.reduce_scatter_sum(in.data(), out.data(), len)->wait();
  for (int64_t i = 0; i < len; ++i) {
    float want = 0;
    for (int q = 0; q < n; ++q) want += int_value(q, i + r * 7);
    ASSERT_EQ(out[size_t(i)], want) << "rank " << r << " i " << i;
  }

  // reduce_scatterv_sum with uneven and empty blocks: rank q's block holds (q % 3) * 7 floats.
  std::vector<int64_t> vcounts(static_cast<size_t>(n));
  int64_t vtotal = 0, vfirst = 0;
  for (int q = 0; q < n; ++q) {
    vcounts[size_t(q)] = (q % 3) * 7;
    if (q < r) vfirst += vcounts[size_t(q)];
    vtotal += vcounts[size_t(q)];
  }
  std::vector<float> vin(static_cast<size_t>(vtotal + 1)), vout(size_t(vcounts[size_t(r)] + 1));
  for (int64_t i = 0; i < vtotal; ++i) vin[size_t(i)] = wide_value(r, i);
  c.reduce_scatterv_sum(vin.data(), vout.data(), vcounts.data())->wait();
  for (int64_t i = 0; i < vcounts[size_t(r)]; ++i) {
    float want = 0;
    for (int q = 0; q < n; ++q) want += wide_value(q, vfirst + i);
    if (exact_order)
      ASSERT_EQ(vout[size_t(i)], want) << "rank order, rank " << r << " i " << i;
    else
      ASSERT_NEAR(vout[size_t(i)], want, 1e-6f * std::fabs(want)) << r << " " << i;
  }

  // all_gatherv in place: each rank's block already sits in `out`.
  std::vector<float> gathered(static_cast<size_t>(vtotal + 1), -1.0f);
  for (int64_t i = 0; i < vcounts[size_t(r)]; ++i) gathered[size_t(vfirst + i)] = int_value(r, i);
  c.all_gatherv(gathered.data() + vfirst, gathered.data(), vcounts.data())->wait();
  for (int q = 0, at = 0; q < n; ++q)
    for (int64_t i = 0; i < vcounts[size_t(q)]; ++i, ++at)
      ASSERT_EQ(gathered[size_t(at)], int_value(q, i)) << "from " << q << " i " << i;

  // all_gather, with the overlapping all_reduce waited second (non-blocking: both in flight).
  std::vector<uint8_t> mine(13), all(static_cast<size_t>(13 * n));
  for (size_t k = 0; k < mine.size(); ++k) mine[k] = uint8_t(r * 16 + int(k));
  std::vector<float> b(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) b[size_t(i)] = int_value(r, i + 1);
  Handle reduce = c.all_reduce_sum(b.data(), len);
  Handle gather = c.all_gather(mine.data(), all.data(), 13);
  gather->wait();
  reduce->wait();
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < 13; ++k) ASSERT_EQ(all[size_t(q * 13 + k)], uint8_t(q * 16 + k));
  float want_b0 = 0;
  for (int q = 0; q < n; ++q) want_b0 += int_value(q, 1);
  EXPECT_EQ(b[0], want_b0);

  // all_to_allv with uneven and zero counts: rank s sends ((s + d) % 3) * 5 bytes to rank d.
  auto count = [](int s, int d) { return int64_t((s + d) % 3) * 5; };
  std::vector<int64_t> send_bytes(static_cast<size_t>(n)), recv_bytes(static_cast<size_t>(n));
  std::vector<uint8_t> send, recv;
  for (int d = 0; d < n; ++d) {
    send_bytes[size_t(d)] = count(r, d);
    recv_bytes[size_t(d)] = count(d, r);
    for (int64_t k = 0; k < count(r, d); ++k) send.push_back(uint8_t(r * 40 + d * 7 + k));
  }
  int64_t total_recv = 0;
  for (int64_t v : recv_bytes) total_recv += v;
  recv.assign(size_t(total_recv), 0xee);
  send.push_back(0);  // never empty, so data() is valid
  recv.push_back(0);
  c.all_to_allv(send.data(), send_bytes.data(), recv.data(), recv_bytes.data())->wait();
  size_t at = 0;
  for (int s = 0; s < n; ++s)
    for (int64_t k = 0; k < count(s, r); ++k, ++at)
      ASSERT_EQ(recv[at], uint8_t(s * 40 + r * 7 + k)) << "from " << s << " byte " << k;

  // broadcast from the last rank.
  std::vector<int32_t> bc(9, r);
  c.broadcast(bc.data(), int64_t(bc.size() * 4), n - 1)->wait();
  for (int32_t v : bc) ASSERT_EQ(v, n - 1);
  c.barrier()->wait();

  const CommStats& s = c.stats();
  EXPECT_EQ(s.calls - before.calls, 10);
  if (n == 1) {
    EXPECT_EQ(s.bytes_sent, before.bytes_sent);
  }
}

// Point to point, as a pipeline uses it: a ring of sends (each rank to the next, posted before
// the matching recv exists), two tags between one pair kept apart, order within a tag kept,
// and a recv posted before its send.
inline void check_point_to_point(Communicator& c) {
  const int r = c.rank(), n = c.size();
  if (n < 2) return;
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<float> a(777), b(777), got_a(777), got_b(777);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(r * 10000 + int(i)), b[i] = -a[i];
  std::vector<Handle> pending;
  pending.push_back(c.send(a.data(), int64_t(a.size() * 4), next, 7));
  pending.push_back(c.send(b.data(), int64_t(b.size() * 4), next, 9));
  // Tag 9 first: a recv matches its tag, not the order of arrival across tags.
  c.recv(got_b.data(), int64_t(got_b.size() * 4), prev, 9)->wait();
  c.recv(got_a.data(), int64_t(got_a.size() * 4), prev, 7)->wait();
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(got_a[i], float(prev * 10000 + int(i)));
    ASSERT_EQ(got_b[i], -float(prev * 10000 + int(i)));
  }
  // Three messages on one tag arrive in order; the recv is posted before the sends.
  int32_t first = -1, second = -1, third = -1;
  Handle h1 = c.recv(&first, 4, prev, 3);
  int32_t v1 = r * 3, v2 = r * 3 + 1, v3 = r * 3 + 2;
  pending.push_back(c.send(&v1, 4, next, 3));
  pending.push_back(c.send(&v2, 4, next, 3));
  pending.push_back(c.send(&v3, 4, next, 3));
  h1->wait();
  c.recv(&second, 4, prev, 3)->wait();
  c.recv(&third, 4, prev, 3)->wait();
  EXPECT_EQ(first, prev * 3);
  EXPECT_EQ(second, prev * 3 + 1);
  EXPECT_EQ(third, prev * 3 + 2);
  for (Handle& h : pending) h->wait();
  // test() reports a send complete once its peer has it, without blocking: polled, bounded in
  // time. 64 kB, more than MPI sends eagerly, so completion needs the matching recv.
  std::vector<float> big(16384, float(r)), got(16384);
  Handle s = c.send(big.data(), int64_t(big.size() * 4), next, 5);
  c.recv(got.data(), int64_t(got.size() * 4), prev, 5)->wait();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!s->test()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "a received send never completed";
    c.progress();
  }
  EXPECT_TRUE(s->test());  // stays complete
  EXPECT_EQ(got[0], float(prev));
  c.barrier()->wait();
}

// split: even and odd ranks form two groups, ranked in reverse by key; each group's collectives
// and messages stay inside it, and the parent still works afterwards.
inline void check_split(Communicator& c) {
  const int r = c.rank(), n = c.size();
  std::unique_ptr<Communicator> g = c.split(r % 2, -r);
  const int members = (n - r % 2 + 1) / 2;
  ASSERT_EQ(g->size(), members);
  // Keys -r: the highest rank of the group first.
  int above = 0;
  for (int q = r % 2; q < n; q += 2) above += q > r;
  EXPECT_EQ(g->rank(), above);
  std::vector<float> v(5, float(r + 1));
  g->all_reduce_sum(v.data(), 5)->wait();
  float want = 0;
  for (int q = r % 2; q < n; q += 2) want += float(q + 1);
  EXPECT_EQ(v[0], want);
  check_collectives(*g, false);
  check_point_to_point(*g);
  std::vector<float> w(3, 1.0f);
  c.all_reduce_sum(w.data(), 3)->wait();
  EXPECT_EQ(w[2], float(n));
}

}  // namespace tern::dist::test
