// Opens what a user names as data: one `.npy`/`.safetensors[:tensor]` file, or a sharded set — a
// directory of shards, a glob (`acts/shard-*.npy`) or a manifest (`manifest.json`, or one inside
// the directory). `ArraySet` is the arrays before a slice is chosen (every shard opened and checked
// before any row is read: readable, the same shape past the rows and the same dtype as the first, as
// many rows as the manifest says; each problem names its shard); `open_rows` is its rows, memory-
// mapped, of a 2-D array or one (layer, position) of 4-D ones.
//
// Manifest: {"shards": ["shard-000.npy", {"path": "shard-001.safetensors:acts", "rows": 4096}, ...],
// "metadata": {"model": "gpt2", "layer": 6, ...}} with paths relative to the manifest's folder, in
// reading order; the metadata (data/metadata.hpp) is optional and checked against every shard.
#pragma once

#include <sae/core/error.hpp>
#include <sae/data/metadata.hpp>
#include <sae/data/row_source.hpp>
#include <sae/io/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fnmatch.h>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sae::data {

namespace open_rows_detail {

inline bool is_shard_name(const std::filesystem::path& p) {
  const std::string e = p.extension().string();
  return e == ".npy" || e == ".safetensors";
}

// "shard-2" before "shard-10": digit runs compare as numbers.
inline bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      x.erase(0, std::min(x.find_first_not_of('0'), x.size()));
      y.erase(0, std::min(y.find_first_not_of('0'), y.size()));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i2, j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

struct ShardEntry {
  std::string path;
  std::optional<index_t> rows;  // from a manifest: checked against the file
};

struct ShardList {
  std::vector<ShardEntry> shards;
  DataMetadata metadata;  // a manifest's
};

inline ShardList sorted_entries(std::vector<std::string> paths) {
  std::sort(paths.begin(), paths.end(), natural_less);
  ShardList out;
  for (auto& p : paths) out.shards.push_back({std::move(p), std::nullopt});
  return out;
}

inline ShardList read_manifest(const std::filesystem::path& manifest) {
  const io::Json j = io::read_json_file(manifest.string());
  const auto fail = [&](const std::string& what) { throw io_error(manifest.string(), what); };
  if (!j.is_object()) fail("a shard manifest must be a JSON object with a \"shards\" list");
  for (const auto& [key, value] : j.as_object())
    if (key != "shards" && key != "metadata")
      fail("unknown key '" + key + "' (a manifest has \"shards\" and, optionally, \"metadata\")");
  const io::Json* shards = j.find("shards");
  if (!shards || !shards->is_array() || shards->as_array().empty()) fail("\"shards\" must be a non-empty list");
  const std::filesystem::path folder = manifest.parent_path();
  ShardList list;
  if (const io::Json* m = j.find("metadata")) list.metadata = metadata_from_json(*m, manifest.string());
  auto& out = list.shards;
  for (const auto& s : shards->as_array()) {
    ShardEntry e;
    if (s.is_string()) {
      e.path = s.as_string();
    } else if (s.is_object()) {
      for (const auto& [key, value] : s.as_object())
        if (key != "path" && key != "rows") fail("shard " + std::to_string(out.size()) + ": unknown key '" + key + "'");
      const io::Json* p = s.find("path");
      if (!p || !p->is_string()) fail("shard " + std::to_string(out.size()) + ": \"path\" must be a string");
      e.path = p->as_string();
      if (const io::Json* r = s.find("rows")) {
        if (!r->is_integer() || r->as_int() < 1) fail("shard " + std::to_string(out.size()) + ": \"rows\" must be a positive integer");
        e.rows = static_cast<index_t>(r->as_int());
      }
    } else {
      fail("shard " + std::to_string(out.size()) + ": expected a path or {\"path\": ..., \"rows\": ...}");
    }
    if (e.path.empty()) fail("shard " + std::to_string(out.size()) + ": empty path");
    if (std::filesystem::path(e.path).is_relative()) e.path = (folder / e.path).string();
    out.push_back(std::move(e));
  }
  return list;
}

inline ShardList glob_entries(const std::string& pattern) {
  const std::filesystem::path p(pattern);
  const std::filesystem::path folder = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  if (p.parent_path().string().find_first_of("*?[") != std::string::npos)
    throw io_error(pattern, "only the file name may hold wildcards, not the folder");
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) throw io_error(pattern, "no such folder " + folder.string());
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    if (fnmatch(p.filename().c_str(), entry.path().filename().c_str(), 0) == 0 && is_shard_name(entry.path()))
      paths.push_back(entry.path().string());
  if (paths.empty()) throw io_error(pattern, "matches no .npy or .safetensors file");
  return sorted_entries(std::move(paths));
}

inline ShardList folder_entries(const std::filesystem::path& folder) {
  if (std::filesystem::exists(folder / "manifest.json")) return read_manifest(folder / "manifest.json");
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    if (entry.is_regular_file() && is_shard_name(entry.path())) paths.push_back(entry.path().string());
  if (paths.empty()) throw io_error(folder.string(), "is a directory with no .npy or .safetensors shard and no manifest.json");
  return sorted_entries(std::move(paths));
}

}  // namespace open_rows_detail

// Whether `spec` names a shard set rather than one file.
inline bool is_shard_set(const std::string& spec) {
  std::error_code ec;
  return std::filesystem::is_directory(spec, ec) || std::filesystem::path(spec).extension() == ".json" ||
         std::filesystem::path(spec).filename().string().find_first_of("*?[") != std::string::npos;
}

