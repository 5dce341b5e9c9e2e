// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11) keyed by a 64-bit seed.
// Owns: the bit generator, the mapping of (seed, stream, index) to values, uniform and standard
// normal draws whose bits are the same on every compiler and libm (IEEE +,-,*,/,sqrt only).
// Counter-based so any value is computed directly from its address: results never depend on
// thread count, chunking, or the order in which callers (tensors, ranks) are visited.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tern::rng {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The raw block function, exposed for known-answer tests.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// A stream is an unbounded sequence of 32-bit words: word w of (seed, stream) is lane w % 4 of
// philox4x32_10({w / 4 (64 bits), stream (64 bits)}, seed). Value kinds index that sequence in
// their own units: a float uses one word (index i = word i), a double or a normal two (index
// i = words 2i, 2i+1). Give each purpose its own stream id; one kind per stream keeps indices
// from sharing words.
uint32_t word(uint64_t seed, uint64_t stream, uint64_t index);

float uniform_float(uint64_t seed, uint64_t stream, uint64_t index);    // [0, 1), 24 bits
double uniform_double(uint64_t seed, uint64_t stream, uint64_t index);  // [0, 1), 53 bits
double uniform_open(uint64_t seed, uint64_t stream, uint64_t index);    // (0, 1), for logs
// Standard normal by inverse CDF of uniform_open; same bits everywhere (see docs/architecture.md).
double normal(uint64_t seed, uint64_t stream, uint64_t index);

// out[k] = float(mean + std * normal(seed, stream, first + k)) for k < n, one Philox block per
// two values. Any split of [first, first + n) into calls gives the same floats.
void fill_normal(uint64_t seed, uint64_t stream, uint64_t first, float* out, size_t n, double mean,
                 double std);

// The inverse standard normal CDF used by normal(); p must lie in (0, 1). Exposed for tests.
double normal_quantile(double p);

// Natural log from IEEE basic operations only (no libm), for x > 0 finite and normal.
double portable_log(double x);

// FNV-1a 64 of a name: a stream id that does not change between builds (unlike std::hash).
uint64_t stream_id(std::string_view name);

// Sequential reads of one stream for callers that do not need random access. Positions count
// words, and a two-word draw first rounds up to an even word, so mixing kinds never reuses bits.
class Stream {
 public:
  Stream(uint64_t seed, uint64_t stream, uint64_t first_word = 0)
      : seed_(seed), stream_(stream), word_(first_word) {}
  uint32_t next_word() { return word(seed_, stream_, word_++); }
  float next_float() { return uniform_float(seed_, stream_, word_++); }
  double next_double();
  double next_normal();
  uint64_t position() const { return word_; }

 private:
  uint64_t take_pair();  // the double-index of the next two-word draw
  uint64_t seed_, stream_, word_;
};

}  // namespace tern::rng
