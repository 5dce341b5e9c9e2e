#include "infer/saved_logprobs.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/random.h"
#include "formats/mapped_file.h"

namespace tern::infer {
namespace {

constexpr char kMagic[8] = {'T', 'E', 'R', 'N', 'L', 'G', 'T', '1'};

uint64_t ids_hash(std::span<const int32_t> ids) {
  return rng::stream_id(
      std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int32_t)));
}

nlohmann::json header_for(const model::Model& m, std::span<const int32_t> ids,
                          const PerplexityOptions& o) {
  return {{"vocab", m.config().vocab_size},
          {"ctx", o.ctx},
          {"stride", o.stride},
          {"tokens", int64_t(ids.size())},
          {"ids_fnv1a64", std::to_string(ids_hash(ids))},
          {"scored", scored_targets(int64_t(ids.size()), o)}};
}

}  // namespace

PerplexityResult save_logprobs(const model::Model& m, std::span<const int32_t> ids,
                               const PerplexityOptions& o, const std::string& path,
                               const std::function<void(int64_t, int64_t)>& on_window) {
  const int64_t V = m.config().vocab_size;
  std::string header = header_for(m, ids, o).dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // rows start 8-byte aligned
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(ErrorKind::io, "--save-logits " + path + ": cannot create " + tmp);
  PerplexityResult r;
  try {
    const uint64_t len = header.size();
    bool ok = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(&len, 8, 1, f) == 1 &&
              std::fwrite(header.data(), 1, header.size(), f) == header.size();
    std::vector<double> lp;
    std::vector<uint16_t> row(static_cast<size_t>(V));
    walk_scored_rows(
        m, ids, o, on_window,
        [&](int32_t target, const float* logits) {
          log_softmax_row(logits, V, lp);
          r.nll_sum -= lp[size_t(target)];
          ++r.scored;
          // f16 ends at -65504: anything rarer is stored there, not as -inf.
          for (int64_t v = 0; v < V; ++v)
            row[size_t(v)] = f32_to_f16(float(std::max(lp[size_t(v)], -65504.0)));
          ok = ok && std::fwrite(row.data(), 2, row.size(), f) == row.size();
        },
        &r.windows);
    TERN_CHECK(r.scored == scored_targets(int64_t(ids.size()), o));  // the header's row count
    ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    if (std::fclose(f) != 0 || !ok) {
      f = nullptr;
      fail(ErrorKind::io, "--save-logits " + path + ": write failed (disk full?)");
    }
    f = nullptr;
    std::filesystem::rename(tmp, path);
  } catch (...) {
    if (f) std::fclose(f);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  return r;
}

Comparison compare_with_saved(const model::Model& m, std::span<const int32_t> ids,
                              const PerplexityOptions& o, const std::string& path,
                              const std::function<void(int64_t, int64_t)>& on_window) {
  const auto file = formats::MappedFile::open(path);
  auto bad = [&](const std::string& why) {
    fail(ErrorKind::format, "--ref-logits " + path + ": " + why);
  };
  if (file->size() < 16 || std::memcmp(file->data(), kMagic, 8) != 0)
    bad("not a file of saved log-probabilities (`tern eval --save-logits`)");
  uint64_t len = 0;
  std::memcpy(&len, file->data() + 8, 8);
  if (len > file->size() - 16) bad("truncated header");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(file->data()) + 16, len));
  } catch (const nlohmann::json::exception&) {
    bad("unreadable header");
  }
  const nlohmann::json want = header_for(m, ids, o);
  for (const char* k : {"vocab", "ctx", "stride", "tokens", "ids_fnv1a64"})
    if (!h.contains(k) || h[k] != want[k])
      fail(ErrorKind::request, "--ref-logits " + path + " was saved for another " +
                                   (std::string(k) == "vocab"         ? "vocabulary"
                                    : std::string(k) == "ids_fnv1a64" ? "text"
                                                                      : std::string("--") + k) +
                                   " (" + (h.contains(k) ? h[k].dump() : "none") + ", here " +
                                   want[k].dump() + ")");
  const int64_t V = m.config().vocab_size, scored = want["scored"].get<int64_t>();
  if (file->size() != 16 + len + uint64_t(scored) * uint64_t(V) * 2)
    bad("its size does not hold " + std::to_string(scored) + " rows of " + std::to_string(V) +
        " (truncated?)");
  const uint8_t* rows = file->data() + 16 + len;  // copied out: a foreign file may misalign
  std::vector<uint16_t> q(static_cast<size_t>(V));
  Comparison c;
  std::vector<double> lp, lq(static_cast<size_t>(V));
  int64_t i = 0;
  walk_scored_rows(
      m, ids, o, on_window,
      [&](int32_t target, const float* logits) {
        const int64_t am = log_softmax_row(logits, V, lp);
        std::memcpy(q.data(), rows + i * V * 2, size_t(V) * 2);
        int64_t ar = 0;
        for (int64_t v = 0; v < V; ++v) {
          lq[size_t(v)] = f16_to_f32(q[size_t(v)]);
          if (lq[size_t(v)] > lq[size_t(ar)]) ar = v;
        }
        c.kl.push_back(kl_of_rows(lp, lq));
        c.top1_agree += am == ar;
        c.model.nll_sum -= lp[size_t(target)];
        c.ref.nll_sum -= lq[size_t(target)];
        ++c.model.scored, ++c.ref.scored;
        ++i;
      },
      &c.model.windows);
  c.ref.windows = c.model.windows;
  return c;
}

}  // namespace tern::infer
