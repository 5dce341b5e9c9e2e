#include "dist/in_process.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/error.h"

namespace tern::dist {
namespace {

enum class Kind {
  all_reduce,
  reduce_scatter,
  reduce_scatterv,
  all_gather,
  all_gatherv,
  all_to_allv,
  broadcast,
  barrier
};

// memcpy that allows empty ranges (whose pointers may be null: an empty vector's data()).
void copy_bytes(void* dst, const void* src, size_t n) {
  if (n > 0) std::memcpy(dst, src, n);
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::all_reduce:
      return "all_reduce_sum";
    case Kind::reduce_scatter:
      return "reduce_scatter_sum";
    case Kind::reduce_scatterv:
      return "reduce_scatterv_sum";
    case Kind::all_gather:
      return "all_gather";
    case Kind::all_gatherv:
      return "all_gatherv";
    case Kind::all_to_allv:
      return "all_to_allv";
    case Kind::broadcast:
      return "broadcast";
    case Kind::barrier:
      return "barrier";
  }
  return "?";
}

// What one rank contributed to one collective (its input copied at issue time).
struct Post {
  Kind kind = Kind::barrier;
  int64_t size = 0;  // elements (sums) or bytes (the rest)
  int root = 0;
  std::vector<uint8_t> input;
  std::vector<int64_t> offsets;  // all_to_allv: where each destination's block starts in input
  std::vector<int64_t> counts;   // all_to_allv: bytes for each destination; v-collectives: floats
};

struct Op {
  std::vector<Post> posts;
  int issued = 0, finished = 0;
};

struct Hub {
  explicit Hub(int n) : n(n) {}
  const int n;
  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, Op> ops;  // by sequence number: the k-th collective every rank issues
  // Point-to-point messages in flight, by (source, dest, tag), oldest first.
  std::map<std::tuple<int, int, int>, std::deque<std::vector<uint8_t>>> mail;
  // Groups made by split(), by (the split's sequence number, color): the first member to arrive
  // creates the group's hub, the others join it.
  std::map<std::pair<int64_t, int>, std::shared_ptr<Hub>> groups;
};

class InProcess;

// A send completes when issued (its bytes are copied into the mailbox).
struct Sent final : Pending {
  void wait() override {}
  bool test() override { return true; }
};

// A recv takes the oldest matching message when waited on, blocking until one arrives.
class Received final : public Pending {
 public:
  Received(std::shared_ptr<Hub> hub, void* out, int64_t bytes, std::tuple<int, int, int> key)
      : hub_(std::move(hub)), out_(out), bytes_(bytes), key_(key) {}
  void wait() override {
    if (waited_) return;
    waited_ = true;
    std::vector<uint8_t> msg;
    {
      std::unique_lock lock(hub_->mu);
      hub_->cv.wait(lock, [&] {
        auto it = hub_->mail.find(key_);
        return it != hub_->mail.end() && !it->second.empty();
      });
      auto& queue = hub_->mail[key_];
      msg = std::move(queue.front());
      queue.pop_front();
    }
    if (int64_t(msg.size()) != bytes_)
      fail(ErrorKind::internal, "message from rank " + std::to_string(std::get<0>(key_)) +
                                    " (tag " + std::to_string(std::get<2>(key_)) + ") has " +
                                    std::to_string(msg.size()) + " bytes, rank " +
                                    std::to_string(std::get<1>(key_)) + " expects " +
                                    std::to_string(bytes_));
    copy_bytes(out_, msg.data(), msg.size());
  }

 private:
  std::shared_ptr<Hub> hub_;
  void* out_;
  int64_t bytes_;
  std::tuple<int, int, int> key_;
  bool waited_ = false;
};

class InProcessPending final : public Pending {
 public:
  InProcessPending(std::shared_ptr<Hub> hub, int rank, int64_t seq, void* out, int64_t n,
                   const int64_t* recv_bytes)
      : hub_(std::move(hub)), rank_(rank), seq_(seq), out_(out), n_(n) {
    if (recv_bytes) recv_bytes_.assign(recv_bytes, recv_bytes + hub_->n);
  }
  ~InProcessPending() override {
    // An abandoned handle must not leave its peers' collective unfinished.
    try {
      wait();
    } catch (const Error&) {
    }
  }

  void wait() override {
    if (waited_) return;
    waited_ = true;
    Op* op;
    {
      std::unique_lock lock(hub_->mu);
      op = &hub_->ops.at(seq_);
      hub_->cv.wait(lock, [&] { return op->issued == hub_->n; });
    }
    // Every post is in and none is erased before this rank finishes: read without the lock.
    check_match(*op);
    compute(*op);
    std::lock_guard lock(hub_->mu);
    if (++op->finished == hub_->n) hub_->ops.erase(seq_);
  }

