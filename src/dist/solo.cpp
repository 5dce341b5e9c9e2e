#include <cstring>

#include <string>

#include "core/error.h"
#include "dist/communicator.h"

namespace tern::dist {
namespace {

struct Done final : Pending {
  void wait() override {}
  bool test() override { return true; }
};

class Solo final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "solo"; }
  Handle all_reduce_sum(float*, int64_t) override { return done(); }
  Handle reduce_scatter_sum(const float* in, float* out, int64_t n) override {
    if (in != out && n > 0) std::memmove(out, in, size_t(n) * sizeof(float));
    return done();
  }
  Handle reduce_scatterv_sum(const float* in, float* out, const int64_t* counts) override {
    if (in != out && counts[0] > 0) std::memmove(out, in, size_t(counts[0]) * sizeof(float));
    return done();
  }
  Handle all_gatherv(const float* in, float* out, const int64_t* counts) override {
    if (in != out && counts[0] > 0) std::memmove(out, in, size_t(counts[0]) * sizeof(float));
    return done();
  }
  Handle all_gather(const void* in, void* out, int64_t bytes) override {
    if (in != out && bytes > 0) std::memmove(out, in, size_t(bytes));
    return done();
  }
  Handle all_to_allv(const void* send, const int64_t* send_bytes, void* recv,
                     const int64_t*) override {
    if (send != recv && send_bytes[0] > 0) std::memmove(recv, send, size_t(send_bytes[0]));
    return done();
  }
  Handle broadcast(void*, int64_t, int) override { return done(); }
  Handle barrier() override { return done(); }
  std::unique_ptr<Communicator> split(int, int) override {
    ++stats_.calls;
    return std::make_unique<Solo>();
  }
  Handle send(const void*, int64_t, int dest, int) override { no_peer(dest); }
  Handle recv(void*, int64_t, int source, int) override { no_peer(source); }

 private:
  [[noreturn]] static void no_peer(int rank) {
    fail(ErrorKind::internal,
         "point-to-point message with rank " + std::to_string(rank) + " in a one-rank job");
  }
  Handle done() {
    ++stats_.calls;
    return std::make_unique<Done>();
  }
};

}  // namespace

std::unique_ptr<Communicator> make_solo_communicator() {
  return std::make_unique<Solo>();
}

}  // namespace tern::dist
