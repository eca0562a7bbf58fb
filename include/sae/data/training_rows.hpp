// The rows one training run reads: the DataOptions' file or shard set (with targets when asked),
// or planted rows when no file is named, split into train and validation views (index lists over
// one source, not copies), with what identifies them for fingerprints and reports.
#pragma once

#include <sae/data/activation_split.hpp>
#include <sae/data/data_options.hpp>
#include <sae/data/planted.hpp>
#include <sae/data/row_source.hpp>
#include <sae/data/split.hpp>
#include <sae/io/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace sae::data {

struct TrainingRows {
  std::shared_ptr<const SelectedRows<float>> train, validation;
  std::string source;     // for reports: the file(s) and slice(s), "-> targets" when paired
  std::string split;      // how the rows were split
  io::Json fingerprint;   // content of every file read (or the planted settings), the split
  bool streaming = false;  // batches read from the memory map (open_data)
};

// `planted` makes the rows when d.data is empty; `seed` seeds the planting and the split.
inline TrainingRows open_training_rows(const DataOptions& d, PlantedConfig planted, std::uint64_t seed) {
  TrainingRows t;
  RowSourcePtr<float> all;
  if (!d.data.empty()) {
    all = open_data<float>(d, &t.streaming);
    t.fingerprint = rows_fingerprint(d.data, d.slice());
    if (d.has_targets())
      t.fingerprint["targets"] = rows_fingerprint(d.target_data.empty() ? d.data : d.target_data, d.target_slice());
  } else {
    planted.seed = seed;
    ActivationFile file = planted_activation_file(planted);
    all = std::make_shared<const MatrixRows<float>>(std::move(file.all), file.source);
    t.fingerprint = std::move(file.fingerprint);
  }
  const Split split = choose_split(all->rows(), d.split(seed));
  t.train = std::make_shared<const SelectedRows<float>>(all, split.train);
  t.validation = std::make_shared<const SelectedRows<float>>(all, split.validation);
  t.source = all->describe() + (t.streaming ? " (streamed from the memory map)" : "");
  t.split = split.description;
  t.fingerprint["split"] = t.split;
  return t;
}

}  // namespace sae::data
