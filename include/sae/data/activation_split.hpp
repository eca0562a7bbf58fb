// Activations as the matrix-based programs read them: a `.npy`/`.safetensors` file (2-D, or one
// (layer, position) of a 4-D array — (0, 0) unless given) or a shard set, loaded whole; what
// identifies its content for fingerprints; and its rows split by a SplitPolicy with the file row
// behind each validation row kept for pairing with samples. Planted-dictionary rows in the same
// form, for runs without a file.
#pragma once

#include <sae/core/types.hpp>
#include <sae/core/memory.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/metadata.hpp>
#include <sae/data/open_rows.hpp>
#include <sae/data/planted.hpp>
#include <sae/data/split.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/array_file.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sae::data {

struct ActivationFile {
  Matrix<float> all;    // every row
  std::string source;   // file and slice, for reports: "acts.npy (layer 4, position 3)"
  io::Json fingerprint;  // content, shape and slice (not the path: a moved copy still matches)
  DataMetadata metadata;  // what the data says it is (data/metadata.hpp)
};

// Every row of a file or shard set (data/open_rows.hpp) in memory.
inline ActivationFile load_activation_file(const std::string& path, std::optional<LayerPosition> where = std::nullopt) {
  const auto rows = open_rows<float>(path, where);
  require_memory(static_cast<double>(rows->rows()) * static_cast<double>(rows->input_dim()) * sizeof(float),
                 path + ": loading " + std::to_string(rows->rows()) + " x " + std::to_string(rows->input_dim()) + " activations");
  ActivationFile f;
  f.all = read_all_inputs(*rows);
  f.source = rows->describe();
  f.fingerprint = rows->fingerprint();
  f.metadata = rows->metadata();
  return f;
}

// Planted-dictionary rows (data/planted.hpp) as a program reads a file: the rows, a source line for
// reports and a fingerprint of every setting that made them. Refuses sizes past the memory available.
inline ActivationFile planted_activation_file(const PlantedConfig& pc) {
  require_memory(static_cast<double>(pc.num_samples) * static_cast<double>(pc.input_dim + pc.num_features) * 4.0,
                 "planted data of " + std::to_string(pc.num_samples) + " x " + std::to_string(pc.input_dim));
  ActivationFile f;
  f.all = make_planted<float>(pc).x;
  f.source = "planted synthetic data (" + std::to_string(pc.num_samples) + " x " + std::to_string(pc.input_dim) + ", " +
             std::to_string(pc.num_features) + " true features, " + std::to_string(pc.k_true) + " active per sample)";
  f.fingerprint = io::Json::object();
  f.fingerprint["planted_samples"] = pc.num_samples;
  f.fingerprint["planted_dim"] = pc.input_dim;
  f.fingerprint["planted_features"] = pc.num_features;
  f.fingerprint["planted_k"] = pc.k_true;
  f.fingerprint["planted_noise_std"] = pc.noise_std;
  return f;
}

struct ActivationSplit {
  Matrix<float> train, validation;
  std::vector<index_t> validation_rows;  // row of the file behind each validation row
  std::string source;                    // file and slice, for reports
  std::string split;                     // how rows were split, for reports
  index_t rows = 0;
  DataMetadata metadata;                 // what the data says it is, for checkpoints
};

inline ActivationSplit split_activations(const Matrix<float>& all, std::string source, const SplitPolicy& policy,
                                         DataMetadata metadata = {}) {
  const Split split = choose_split(all.rows(), policy);
  ActivationSplit d;
  d.source = std::move(source);
  d.rows = all.rows();
  d.split = split.description;
  d.train = take_rows(all, split.train);
  d.validation = take_rows(all, split.validation);
  d.validation_rows = split.validation;
  d.metadata = std::move(metadata);
  return d;
}

}  // namespace sae::data
