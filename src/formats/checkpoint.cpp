#include "formats/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "formats/safetensors_writer.h"
#include "formats/strict_json.h"

namespace tern::formats {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail_ckpt(const std::string& path, const std::string& msg) {
  fail(ErrorKind::format, "checkpoint '" + path + "': " + msg);
}

// A shard name from the index must stay inside the checkpoint directory.
void check_shard_name(const std::string& index_path, const std::string& tensor,
                      const std::string& file) {
  const fs::path p(file);
  bool escapes = file.empty() || p.is_absolute();
  for (const auto& part : p)
    if (part == "..") escapes = true;
  if (escapes)
    fail(ErrorKind::format, "index '" + index_path + "': tensor '" + tensor + "' maps to shard '" +
                                file + "' outside the checkpoint directory");
}

// name -> shard file (relative to the directory), validated for shape.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  const nlohmann::json index = read_json_file_strict(index_path);
  if (!index.is_object())
    fail(ErrorKind::format, "index '" + index_path + "' is not a JSON object");
  auto it = index.find("weight_map");
  if (it == index.end() || !it->is_object())
    fail(ErrorKind::format, "index '" + index_path + "' has no 'weight_map' object");
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : it->items()) {
    if (!file.is_string())
      fail(ErrorKind::format, "index '" + index_path + "': weight_map entry for '" + name +
                                  "' is not a string: " + file.dump());
    check_shard_name(index_path, name, file.get<std::string>());
    // Normalised so "./a.safetensors" and "a.safetensors" name one shard, opened once.
    map[name] = fs::path(file.get<std::string>()).lexically_normal().string();
  }
  return map;
}

std::vector<std::string> list_safetensors(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".safetensors" && it->is_regular_file())
      files.push_back(it->path().filename().string());
  }
  if (ec) fail(ErrorKind::io, "cannot list directory '" + dir + "': " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir_or_file) {
  Checkpoint ck;
  ck.path_ = dir_or_file;
  std::error_code ec;
  const fs::file_status st = fs::status(dir_or_file, ec);
  if (ec || !fs::exists(st)) fail(ErrorKind::io, "checkpoint '" + dir_or_file + "' does not exist");

  std::map<std::string, std::string> weight_map;
  bool indexed = false;
  std::vector<std::string> shard_paths;
  if (!fs::is_directory(st)) {
    shard_paths.push_back(dir_or_file);
  } else {
    const std::string index_path = dir_or_file + "/" + kSafetensorsIndexName;
    if (fs::exists(index_path)) {
      indexed = true;
      weight_map = read_weight_map(index_path);
      std::set<std::string> unique;
      for (const auto& [name, file] : weight_map) unique.insert(file);
      for (const auto& f : unique) shard_paths.push_back(dir_or_file + "/" + f);
    } else {
      for (const auto& f : list_safetensors(dir_or_file))
        shard_paths.push_back(dir_or_file + "/" + f);
    }
    if (shard_paths.empty() && !indexed)
      fail(ErrorKind::io, "checkpoint directory '" + dir_or_file + "' has no *.safetensors files");
  }

  ck.shards_.reserve(shard_paths.size());
  for (const auto& p : shard_paths) ck.shards_.push_back(SafetensorsFile::open(p));

  for (size_t s = 0; s < ck.shards_.size(); ++s) {
    const SafetensorsFile& shard = ck.shards_[s];
    for (size_t k = 0; k < shard.tensors().size(); ++k) {
      const TensorInfo& info = shard.tensors()[k];
      if (indexed) {
        auto it = weight_map.find(info.name);
        if (it == weight_map.end())
          fail_ckpt(dir_or_file, "tensor '" + info.name + "' in shard '" + shard.path() +
                                     "' is missing from the index weight_map");
        if (dir_or_file + "/" + it->second != shard.path())
          fail_ckpt(dir_or_file, "tensor '" + info.name + "' is in shard '" + shard.path() +
                                     "' but the index maps it to '" + it->second + "'");
      }
      auto [pos, inserted] = ck.entries_.emplace(info.name, Entry{s, k, shard.tensor(info)});
      if (!inserted)
        fail_ckpt(dir_or_file, "tensor '" + info.name + "' is in two shards: '" +
                                   ck.shards_[pos->second.shard].path() + "' and '" + shard.path() +
                                   "'");
      ck.total_bytes_ += info.nbytes;
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (!ck.entries_.count(name))
      fail_ckpt(dir_or_file, "index maps tensor '" + name + "' to shard '" + file +
                                 "', which does not contain it");
  }
  return ck;
}

const Checkpoint::Entry& Checkpoint::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail_ckpt(path_, "no tensor named '" + name + "'");
  return it->second;
}

const Tensor& Checkpoint::get(const std::string& name) const {
  return entry(name).tensor;
}
const TensorInfo& Checkpoint::info(const std::string& name) const {
  const Entry& e = entry(name);
  return shards_[e.shard].tensors()[e.index];
}
const std::string& Checkpoint::file_of(const std::string& name) const {
  return shards_[entry(name).shard].path();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& s : shards_) out.push_back(s.path());
  return out;
}

const Metadata& Checkpoint::metadata() const {
  static const Metadata kEmpty;
  return shards_.empty() ? kEmpty : shards_.front().metadata();
}

}  // namespace tern::formats
