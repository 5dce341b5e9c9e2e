#include "dist/mpi.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"

namespace tern::dist {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail(ErrorKind::io, std::string(what) + " failed: " + std::string(msg, size_t(len)));
}

int as_count(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX)
    fail(ErrorKind::request,
         std::string(what) + ": " + std::to_string(n) + " elements exceed MPI's int counts");
  return int(n);
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void ensure_init() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED)
    fail(ErrorKind::resource, "this MPI library does not provide MPI_THREAD_SERIALIZED");
  std::atexit(finalize_at_exit);
}

class MpiPending final : public Pending {
 public:
  std::vector<int> counts, displs, rcounts, rdispls;  // kept alive for the v-collectives
  MPI_Request request = MPI_REQUEST_NULL;
  ~MpiPending() override {
    if (request != MPI_REQUEST_NULL) MPI_Wait(&request, MPI_STATUS_IGNORE);
  }
  void wait() override { check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait"); }
  bool test() override {
    int done = 0;  // a completed request becomes MPI_REQUEST_NULL, so a later wait() returns
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  }
};

class Mpi final : public Communicator {
 public:
  // The world, or a communicator split from it (owned: freed on destruction).
  explicit Mpi(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    ensure_init();
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~Mpi() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }

  Handle all_reduce_sum(float* data, int64_t n) override {
    auto h = start((size_ - 1) * n * 4);
    check(MPI_Iallreduce(MPI_IN_PLACE, data, as_count(n, "all_reduce_sum"), MPI_FLOAT, MPI_SUM,
                         comm_, &h->request),
          "MPI_Iallreduce");
    return h;
  }
  Handle reduce_scatter_sum(const float* in, float* out, int64_t n) override {
    auto h = start((size_ - 1) * n * 4);
    check(MPI_Ireduce_scatter_block(in, out, as_count(n, "reduce_scatter_sum"), MPI_FLOAT, MPI_SUM,
                                    comm_, &h->request),
          "MPI_Ireduce_scatter_block");
    return h;
  }
  Handle reduce_scatterv_sum(const float* in, float* out, const int64_t* counts) override {
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) total += counts[r];
    auto h = start((total - counts[rank_]) * 4);
    for (int r = 0; r < size_; ++r) h->counts.push_back(as_count(counts[r], "reduce_scatterv_sum"));
    check(MPI_Ireduce_scatter(in, out, h->counts.data(), MPI_FLOAT, MPI_SUM, comm_, &h->request),
          "MPI_Ireduce_scatter");
    return h;
  }
  Handle all_gatherv(const float* in, float* out, const int64_t* counts) override {
    auto h = start((size_ - 1) * counts[rank_] * 4);
    int64_t at = 0;
    for (int r = 0; r < size_; ++r) {
      h->counts.push_back(as_count(counts[r], "all_gatherv"));
      h->displs.push_back(as_count(at, "all_gatherv"));
      at += counts[r];
    }
    const bool in_place = in == out + h->displs[size_t(rank_)];
    check(MPI_Iallgatherv(in_place ? MPI_IN_PLACE : in, h->counts[size_t(rank_)], MPI_FLOAT, out,
                          h->counts.data(), h->displs.data(), MPI_FLOAT, comm_, &h->request),
          "MPI_Iallgatherv");
    return h;
  }
  Handle all_gather(const void* in, void* out, int64_t bytes) override {
    auto h = start((size_ - 1) * bytes);
    const int c = as_count(bytes, "all_gather");
    check(MPI_Iallgather(in, c, MPI_BYTE, out, c, MPI_BYTE, comm_, &h->request), "MPI_Iallgather");
    return h;
  }
  Handle all_to_allv(const void* send, const int64_t* send_bytes, void* recv,
                     const int64_t* recv_bytes) override {
    int64_t to_peers = 0;
    for (int r = 0; r < size_; ++r)
      if (r != rank_) to_peers += send_bytes[r];
    auto h = start(to_peers);
    int64_t so = 0, ro = 0;
    for (int r = 0; r < size_; ++r) {
      h->counts.push_back(as_count(send_bytes[r], "all_to_allv"));
      h->displs.push_back(as_count(so, "all_to_allv"));
      h->rcounts.push_back(as_count(recv_bytes[r], "all_to_allv"));
      h->rdispls.push_back(as_count(ro, "all_to_allv"));
      so += send_bytes[r];
      ro += recv_bytes[r];
    }
    check(MPI_Ialltoallv(send, h->counts.data(), h->displs.data(), MPI_BYTE, recv,
                         h->rcounts.data(), h->rdispls.data(), MPI_BYTE, comm_, &h->request),
          "MPI_Ialltoallv");
    return h;
  }
  Handle broadcast(void* data, int64_t bytes, int root) override {
    auto h = start(rank_ == root ? (size_ - 1) * bytes : 0);
    check(MPI_Ibcast(data, as_count(bytes, "broadcast"), MPI_BYTE, root, comm_, &h->request),
          "MPI_Ibcast");
    return h;
  }
  Handle barrier() override {
    auto h = start(0);
    check(MPI_Ibarrier(comm_, &h->request), "MPI_Ibarrier");
    return h;
  }
  Handle send(const void* data, int64_t bytes, int dest, int tag) override {
    auto h = start(bytes);
    check(MPI_Isend(data, as_count(bytes, "send"), MPI_BYTE, dest, tag, comm_, &h->request),
          "MPI_Isend");
    return h;
  }
  Handle recv(void* data, int64_t bytes, int source, int tag) override {
    auto h = start(0);
    check(MPI_Irecv(data, as_count(bytes, "recv"), MPI_BYTE, source, tag, comm_, &h->request),
          "MPI_Irecv");
    return h;
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub = MPI_COMM_NULL;
    check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    ++stats_.calls;
    return std::make_unique<Mpi>(sub);
  }
  void progress() override {
    // Any MPI call runs OpenMPI's progress engine; a probe is the cheapest that touches no
    // request.
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, MPI_STATUS_IGNORE);
  }

 private:
  std::unique_ptr<MpiPending> start(int64_t sent) {
    ++stats_.calls;
    stats_.bytes_sent += sent;
    return std::make_unique<MpiPending>();
  }
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

void mpi_abort_if_parallel(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<Mpi>();
}

}  // namespace tern::dist