 private:
  void check_match(const Op& op) const {
    const Post& me = op.posts[size_t(rank_)];
    for (int r = 0; r < hub_->n; ++r) {
      const Post& p = op.posts[size_t(r)];
      std::string why;
      if (p.kind != me.kind)
        why = std::string("rank ") + std::to_string(r) + " issued " + kind_name(p.kind);
      else if (me.kind == Kind::all_to_allv && p.counts[size_t(rank_)] != recv_bytes_[size_t(r)])
        why = "rank " + std::to_string(r) + " sends " + std::to_string(p.counts[size_t(rank_)]) +
              " bytes, this rank expects " + std::to_string(recv_bytes_[size_t(r)]);
      else if ((me.kind == Kind::reduce_scatterv || me.kind == Kind::all_gatherv) &&
               p.counts != me.counts)
        why = "rank " + std::to_string(r) + " has other per-rank counts";
      else if (me.kind != Kind::all_to_allv && (p.size != me.size || p.root != me.root))
        why = "rank " + std::to_string(r) + " has size " + std::to_string(p.size) + ", root " +
              std::to_string(p.root);
      if (!why.empty())
        fail(ErrorKind::internal, std::string("collective #") + std::to_string(seq_) + " (" +
                                      kind_name(me.kind) + " on rank " + std::to_string(rank_) +
                                      ", size " + std::to_string(me.size) + ") mismatched: " + why);
    }
  }

  // out_[0, count) = Σ over ranks of their input floats [first, first + count), in rank order,
  // one rank at a time: the same bits on every run and every rank.
  void sum_in_rank_order(const Op& op, int64_t first, int64_t count) {
    float* out = static_cast<float*>(out_);
    for (int r = 0; r < hub_->n; ++r) {
      const float* in = reinterpret_cast<const float*>(op.posts[size_t(r)].input.data()) + first;
      if (r == 0)
        copy_bytes(out, in, size_t(count) * sizeof(float));
      else
        for (int64_t i = 0; i < count; ++i) out[i] += in[i];
    }
  }

  void compute(const Op& op) {
    const Post& me = op.posts[size_t(rank_)];
    const int n = hub_->n;
    switch (me.kind) {
      case Kind::all_reduce:
      case Kind::reduce_scatter:
        sum_in_rank_order(op, me.kind == Kind::all_reduce ? 0 : rank_ * n_, n_);
        break;
      case Kind::reduce_scatterv: {
        int64_t first = 0;
        for (int r = 0; r < rank_; ++r) first += me.counts[size_t(r)];
        sum_in_rank_order(op, first, me.counts[size_t(rank_)]);
        break;
      }
      case Kind::all_gatherv: {
        float* out = static_cast<float*>(out_);
        for (int r = 0; r < n; ++r) {
          copy_bytes(out, op.posts[size_t(r)].input.data(), op.posts[size_t(r)].input.size());
          out += me.counts[size_t(r)];
        }
        break;
      }
      case Kind::all_gather:
        for (int r = 0; r < n; ++r)
          copy_bytes(static_cast<uint8_t*>(out_) + r * me.size, op.posts[size_t(r)].input.data(),
                     size_t(me.size));
        break;
      case Kind::all_to_allv: {
        uint8_t* out = static_cast<uint8_t*>(out_);
        for (int r = 0; r < n; ++r) {
          const Post& p = op.posts[size_t(r)];
          copy_bytes(out, p.input.data() + p.offsets[size_t(rank_)],
                     size_t(recv_bytes_[size_t(r)]));
          out += recv_bytes_[size_t(r)];
        }
        break;
      }
      case Kind::broadcast:
        if (rank_ != me.root)
          copy_bytes(out_, op.posts[size_t(me.root)].input.data(), size_t(me.size));
        break;
      case Kind::barrier:
        break;
    }
  }

  std::shared_ptr<Hub> hub_;
  int rank_;
  int64_t seq_;
  void* out_;
  int64_t n_;
  std::vector<int64_t> recv_bytes_;
  bool waited_ = false;
};

class InProcess final : public Communicator {
 public:
  InProcess(std::shared_ptr<Hub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return hub_->n; }
  const char* backend() const override { return "in-process"; }

