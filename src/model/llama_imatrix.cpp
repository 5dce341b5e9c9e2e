#include "model/llama_imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/mapped_file.h"
#include "model/gguf_names.h"

namespace tern::model {
namespace {

// GGUF tensor name ("blk.1.ffn_up_exps.weight") -> the modules it holds, by expert (one entry,
// index 0, for a plain matrix).
using ModuleIndex = std::map<std::string, std::vector<std::string>>;

ModuleIndex index_modules(const std::vector<std::string>& modules) {
  ModuleIndex idx;
  for (const std::string& m : modules) {
    std::string g;
    int64_t expert = -1;
    if (!hf_to_gguf_name(m + ".weight", &g, &expert)) continue;
    std::vector<std::string>& slot = idx[g];
    const size_t at = expert < 0 ? 0 : size_t(expert);
    if (slot.size() <= at) slot.resize(at + 1);
    slot[at] = m;
  }
  return idx;
}

struct Reader {
  const std::string& path;
  [[noreturn]] void bad(const std::string& why) const {
    fail(ErrorKind::format, path + ": " + why + " (a llama.cpp imatrix)");
  }
};

// One llama.cpp entry: `n_mat` rows of `cols` means (row e: expert e), `live[e]` false where the
// calibration never reached it.
void add_entry(const Reader& rd, const ModuleIndex& idx, const std::string& name, int64_t cols,
               int64_t n_mat, const std::vector<float>& means, const std::vector<bool>& live,
               Imatrix* out, int64_t* unmatched) {
  const auto it = idx.find(name);
  if (it == idx.end()) {
    ++*unmatched;
    return;
  }
  if (n_mat != int64_t(it->second.size()))
    rd.bad("'" + name + "' holds " + std::to_string(n_mat) + " matrices, the model " +
           std::to_string(it->second.size()) + " (an imatrix of another model?)");
  for (int64_t e = 0; e < n_mat; ++e) {
    if (!live[size_t(e)] || it->second[size_t(e)].empty()) continue;
    std::vector<float> v(means.begin() + e * cols, means.begin() + (e + 1) * cols);
    for (float x : v)
      if (!(x >= 0) || !std::isfinite(x))
        rd.bad("'" + name + "' holds a negative or non-finite value");
    out->columns.emplace_back(it->second[size_t(e)], std::move(v));
  }
}

Imatrix read_gguf(const Reader& rd, const ModuleIndex& idx, int64_t* unmatched) {
  const formats::GgufFile f = formats::GgufFile::open(rd.path);
  if (f.metadata().get_string_or("general.type", "") != "imatrix")
    rd.bad("a GGUF file whose general.type is not \"imatrix\"");
  Imatrix m;
  m.tokens = int64_t(f.metadata().get_u32_or("imatrix.chunk_count", 0)) *
             f.metadata().get_u32_or("imatrix.chunk_size", 0);
  const std::string kSum = ".in_sum2";
  for (const formats::GgufTensorInfo& info : f.tensors()) {
    if (!info.name.ends_with(kSum)) continue;
    const std::string name = info.name.substr(0, info.name.size() - kSum.size());
    const Tensor sums = f.tensor(info);
    const formats::GgufTensorInfo* ci = f.find(name + ".counts");
    if (!ci) rd.bad("'" + info.name + "' has no '" + name + ".counts'");
    const Tensor counts = f.tensor(*ci);
    if (sums.dtype() != DType::f32 || counts.dtype() != DType::f32 || info.ne.size() > 2)
      rd.bad("'" + name + "': in_sum2 and counts must be f32 matrices");
    const int64_t cols = int64_t(info.ne[0]), n_mat = info.ne.size() > 1 ? int64_t(info.ne[1]) : 1;
    if (counts.numel() != n_mat)
      rd.bad("'" + name + ".counts' has " + std::to_string(counts.numel()) + " values for " +
             std::to_string(n_mat) + " matrices");
    std::vector<float> means(static_cast<size_t>(cols * n_mat));
    std::vector<bool> live(static_cast<size_t>(n_mat));
    for (int64_t e = 0; e < n_mat; ++e) {
      const float n = counts.data_as<const float>()[e];
      live[size_t(e)] = n > 0;
      for (int64_t c = 0; c < cols; ++c)
        means[size_t(e * cols + c)] = n > 0 ? sums.data_as<const float>()[e * cols + c] / n : 0;
    }
    add_entry(rd, idx, name, cols, n_mat, means, live, &m, unmatched);
  }
  return m;
}

Imatrix read_dat(const Reader& rd, const ModuleIndex& idx, int64_t* unmatched) {
  const auto file = formats::MappedFile::open(rd.path);
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  uint64_t at = 0;
  auto i32 = [&](const char* what) {
    if (size - at < 4) rd.bad(std::string("truncated reading ") + what);
    int32_t v;
    std::memcpy(&v, p + at, 4);
    at += 4;
    return v;
  };
  const int32_t entries = i32("the entry count");
  if (entries <= 0 || entries > 1'000'000) rd.bad("entry count " + std::to_string(entries));
  Imatrix m;
  for (int32_t k = 0; k < entries; ++k) {
    const int32_t len = i32("a name length");
    if (len <= 0 || len > 4096 || size - at < uint64_t(len)) rd.bad("a bad or truncated name");
    const std::string name(reinterpret_cast<const char*>(p + at), size_t(len));
    at += uint64_t(len);
    const int32_t ncall = i32("ncall"), nval = i32("nval");
    if (ncall <= 0 || nval <= 0 || size - at < uint64_t(nval) * 4)
      rd.bad("'" + name + "': bad ncall / nval or truncated values");
    std::vector<float> means(static_cast<size_t>(nval));
    std::memcpy(means.data(), p + at, size_t(nval) * 4);
    at += uint64_t(nval) * 4;
    for (float& v : means) v /= float(ncall);
    // The file does not say how many experts share the values: the model does.
    const auto it = idx.find(name);
    const int64_t n_mat = it == idx.end() ? 1 : int64_t(it->second.size());
    if (nval % n_mat)
      rd.bad("'" + name + "' has " + std::to_string(nval) + " values, not a multiple of the " +
             std::to_string(n_mat) + " matrices the model stacks there");
    add_entry(rd, idx, name, nval / n_mat, n_mat, means, std::vector<bool>(size_t(n_mat), true), &m,
              unmatched);
  }
  if (size - at >= 4) {
    int32_t chunks;
    std::memcpy(&chunks, p + at, 4);
    m.tokens = chunks > 0 ? chunks : 0;  // chunks, not tokens: the legacy file has no size
  }
  return m;
}

}  // namespace

Imatrix read_llama_imatrix(const std::string& path, const std::vector<std::string>& modules,
                           int64_t* unmatched) {
  const Reader rd{path};
  const ModuleIndex idx = index_modules(modules);
  *unmatched = 0;
  const auto file = formats::MappedFile::open(path);
  const bool gguf = file->size() >= 4 && std::memcmp(file->data(), "GGUF", 4) == 0;
  Imatrix m = gguf ? read_gguf(rd, idx, unmatched) : read_dat(rd, idx, unmatched);
  if (m.columns.empty())
    rd.bad("no entry names a matrix of this model (" + std::to_string(*unmatched) +
           " unmatched; an imatrix of another model?)");
  std::sort(m.columns.begin(), m.columns.end());
  return m;
}

Imatrix read_any_imatrix(const std::string& path, const std::vector<std::string>& modules,
                         int64_t* unmatched) {
  *unmatched = 0;
  const auto file = formats::MappedFile::open(path);
  // safetensors: an 8-byte header length, then the JSON header's '{'
  const bool safetensors = file->size() > 8 && file->data()[8] == '{';
  return safetensors ? read_imatrix(path) : read_llama_imatrix(path, modules, unmatched);
}

}  // namespace tern::model
