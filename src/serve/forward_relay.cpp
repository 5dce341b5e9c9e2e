#include "serve/forward_relay.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace tern::serve {
namespace {

// The message: a header of int64 counts (kind, rows, sequences, logit rows, hidden floats),
// then the arrays back to back.
using Header = std::array<int64_t, 5>;

template <class T>
void put(std::vector<uint8_t>& out, std::span<const T> v) {
  const size_t at = out.size();
  out.resize(at + v.size_bytes());
  if (!v.empty()) std::memcpy(out.data() + at, v.data(), v.size_bytes());
}

template <class T>
std::span<const T> take(const std::vector<uint8_t>& in, size_t& at, int64_t n) {
  const size_t bytes = size_t(n) * sizeof(T);
  TERN_CHECK(at + bytes <= in.size());
  const T* p = reinterpret_cast<const T*>(in.data() + at);
  at += bytes;
  return {p, size_t(n)};
}

}  // namespace

void ForwardRelay::announce(Kind kind, const model::Batch& b, std::span<const float> mtp_hidden) {
  const Header h = {int64_t(kind), int64_t(b.tokens.size()), int64_t(b.seqs.size()),
                    int64_t(b.logit_rows.size()), int64_t(mtp_hidden.size())};
  std::vector<int64_t> per_seq;
  for (const model::SeqBlocks& s : b.seqs) per_seq.push_back(int64_t(s.blocks.size()));
  message_.clear();
  // 8-byte values first, then 4-byte ones, so every array is aligned for its type.
  put(message_, std::span<const int64_t>(h));
  put(message_, b.positions);
  put(message_, std::span<const int64_t>(per_seq));
  put(message_, b.tokens);
  put(message_, b.seq_ids);
  put(message_, b.logit_rows);
  for (const model::SeqBlocks& s : b.seqs) put(message_, s.blocks);
  put(message_, mtp_hidden);
  // Every message is one collective pair: its size, then its bytes.
  int64_t n = int64_t(message_.size());
  comm_.broadcast(&n, sizeof n, 0)->wait();
  comm_.broadcast(message_.data(), n, 0)->wait();
}

void ForwardRelay::stop() {
  model::Batch none{};
  announce(Kind::stop, none);
}

void ForwardRelay::follow(const model::Model& m, infer::KvPool& pool, infer::KvPool* mtp_pool,
                          model::ForwardState& st) {
  const int64_t V = m.config().vocab_size;
  std::vector<float> logits;
  std::vector<model::SeqBlocks> seqs;
  for (;;) {
    int64_t n = 0;
    comm_.broadcast(&n, sizeof n, 0)->wait();
    message_.resize(size_t(n));
    comm_.broadcast(message_.data(), n, 0)->wait();
    size_t at = 0;
    const auto h = take<int64_t>(message_, at, int64_t(Header().size()));
    const int64_t kind = h[0], rows = h[1], n_seqs = h[2], logit_rows = h[3], n_hidden = h[4];
    if (kind == int64_t(Kind::stop)) return;
    model::Batch b;
    b.positions = take<int64_t>(message_, at, rows);
    const auto per_seq = take<int64_t>(message_, at, n_seqs);
    b.tokens = take<int32_t>(message_, at, rows);
    b.seq_ids = take<int32_t>(message_, at, rows);
    b.logit_rows = take<int32_t>(message_, at, logit_rows);
    seqs.clear();
    for (int64_t k : per_seq) seqs.push_back({take<int32_t>(message_, at, k)});
    b.seqs = seqs;
    const auto hidden = take<float>(message_, at, n_hidden);
    logits.resize(size_t(std::max<int64_t>(1, logit_rows) * V));
    try {
      if (kind == int64_t(Kind::mtp)) {
        TERN_CHECK(mtp_pool != nullptr);
        m.forward_mtp(b, hidden, mtp_pool->store(), st, logits);
      } else {
        m.forward(b, pool.store(), st, logits);
      }
    } catch (const Error& e) {
      // The lead's forward failed the same way (its request ends with this error).
      log_debug(std::string("--ep follower: a forward was refused: ") + e.what());
    }
  }
}

}  // namespace tern::serve