  Handle all_reduce_sum(float* data, int64_t n) override {
    Post p{Kind::all_reduce, n, 0, bytes_of(data, n * 4), {}, {}};
    return issue(std::move(p), data, n, nullptr, (hub_->n - 1) * n * 4);
  }
  Handle reduce_scatter_sum(const float* in, float* out, int64_t n) override {
    Post p{Kind::reduce_scatter, n, 0, bytes_of(in, hub_->n * n * 4), {}, {}};
    return issue(std::move(p), out, n, nullptr, (hub_->n - 1) * n * 4);
  }
  Handle reduce_scatterv_sum(const float* in, float* out, const int64_t* counts) override {
    Post p{Kind::reduce_scatterv, 0, 0, {}, {}, {counts, counts + hub_->n}};
    for (int64_t k : p.counts) {
      TERN_CHECK(k >= 0);
      p.size += k;
    }
    p.input = bytes_of(in, p.size * 4);
    const int64_t to_peers = (p.size - counts[rank_]) * 4;
    return issue(std::move(p), out, 0, nullptr, to_peers);
  }
  Handle all_gatherv(const float* in, float* out, const int64_t* counts) override {
    Post p{Kind::all_gatherv,         0, 0, bytes_of(in, counts[rank_] * 4), {},
           {counts, counts + hub_->n}};
    for (int64_t k : p.counts) {
      TERN_CHECK(k >= 0);
      p.size += k;
    }
    return issue(std::move(p), out, 0, nullptr, (hub_->n - 1) * counts[rank_] * 4);
  }
  Handle all_gather(const void* in, void* out, int64_t bytes) override {
    Post p{Kind::all_gather, bytes, 0, bytes_of(in, bytes), {}, {}};
    return issue(std::move(p), out, 0, nullptr, (hub_->n - 1) * bytes);
  }
  Handle all_to_allv(const void* send, const int64_t* send_bytes, void* recv,
                     const int64_t* recv_bytes) override {
    Post p{Kind::all_to_allv, 0, 0, {}, {}, {send_bytes, send_bytes + hub_->n}};
    int64_t total = 0, to_peers = 0;
    for (int r = 0; r < hub_->n; ++r) {
      TERN_CHECK(send_bytes[r] >= 0 && recv_bytes[r] >= 0);
      p.offsets.push_back(total);
      total += send_bytes[r];
      if (r != rank_) to_peers += send_bytes[r];
    }
    p.input = bytes_of(send, total);
    p.size = total;
    return issue(std::move(p), recv, 0, recv_bytes, to_peers);
  }
  Handle broadcast(void* data, int64_t bytes, int root) override {
    TERN_CHECK(root >= 0 && root < hub_->n);
    Post p{Kind::broadcast,
           bytes,
           root,
           rank_ == root ? bytes_of(data, bytes) : std::vector<uint8_t>{},
           {},
           {}};
    return issue(std::move(p), data, 0, nullptr, rank_ == root ? (hub_->n - 1) * bytes : 0);
  }
  Handle barrier() override { return issue(Post{}, nullptr, 0, nullptr, 0); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    const int n = hub_->n;
    const int32_t mine[2] = {color, key};
    std::vector<int32_t> all(size_t(2 * n));
    all_gather(mine, all.data(), sizeof mine)->wait();
    std::vector<std::pair<int, int>> members;  // (key, rank), in the new rank order
    for (int r = 0; r < n; ++r)
      if (all[size_t(2 * r)] == color) members.push_back({all[size_t(2 * r + 1)], r});
    std::sort(members.begin(), members.end());
    int new_rank = 0;
    while (members[size_t(new_rank)].second != rank_) ++new_rank;
    const std::pair<int64_t, int> id{splits_++, color};
    std::shared_ptr<Hub> group;
    {
      std::lock_guard lock(hub_->mu);
      std::shared_ptr<Hub>& slot = hub_->groups[id];
      if (!slot) slot = std::make_shared<Hub>(int(members.size()));
      group = slot;
    }
    // Once every member holds the group's hub its entry can go: a barrier over the parent.
    barrier()->wait();
    if (new_rank == 0) {
      std::lock_guard lock(hub_->mu);
      hub_->groups.erase(id);
    }
    ++stats_.calls;
    return std::make_unique<InProcess>(group, new_rank);
  }
  Handle send(const void* data, int64_t bytes, int dest, int tag) override {
    TERN_CHECK(dest >= 0 && dest < hub_->n && dest != rank_ && bytes >= 0);
    {
      std::lock_guard lock(hub_->mu);
      hub_->mail[{rank_, dest, tag}].push_back(bytes_of(data, bytes));
    }
    hub_->cv.notify_all();
    ++stats_.calls;
    stats_.bytes_sent += bytes;
    return std::make_unique<Sent>();
  }
  Handle recv(void* data, int64_t bytes, int source, int tag) override {
    TERN_CHECK(source >= 0 && source < hub_->n && source != rank_ && bytes >= 0);
    ++stats_.calls;
    return std::make_unique<Received>(hub_, data, bytes, std::make_tuple(source, rank_, tag));
  }

 private:
  static std::vector<uint8_t> bytes_of(const void* p, int64_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    return n > 0 ? std::vector<uint8_t>(b, b + n) : std::vector<uint8_t>{};
  }

  Handle issue(Post p, void* out, int64_t n, const int64_t* recv_bytes, int64_t sent) {
    const int64_t seq = next_seq_++;
    {
      std::lock_guard lock(hub_->mu);
      Op& op = hub_->ops[seq];
      if (op.posts.empty()) op.posts.resize(size_t(hub_->n));
      op.posts[size_t(rank_)] = std::move(p);
      ++op.issued;
    }
    hub_->cv.notify_all();
    ++stats_.calls;
    stats_.bytes_sent += sent;
    return std::make_unique<InProcessPending>(hub_, rank_, seq, out, n, recv_bytes);
  }

  std::shared_ptr<Hub> hub_;
  int rank_;
  int64_t next_seq_ = 0;
  int64_t splits_ = 0;  // split() calls so far: the same count on every rank
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_in_process_group(int n) {
  TERN_CHECK(n >= 1);
  auto hub = std::make_shared<Hub>(n);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_unique<InProcess>(hub, r));
  return out;
}

}  // namespace tern::dist
