// The communicator every parallel part of tern talks through (design: `dist/`): collectives over
// the ranks of one job, each started non-blocking and finished by its handle's wait(), so a
// caller can overlap communication with computation. Backends: solo (one process, no peers),
// in-process (N ranks as threads of one process: tests, and the reference for ordering), MPI
// (Debian's OpenMPI, when built with it); NCCL later behind the same interface.
//
// Rules, as MPI's: every rank issues the same collectives in the same order with matching sizes;
// buffers stay valid (and inputs unmodified) until wait() returns; each handle is waited once.
// Sums are over f32 in rank order (rank 0 + rank 1 + ...) on the in-process backend, so results
// are bit-identical run to run; MPI's order is its library's (deterministic for a fixed rank
// count and size in OpenMPI, but not necessarily rank order).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace tern::dist {

// Completion of one non-blocking collective (or point-to-point message).
class Pending {
 public:
  virtual ~Pending() = default;
  // Returns when the outputs are written and the buffers may be reused.
  virtual void wait() = 0;
  // Whether the operation is complete (wait() would return at once), without blocking where the
  // backend can tell: MPI tests its request, an in-process or solo send completes when issued.
  // Where completion needs this rank's own work (in-process collectives and receives), it waits.
  virtual bool test() {
    wait();
    return true;
  }
};
using Handle = std::unique_ptr<Pending>;

// Bytes and calls this rank has moved, for ledgers and plans.
struct CommStats {
  int64_t calls = 0;
  int64_t bytes_sent = 0;  // what this rank contributed to peers (0 for a solo rank)
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;  // "solo", "in-process", "mpi"

  // data[i] = sum over ranks of data[i], in place.
  virtual Handle all_reduce_sum(float* data, int64_t n) = 0;
  // in: size() blocks of n; out (n) = sum over ranks of their block rank().
  virtual Handle reduce_scatter_sum(const float* in, float* out, int64_t n) = 0;
  // in: size() blocks packed in rank order, counts[r] floats for rank r; out (counts[rank()]) =
  // sum over ranks of their block rank(). ZeRO's gradient shards: buckets split unevenly.
  virtual Handle reduce_scatterv_sum(const float* in, float* out, const int64_t* counts) = 0;
  // out (size() blocks of `bytes`): block r = rank r's `in`.
  virtual Handle all_gather(const void* in, void* out, int64_t bytes) = 0;
  // out: size() blocks packed in rank order, counts[r] floats from rank r's `in`. `in` may be
  // this rank's own block of `out` (in place).
  virtual Handle all_gatherv(const float* in, float* out, const int64_t* counts) = 0;
  // send: size() blocks packed in rank order, send_bytes[r] of them for rank r; recv likewise,
  // recv_bytes[r] from rank r (each rank must know what it receives: exchange counts first).
  virtual Handle all_to_allv(const void* send, const int64_t* send_bytes, void* recv,
                             const int64_t* recv_bytes) = 0;
  // data (bytes) = root's data on every rank.
  virtual Handle broadcast(void* data, int64_t bytes, int root) = 0;
  virtual Handle barrier() = 0;
  // Point to point (pipeline hand-offs): `bytes` to rank `dest`, matched by a recv on `dest`
  // from this rank with the same tag (0..32767); messages between two ranks with one tag arrive
  // in the order sent. Unlike collectives only the two ranks take part. A send never waits for
  // its recv to be posted before returning (wait() may).
  virtual Handle send(const void* data, int64_t bytes, int dest, int tag) = 0;
  virtual Handle recv(void* data, int64_t bytes, int source, int tag) = 0;
  // A collective (blocking): the ranks that give the same color form a new communicator, ranked
  // by key then by rank here. Data parallelism across pipelines uses one per pipeline.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Lets started collectives advance while the caller computes (MPI progresses only inside MPI
  // calls); call it now and then between pieces of work. A no-op where progress is automatic.
  virtual void progress() {}

  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

// `text` from `root` on every rank (a size, then the bytes).
void broadcast_text(Communicator& comm, std::string& text, int root = 0);

// One process alone: every collective is the identity (or a copy).
std::unique_ptr<Communicator> make_solo_communicator();

// The job this process was launched into: MPI's world when mpirun started it (and tern was built
// with MPI), else solo. Fails (request) when a launcher says there are several ranks but tern
// was built without MPI, rather than letting each process train alone.
std::unique_ptr<Communicator> make_world_communicator();

// The rank count a launcher announced in the environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE); 1
// when none.
int launcher_world_size();

// Whether this build has the MPI backend.
bool have_mpi();

// Called on a fatal error: in a job of several MPI ranks, ends every rank (MPI_Abort; mpirun
// names the rank), since peers waiting in a collective would otherwise wait forever. Returns
// when this process is alone.
void end_job_on_error(int exit_code);

}  // namespace tern::dist
