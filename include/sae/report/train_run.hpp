// What one training run (sae-train) writes beside its checkpoint: metrics.json (the validation and
// training metrics, the run's fingerprint and settings; with the bf16 encoder, the same weights
// scored with the fp32 one), activation_frequency.npy, the SAELens/sparsify exports, and the
// summary printed to the console.
#pragma once

#include <sae/core/encoder_precision.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/config_json.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/data/row_source.hpp>
#include <sae/metrics/evaluate_rows.hpp>
#include <sae/metrics/sparsity.hpp>
#include <sae/model/interop.hpp>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/optim/adam.hpp>
#include <sae/optim/sgd.hpp>
#include <sae/report/text.hpp>
#include <sae/train/sweep.hpp>
#include <sae/train/trainer.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace sae::report {

// What the record says about the run besides the model.
struct TrainRunSetup {
  std::string source, split;
  io::Json data_fingerprint;  // io::data_fingerprint of the rows, with the split
  TrainConfig train;
  AdamConfig adam;
  std::optional<SgdConfig> sgd;  // set when SGD trained it (adam.lr is then SGD's rate too)
  index_t early_stop = 0;
  std::optional<io::Json> data_parallel;  // the MPI exchange's statistics
  std::vector<ExternalFormat> exports;
};

// Writes metrics.json, activation_frequency.npy and the exports into the run's staging folder;
// returns the validation summary for the console.
template <class Model>
std::string write_train_report(io::RunDirectory& run, const TrainRunSetup& s, const Model& model,
                               const data::RowSource<float>& train, const data::RowSource<float>& validation,
                               const TrainSummary& summary) {
  constexpr bool topk = std::is_same_v<Model, TopKAutoencoder<float>>;
  EncoderPrecision precision = EncoderPrecision::fp32;
  if constexpr (topk) precision = model.config().encoder_precision;
  const auto val = metrics::evaluate(model, validation);
  const auto on_train = metrics::evaluate(model, train);
  const io::Json model_json = io::fields_to_json(model.config());
  io::Json fingerprint = io::Json::object();
  fingerprint["library"] = io::library_fingerprint();
  fingerprint["data"] = s.data_fingerprint;
  fingerprint["model"] = model_json;
  if (!topk) fingerprint["architecture"] = Model::architecture;  // TopK's fingerprints stay as they were
  fingerprint["encoder_precision"] = name(precision);
  fingerprint["training"] = training_fingerprint(s.train, s.adam);
  if (s.sgd) {
    fingerprint["training"]["optimizer"] = "sgd";
    fingerprint["training"]["momentum"] = s.sgd->momentum;
  }
  fingerprint["early_stop"] = s.early_stop;
  io::Json doc = io::Json::object();
  doc["data"] = s.source;
  doc["fingerprint"] = fingerprint;
  doc["split"] = s.split;
  doc["architecture"] = Model::architecture;
  doc["model"] = model_json;
  doc["encoder_precision"] = name(precision);
  doc["epochs_run"] = static_cast<long>(summary.history.size());
  doc["stopped_early"] = summary.stopped_early;
  doc["batch_size"] = s.train.batch_size;
  doc["lr"] = s.adam.lr;
  doc["optimizer"] = s.sgd ? "sgd" : "adam";
  doc["threads"] = max_threads();
  doc["train_seconds"] = summary.seconds;
  if (s.data_parallel) doc["data_parallel"] = *s.data_parallel;
  doc["validation"] = metrics::to_json(val);
  doc["train"] = metrics::to_json(on_train);
  // bf16's accuracy effect: the same weights scored with the fp32 encoder GEMM.
  std::optional<metrics::Evaluation> val_fp32;
  double overlap = 1.0;
  if constexpr (topk) {
    if (precision == EncoderPrecision::bf16) {
      TopKConfig exact = model.config();
      exact.encoder_precision = EncoderPrecision::fp32;
      const Model reference(exact, model.parameters());
      val_fp32 = metrics::evaluate(reference, validation);
      // On the first block of validation rows (all of them for sets of the reports' size).
      const index_t n = std::min(validation.rows(), data::streaming_block_rows<float>(validation.input_dim()));
      Matrix<float> x;
      const auto rows = data::row_range(0, n);
      validation.read_inputs(rows.data(), n, x);
      overlap = metrics::active_overlap(model.encode(x), reference.encode(x));
      doc["validation_fp32_encoder"] = metrics::to_json(*val_fp32);
      doc["bf16_active_overlap"] = overlap;
    }
  }
  io::write_text_atomically(run.stage("metrics.json"), doc.dump() + "\n");
  io::save_npy(run.stage("activation_frequency.npy"),
               Eigen::Map<const Eigen::VectorXd>(val.activation_frequency.data(), static_cast<long>(val.activation_frequency.size())));
  for (auto format : s.exports) {
    ExportOptions opt;
    opt.activation_frequency = &val.activation_frequency;  // SAELens's sparsity.safetensors
    if constexpr (topk) export_model(format, run.stage(name(format)), model, opt);
    else export_saelens(run.stage(name(format)), model, opt);
  }

  std::string t = "\nvalidation metrics (" + std::to_string(validation.rows()) + " samples)\n";
  t += "  explained variance        " + fmt("%.4f", val.explained_variance) + "   (reports' formula: " +
       fmt("%.4f", val.explained_variance_reports) + ")\n";
  t += "  MSE                       " + fmt("%.6g", val.mse) + "\n";
  t += "  L0                        " + fmt("%.2f", val.l0) + "\n";
  t += "  dead latents              " + fmt("%.1f%%", 100 * val.dead_fraction) + "  (" + std::to_string(val.alive_latents) +
       " of " + std::to_string(model.num_latents()) + " alive)\n";
  t += "  mean / max activation     " + fmt("%.4g", val.mean_active_activation) + " / " + fmt("%.4g", val.max_activation) + "\n";
  t += "  EV per active latent      " + fmt("%.3g%%", 100 * val.ev_per_active_latent) + "\n";
  if (val_fp32)
    t += "  fp32 encoder, same weights explained variance " + fmt("%.4f", val_fp32->explained_variance) + "; " +
         fmt("%.2f%%", 100 * overlap) + " of active latents the same\n";
  t += "  training time             " + fmt("%.1f s", summary.seconds) + "\n";
  return t;
}

}  // namespace sae::report
