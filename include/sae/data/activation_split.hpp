// Activations as every program reads them: a `.npy` file (2-D, or one (layer, position) of a 4-D
// array — (0, 0) unless given), what identifies its content for fingerprints, and its rows split
// by a SplitPolicy with the file row behind each validation row kept for pairing with samples.
#pragma once

#include <sae/core/types.hpp>
#include <sae/data/activations.hpp>
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
};

inline ActivationFile load_activation_file(const std::string& path, std::optional<LayerPosition> where = std::nullopt) {
  const io::ArrayFile view(path);
  where = slice_or_default(view, where);
  ActivationFile f;
  f.all = gather_activations<float>(view, where);
  f.source = describe_source(path, where);
  f.fingerprint = io::data_fingerprint(view);
  if (where) {
    f.fingerprint["layer"] = where->layer;
    f.fingerprint["position"] = where->position;
  }
  return f;
}

struct ActivationSplit {
  Matrix<float> train, validation;
  std::vector<index_t> validation_rows;  // row of the file behind each validation row
  std::string source;                    // file and slice, for reports
  std::string split;                     // how rows were split, for reports
  index_t rows = 0;
};

inline ActivationSplit split_activations(const Matrix<float>& all, std::string source, const SplitPolicy& policy) {
  const Split split = choose_split(all.rows(), policy);
  ActivationSplit d;
  d.source = std::move(source);
  d.rows = all.rows();
  d.split = split.description;
  d.train = take_rows(all, split.train);
  d.validation = take_rows(all, split.validation);
  d.validation_rows = split.validation;
  return d;
}

}  // namespace sae::data
