#include "model/prepack.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "formats/mapped_file.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/packed_k_tiles.h"
#include "kernels/packed_panels.h"
#include "kernels/packed_tiles.h"

namespace tern::model {
namespace {

// MemAvailable from /proc/meminfo in bytes, or 0 when unknown.
double available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return 0;
}

bool excluded(const std::string& name) {
  return name.find("embed_tokens") != std::string::npos ||
         name.find("kv_b_proj") != std::string::npos || name.ends_with(".mlp.gate.weight");
}

// One anonymous mapping for every packed matrix, asking for transparent huge pages: a 2 MB page
// is one fault and one TLB entry where 4 kB pages are 512 of each, which showed as a third of
// the packing time. Freed when the last matrix viewing it goes.
class Arena {
 public:
  explicit Arena(int64_t bytes) : bytes_(size_t(std::max<int64_t>(bytes, 1))) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      fail(ErrorKind::resource, "prepacking for decode: cannot map " + std::to_string(bytes_) +
                                    " bytes for the packed weights");
#ifdef MADV_HUGEPAGE
    madvise(p, bytes_, MADV_HUGEPAGE);
#endif
    base_ = static_cast<uint8_t*>(p);
  }
  ~Arena() {
    munmap(base_, bytes_);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  uint8_t* at(int64_t offset) {
    return base_ + offset;
  }

 private:
  size_t bytes_;
  uint8_t* base_ = nullptr;
};

struct Job {
  const kernels::WeightView* source = nullptr;  // the first linear holding these bytes
  bool panels = false;  // 32-row panels (packed_panels.h) rather than 4-row tiles
  Tensor packed;
  std::vector<Linear*> users;  // every linear viewing the same bytes
};

}  // namespace

PrepackReport prepack_decode_weights(const ModelConfig& c, ModelWeights& w) {
  PrepackReport report;
  if (const char* env = std::getenv("TERN_PREPACK"); env && std::string(env) == "0") {
    report.skipped = "TERN_PREPACK=0";
    return report;
  }
  if (kernels::packed_dot4_kernel() == kernels::packed_dot4_ref) {
    report.skipped = "no packed decode kernel on this CPU (it needs AVX2)";
    return report;
  }
  // Q8_0 / Q4_0 go into the 32-row panels that decode and the batched GEMM both read in place
  // where the CPU has the kernel for them (TERN_PANELS=0 keeps the 4-row tiles, for comparisons).
  const char* panels_env = std::getenv("TERN_PANELS");
  const bool panels_here =
      kernels::panel_dot_kernel() && !(panels_env && std::string(panels_env) == "0");
  const auto t0 = std::chrono::steady_clock::now();
  std::set<const void*> skip;  // bytes row lookups read: the embeddings and a head tied to them
  std::map<const void*, size_t> job_of;
  std::vector<Job> jobs;
  std::vector<std::pair<Linear*, std::string>> linears;
  visit_weights(c, w, !w.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind != SlotKind::linear || !s.linear->present()) return;
    linears.emplace_back(s.linear, s.name);
    if (excluded(s.name)) skip.insert(s.linear->view.data);
  });
  for (auto& [l, name] : linears) {
    const kernels::WeightView& v = l->view;
    if (skip.count(v.data) || v.packed || !kernels::packable_dtype(v.dtype) ||
        v.cols % dtype_block_elems(v.dtype))
      continue;
    if (kernels::is_k_packed(v.dtype) && !kernels::ggml_packed_dot4_kernel()) continue;
    auto [it, fresh] = job_of.emplace(v.data, jobs.size());
    if (fresh)
      jobs.push_back(
          Job{&v, panels_here && kernels::panel_packable(v.dtype, v.rows, v.cols), {}, {}});
    jobs[it->second].users.push_back(l);
  }
  if (jobs.empty()) {
    report.skipped = kernels::ggml_packed_dot4_kernel()
                         ? "no Q8_0 / Q4_0 / Q2_K..Q6_K matrix to pack"
                         : "no Q8_0 / Q4_0 matrix to pack (Q2_K..Q6_K pack only with AVX-512 VNNI)";
    return report;
  }
  int64_t total = 0;
  for (const Job& j : jobs)
    total += kernels::packed_bytes(j.source->dtype, j.source->rows, j.source->cols);
  const double available = available_memory();
  if (available > 0 && double(total) > 0.8 * available) {
    char why[160];
    std::snprintf(why, sizeof why,
                  "the packable matrices (%.2f GB) exceed 80%% of available memory (%.2f GB)",
                  double(total) / 1e9, available / 1e9);
    report.skipped = why;
    report.memory_bound = true;
    return report;
  }
  // Work in pieces of about 4 MB of tiles across all matrices, each piece's source pages handed
  // back as soon as it is packed: the file's pages and the packed copies then overlap by a few
  // pieces, not by whole matrices (a 150k-row head is a quarter of a 1.5B model).
  struct Piece {
    size_t job;
    int64_t r0, rows;
  };
  std::vector<Piece> pieces;
  auto arena = std::make_shared<Arena>(total + 64 * int64_t(jobs.size()));
  int64_t offset = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const kernels::WeightView& v = *jobs[i].source;
    const int64_t bytes = kernels::packed_bytes(v.dtype, v.rows, v.cols);
    jobs[i].packed = Tensor(DType::u8, {bytes}, arena->at(offset), arena);
    offset += (bytes + 63) / 64 * 64;  // the kernels load whole 64-byte groups
    const int64_t unit = jobs[i].panels ? kernels::kPanelPackRows : 4;
    const int64_t step =
        std::max<int64_t>(unit, (int64_t(4) << 20) / (unit * v.row_bytes()) * unit);
    for (int64_t r0 = 0; r0 < v.rows; r0 += step)
      pieces.push_back({i, r0, std::min(step, v.rows - r0)});
  }
  ThreadPool::global().parallel_for(int64_t(pieces.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t k = b; k < e; ++k) {
      const Piece& piece = pieces[size_t(k)];
      Job& j = jobs[piece.job];
      const kernels::WeightView& v = *j.source;
      const uint8_t* src = static_cast<const uint8_t*>(v.data) + piece.r0 * v.row_bytes();
      uint8_t* dst = j.packed.data_as<uint8_t>() + piece.r0 * v.row_bytes();
      if (j.panels)
        kernels::pack_panels(v.dtype, src, piece.rows, v.cols, dst);
      else
        kernels::pack_tiles(v.dtype, src, piece.rows, v.cols, dst);
      formats::MappedFile::release_pages(src, size_t(piece.rows * v.row_bytes()));
    }
  });
  for (Job& j : jobs) {
    for (Linear* l : j.users) {
      l->view.data = j.packed.data();
      l->view.packed = true;
      l->view.panels = j.panels;
      l->data = j.packed;
    }
    report.bytes += j.packed.nbytes();
  }
  report.matrices = int64_t(jobs.size());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

void log_prepack(const PrepackReport& r, const std::string& prefix) {
  const std::string line = prefix + describe(r);
  if (r.memory_bound)
    log_info(line);
  else
    log_debug(line);
}

std::string describe(const PrepackReport& r) {
  char line[200];
  if (!r.skipped.empty())
    std::snprintf(line, sizeof line, "weights not prepacked for decode: %s", r.skipped.c_str());
  else
    std::snprintf(line, sizeof line, "prepacked %lld matrices (%.2f GB) for decode in %.2f s",
                  (long long)r.matrices, double(r.bytes) / 1e9, r.seconds);
  return line;
}

}  // namespace tern::model
