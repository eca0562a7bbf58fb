// What a data set says it is — model, hook point, layer, position, width, normalisation — so that a
// dictionary trained on one layer is not silently applied to another. It comes from a .safetensors
// file's `__metadata__` or a shard manifest's "metadata" (a .npy file carries none), is checked
// against what the file holds (d_in, dtype, rows), is recorded in checkpoints, and is compared on
// the identity keys when a checkpoint meets new data (require_same_data).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace sae::data {

// Key -> value text, as safetensors stores it ({"model": "gpt2", "layer": "4", "d_in": "768"}).
using DataMetadata = std::map<std::string, std::string>;

// The keys that say which activations these are: two data sets that differ on one of them are not
// interchangeable. Others (rows, dtype, source, ...) are recorded but may differ.
inline const std::vector<std::string>& identity_keys() {
  static const std::vector<std::string> keys = {"model", "hook", "layer", "position", "d_in", "normalization"};
  return keys;
}

// One name per float type whatever wrote it: "<f2", "F16", "float16", "torch.float16" -> "f16".
inline std::string dtype_name(std::string stored) {
  std::transform(stored.begin(), stored.end(), stored.begin(), [](unsigned char c) { return std::tolower(c); });
  if (stored.rfind("torch.", 0) == 0) stored.erase(0, 6);
  if (!stored.empty() && (stored[0] == '<' || stored[0] == '>' || stored[0] == '|' || stored[0] == '=')) stored.erase(0, 1);
  if (stored == "f2" || stored == "float16" || stored == "half") return "f16";
  if (stored == "bfloat16") return "bf16";
  if (stored == "f4" || stored == "float32" || stored == "float") return "f32";
  if (stored == "f8" || stored == "float64" || stored == "double") return "f64";
  return stored;
}

// A JSON object of strings, numbers or booleans (a manifest's "metadata") as metadata; anything
// else is refused naming `source`.
inline DataMetadata metadata_from_json(const io::Json& j, const std::string& source) {
  if (!j.is_object()) throw io_error(source, "\"metadata\" must be an object of strings or numbers");
  DataMetadata m;
  for (const auto& [key, value] : j.as_object()) {
    if (value.is_string()) m[key] = value.as_string();
    else if (value.is_integer() || value.is_bool()) m[key] = value.dump(-1);
    else throw io_error(source, "metadata \"" + key + "\" must be a string or an integer, not " + value.dump(-1));
  }
  return m;
}

inline io::Json metadata_to_json(const DataMetadata& m) {
  io::Json j = io::Json::object();
  for (const auto& [key, value] : m) j[key] = value;
  return j;
}

// What the metadata claims against what `source` holds: a "d_in", "rows" or "dtype" that contradicts
// the array is refused; then the true values are filled in.
inline void reconcile_metadata(DataMetadata& m, const std::string& source, index_t rows, index_t d_in,
                               const std::string& stored_dtype) {
  const auto check = [&](const char* key, const std::string& actual, const std::string& normalised_claim) {
    const auto it = m.find(key);
    if (it != m.end() && normalised_claim != actual)
      throw io_error(source, std::string("metadata says ") + key + " '" + it->second + "' but the array holds " + actual);
    m[key] = actual;
  };
  check("d_in", std::to_string(d_in), m.count("d_in") ? m.at("d_in") : "");
  check("rows", std::to_string(rows), m.count("rows") ? m.at("rows") : "");
  check("dtype", dtype_name(stored_dtype), m.count("dtype") ? dtype_name(m.at("dtype")) : "");
}

// The identity keys both sides name with different values: "layer: '4' vs '5'" each.
inline std::vector<std::string> metadata_conflicts(const DataMetadata& a, const DataMetadata& b) {
  std::vector<std::string> out;
  for (const auto& key : identity_keys()) {
    const auto x = a.find(key), y = b.find(key);
    if (x != a.end() && y != b.end() && x->second != y->second) out.push_back(key + " '" + x->second + "' vs '" + y->second + "'");
  }
  return out;
}

// Refuses data whose metadata contradicts what a checkpoint was trained on, naming each key, unless
// `force` (then the caller warns). `force_flag` names the way to force it, e.g. "--force-mismatch".
inline void require_same_data(const DataMetadata& trained, const std::string& checkpoint, const DataMetadata& data,
                              const std::string& data_source, bool force, const std::string& force_flag) {
  const auto conflicts = metadata_conflicts(trained, data);
  if (conflicts.empty() || force) return;
  std::string list;
  for (const auto& c : conflicts) list += (list.empty() ? "" : ", ") + c;
  throw invalid_argument(data_source + ": not the data " + checkpoint + " was trained on (trained vs given: " + list +
                         "); pass " + force_flag + " to use it anyway");
}

}  // namespace sae::data
