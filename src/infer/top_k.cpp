// Top-k without sorting the vocabulary. Small k (the usual 20-100 over a 129k row) keeps a
// bounded heap of the best so far: most tokens cost one comparison with the heap's worst.
// Large k selects in linear time (nth_element). Either way only the k survivors are sorted.
// Runs before temperature: dividing by t > 0 keeps the order, so the set is the same.
#include <algorithm>

#include "infer/transforms.h"

namespace tern::infer {
namespace {

// k best of c.items by ranks_before, left in c.items in canonical order.
void heap_select(Candidates& c, size_t k) {
  auto& heap = c.scratch;  // ranks_before as "less": front() is the worst of the best k
  heap.assign(c.items.begin(), c.items.begin() + static_cast<std::ptrdiff_t>(k));
  std::make_heap(heap.begin(), heap.end(), ranks_before);
  for (size_t i = k; i < c.items.size(); ++i) {
    if (!ranks_before(c.items[i], heap.front())) continue;
    std::pop_heap(heap.begin(), heap.end(), ranks_before);
    heap.back() = c.items[i];
    std::push_heap(heap.begin(), heap.end(), ranks_before);
  }
  std::sort(heap.begin(), heap.end(), ranks_before);
  std::copy(heap.begin(), heap.end(), c.items.begin());
  c.sorted = k;
}

}  // namespace

void top_k(Candidates& c, int32_t k) {
  if (k <= 0 || static_cast<size_t>(k) >= c.items.size()) return;
  const size_t n = static_cast<size_t>(k);
  // Past about n/16 the heap's log k replacements cost more than a linear selection.
  if (c.sorted < n && n <= c.items.size() / 16)
    heap_select(c, n);
  else
    sort_prefix(c, n);
  c.items.resize(n);
  if (c.weighted) renormalise(c);
}

}  // namespace tern::infer
