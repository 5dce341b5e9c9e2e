// Candidates: the working set of tokens a sampler narrows down (id, logit, softmax weight).
// Owns the canonical order (logit descending, lower id first on ties) and a lazily sorted
// prefix, so cuts sort only as much of a 129k vocabulary as they need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace tern::infer {

struct Candidate {
  int32_t id;
  float logit;
  float weight;  // exp(logit - max logit) once softmax() ran; p = weight / total
};

struct Candidates {
  std::vector<Candidate> items;  // capacity is reused between tokens
  // items[0, sorted) are in canonical order and rank before every item after them.
  size_t sorted = 0;
  bool weighted = false;           // softmax() has filled weight and total
  double total = 0.0;              // sum of weights of items, in item order
  std::vector<Candidate> scratch;  // for transforms that select into a side buffer
};

// The order every cut uses: larger logit first, lower id on ties. A total order, so results
// do not depend on how the standard library implements nth_element or sort.
inline bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// out := every token of row whose logit is not -inf, in id order (the row index is the id).
// Throws Error(internal) naming the position of a NaN or +inf logit, and Error(request) when
// every logit is -inf (nothing can be sampled).
void build_candidates(std::span<const float> row, Candidates& out);

// Makes items[0, min(n, size)) canonical, touching only the unsorted tail.
void sort_prefix(Candidates& c, size_t n);

// The largest logit among the candidates (items must be non-empty).
float max_logit(const Candidates& c);

// Recomputes total from the weights in item order, after a cut.
void renormalise(Candidates& c);

}  // namespace tern::infer