// The arrays of a file or shard set, opened once: their common shape with the rows summed, their
// dtype and what identifies their content — what a sweep over slices needs before it picks one.
class ArraySet {
 public:
  explicit ArraySet(const std::filesystem::path& spec) : spec_(spec.string()) {
    using namespace open_rows_detail;
    if (spec_.empty()) throw invalid_argument("no data given: name a .npy/.safetensors file or a shard set");
    if (!is_shard_set(spec_)) {
      files_.push_back(std::make_shared<const io::ArrayFile>(spec_));
      shape_ = files_.front()->shape();
      return;
    }
    std::error_code ec;
    ShardList list = std::filesystem::is_directory(spec_, ec)                   ? folder_entries(spec_)
                     : std::filesystem::path(spec_).extension() == ".json" ? read_manifest(spec_)
                                                                              : glob_entries(spec_);
    metadata_ = std::move(list.metadata);
    for (const auto& e : list.shards) {
      auto file = std::make_shared<const io::ArrayFile>(e.path);
      if (!files_.empty()) check_like_first(*file);
      if (e.rows && (file->rank() == 0 || *e.rows != file->shape().front()))
        throw io_error(e.path, "has " + std::to_string(file->rank() ? file->shape().front() : 0) + " rows but the manifest says " +
                                   std::to_string(*e.rows));
      files_.push_back(std::move(file));
    }
    shape_ = files_.front()->shape();
    if (!shape_.empty())
      for (std::size_t f = 1; f < files_.size(); ++f) shape_.front() += files_[f]->shape().front();
  }

  const std::string& spec() const { return spec_; }
  bool sharded() const { return is_shard_set(spec_); }
  const std::vector<index_t>& shape() const { return shape_; }
  index_t rank() const { return static_cast<index_t>(shape_.size()); }
  std::string shape_string() const {  // one file's as its format writes it; a set's [N, ...] in all
    if (files_.size() == 1 && !sharded()) return files_.front()->shape_string();
    std::string s = "[";
    for (std::size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
    return s + "] in " + std::to_string(files_.size()) + " shard" + (files_.size() == 1 ? "" : "s");
  }
  std::string dtype() const { return files_.front()->dtype(); }
  // The slice to read: the one given, or (0, 0) of 4-D arrays given none.
  std::optional<LayerPosition> slice_or_default(std::optional<LayerPosition> where) const {
    return data::slice_or_default(*files_.front(), where);
  }
  // Content, shape and dtype (not the paths): one file's, or each shard's in order, about 1 GiB
  // hashed in all.
  io::Json fingerprint() const {
    if (!sharded()) return io::data_fingerprint(*files_.front());
    io::Json shards = io::Json::array();
    for (const auto& f : files_) shards.push_back(io::data_fingerprint(*f, hash_budget()));
    io::Json j = io::Json::object();
    j["shards"] = shards;
    return j;
  }

  // The rows of `where` (a 2-D array: none; 4-D: (0, 0) unless given), memory-mapped.
  template <class Scalar>
  RowSourcePtr<Scalar> rows(std::optional<LayerPosition> where = std::nullopt) const {
    if (!sharded()) return std::make_shared<const MappedRows<Scalar>>(files_.front(), where);
    std::vector<RowSourcePtr<Scalar>> shards;
    for (const auto& f : files_) shards.push_back(std::make_shared<const MappedRows<Scalar>>(f, where, hash_budget()));
    const std::string description = std::to_string(shards.size()) + " shard" + (shards.size() == 1 ? "" : "s") + " of " +
                                    spec_ + (where ? " (" + describe(*where) + ")" : "");
    return std::make_shared<const ShardedRows<Scalar>>(std::move(shards), description, metadata_);
  }

 private:
  // The set's fingerprint hashes about 1 GiB in all, shared among the shards (4 MiB each at least).
  std::size_t hash_budget() const {
    return std::max<std::size_t>(std::size_t{4} << 20, io::detail::kWholeHashBytes / files_.size());
  }
  void check_like_first(const io::ArrayFile& f) const {
    const io::ArrayFile& first = *files_.front();
    if (f.rank() != first.rank() || (f.rank() > 0 && f.shape().back() != first.shape().back()))
      throw io_error(f.path(), "rows are " + std::to_string(f.rank() ? f.shape().back() : 0) + " wide " + f.shape_string() +
                                   " but " + first.path() + " has " + std::to_string(first.rank() ? first.shape().back() : 0) +
                                   " " + first.shape_string() + "; every shard of a set must have the same width");
    if (!std::equal(f.shape().begin() + 1, f.shape().end(), first.shape().begin() + 1))
      throw io_error(f.path(), "shape " + f.shape_string() + " but " + first.path() + " is " + first.shape_string() +
                                   "; every shard of a set must have the same shape past the rows");
    if (f.dtype() != first.dtype())
      throw io_error(f.path(), "dtype " + f.dtype() + " but the first shard " + first.path() + " is " + first.dtype() +
                                   "; every shard of a set must have the same dtype");
  }

  std::string spec_;
  std::vector<std::shared_ptr<const io::ArrayFile>> files_;
  std::vector<index_t> shape_;
  DataMetadata metadata_;  // a manifest's
};

// The rows `spec` names (see the top of this file), memory-mapped; `where` picks the (layer,
// position) of 4-D arrays, in every shard alike.
template <class Scalar>
RowSourcePtr<Scalar> open_rows(const std::string& spec, std::optional<LayerPosition> where = std::nullopt) {
  return ArraySet(spec).rows<Scalar>(where);
}

}  // namespace sae::data
