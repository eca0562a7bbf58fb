// Opens what a user names as data: one `.npy`/`.safetensors[:tensor]` file, or a sharded set — a
// directory of shards, a glob (`acts/shard-*.npy`) or a manifest (`manifest.json`, or one inside
// the directory) — as one memory-mapped row source. Every shard is opened and checked before any
// row is read: readable, 2-D or the asked 4-D slice, the same width and dtype as the first, and as
// many rows as the manifest says; each problem names its shard.
//
// Manifest: {"shards": ["shard-000.npy", {"path": "shard-001.safetensors:acts", "rows": 4096}, ...]}
// with paths relative to the manifest's folder, in reading order.
#pragma once

#include <sae/core/error.hpp>
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

inline std::vector<ShardEntry> sorted_entries(std::vector<std::string> paths) {
  std::sort(paths.begin(), paths.end(), natural_less);
  std::vector<ShardEntry> out;
  for (auto& p : paths) out.push_back({std::move(p), std::nullopt});
  return out;
}

inline std::vector<ShardEntry> read_manifest(const std::filesystem::path& manifest) {
  const io::Json j = io::read_json_file(manifest.string());
  const auto fail = [&](const std::string& what) { throw io_error(manifest.string(), what); };
  if (!j.is_object()) fail("a shard manifest must be a JSON object with a \"shards\" list");
  for (const auto& [key, value] : j.as_object())
    if (key != "shards" && key != "metadata")
      fail("unknown key '" + key + "' (a manifest has \"shards\" and, optionally, \"metadata\")");
  const io::Json* shards = j.find("shards");
  if (!shards || !shards->is_array() || shards->as_array().empty()) fail("\"shards\" must be a non-empty list");
  const std::filesystem::path folder = manifest.parent_path();
  std::vector<ShardEntry> out;
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
  return out;
}

inline std::vector<ShardEntry> glob_entries(const std::string& pattern) {
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

inline std::vector<ShardEntry> folder_entries(const std::filesystem::path& folder) {
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

// The rows `spec` names (see the top of this file), memory-mapped; `where` picks the (layer,
// position) of 4-D arrays, in every shard alike.
template <class Scalar>
RowSourcePtr<Scalar> open_rows(const std::string& spec, std::optional<LayerPosition> where = std::nullopt) {
  using namespace open_rows_detail;
  if (spec.empty()) throw invalid_argument("no data given: name a .npy/.safetensors file or a shard set");
  if (!is_shard_set(spec)) return std::make_shared<const MappedRows<Scalar>>(spec, where);
  std::error_code ec;
  const auto entries = std::filesystem::is_directory(spec, ec)                   ? folder_entries(spec)
                       : std::filesystem::path(spec).extension() == ".json" ? read_manifest(spec)
                                                                                : glob_entries(spec);
  std::vector<RowSourcePtr<Scalar>> shards;
  std::string dtype;
  for (const auto& e : entries) {
    auto shard = std::make_shared<const MappedRows<Scalar>>(e.path, where);
    if (shards.empty()) dtype = shard->file().dtype();
    else if (shard->file().dtype() != dtype)
      throw io_error(e.path, "dtype " + shard->file().dtype() + " but the first shard " + shards.front()->describe() +
                                 " is " + dtype + "; every shard of a set must have the same dtype");
    if (e.rows && *e.rows != shard->rows())
      throw io_error(e.path, "has " + std::to_string(shard->rows()) + " rows but the manifest says " + std::to_string(*e.rows));
    shards.push_back(std::move(shard));
  }
  const std::string description = std::to_string(shards.size()) + " shard" + (shards.size() == 1 ? "" : "s") + " of " + spec +
                                  (where ? " (" + describe(*where) + ")" : "");
  return std::make_shared<const ShardedRows<Scalar>>(std::move(shards), description);
}

}  // namespace sae::data
