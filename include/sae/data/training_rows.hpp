// The rows one training run reads: the DataOptions' file or shard set (with targets when asked),
// or planted rows when no file is named, split into train and validation views (index lists over
// one source, not copies), with what identifies them for fingerprints and reports.
#pragma once

#include <sae/data/activation_split.hpp>
#include <sae/data/data_options.hpp>
#include <sae/data/metadata.hpp>
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
  DataMetadata metadata;  // what the data says it is (data/metadata.hpp), for checkpoints
  bool streaming = false;  // batches read from the memory map (open_data)
  bool too_large = false;  // streaming because the rows would not fit in memory (not because asked)
};

// `planted` makes the rows when d.data is empty; `seed` seeds the planting and the split.
inline TrainingRows open_training_rows(const DataOptions& d, PlantedConfig planted, std::uint64_t seed) {
  TrainingRows t;
  RowSourcePtr<float> all;
  if (!d.data.empty()) {
    all = open_data<float>(d, &t.streaming);
    t.too_large = t.streaming && too_large_for_memory(*all);
    t.fingerprint = all->fingerprint();
    t.metadata = all->metadata();
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
