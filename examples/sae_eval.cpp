// sae-eval: SAEBench's evals of an SAE on stored activations, in SAEBench's formulas: `core` — every
// metric of its core eval that needs no language model (include/sae/eval/core_metrics.hpp), written
// as SAEBench's core.json (its CoreEvalOutput schema) — and `mdl` — its MDL eval's quantisation
// sweep and description lengths (include/sae/eval/mdl.hpp), written as mdl.json in the schema of
// its mdl/main.py run_eval — with a report.md. `--evals` picks them (default: both, every eval built
// that needs only activations and the SAE). The SAE is our checkpoint of any architecture or a
// SAELens / sparsify folder; the rows any file or shard set the other programs read.
#include "common.hpp"
#include "output_paths.hpp"

#include <sae/data/open_rows.hpp>
#include <sae/eval/core_metrics.hpp>
#include <sae/eval/mdl.hpp>
#include <sae/model/load_any.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <variant>

namespace {

namespace fs = std::filesystem;
using sae::io::Json;
using sae::report::fmt;

// SAEBench writes NaN as -1 (main.py replace_nans_with_negative_one); our writer writes +-inf as null.
Json saebench_number(double v) { return std::isnan(v) ? Json(-1.0) : Json(v); }
// Ours: undefined is null, as everywhere in this library's JSON.
Json our_number(double v) { return std::isnan(v) ? Json() : Json(v); }

// A random (version 4) UUID, as SAEBench's get_eval_uuid.
std::string uuid4() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  std::uint64_t hi = gen(), lo = gen();
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx", static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xFFFF), static_cast<unsigned long long>(hi & 0xFFFF),
                static_cast<unsigned long long>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

// The metrics SAEBench's core eval computes by running the language model with the SAE spliced in.
const std::vector<std::pair<std::string, std::vector<std::string>>>& model_groups() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> groups = {
      {"model_behavior_preservation", {"kl_div_score", "kl_div_with_ablation", "kl_div_with_sae"}},
      {"model_performance_preservation", {"ce_loss_score", "ce_loss_with_ablation", "ce_loss_with_sae", "ce_loss_without_sae"}}};
  return groups;
}

struct EvalSetup {
  fs::path sae_dir;
  std::string sae_kind, architecture, data_source;
  sae::index_t d_in = 0, d_sae = 0;
  Json sae_config;
  sae::data::DataMetadata data_metadata;
  sae::eval::CoreEvalConfig config;
  sae::eval::MdlEvalConfig mdl;
  bool folder_bias = false;  // encoder_bias is the SAELens folder's b_enc (apply_b_dec_to_input false)
};

std::string data_meta(const EvalSetup& s, const char* key) {
  const auto it = s.data_metadata.find(key);
  return it == s.data_metadata.end() ? std::string() : it->second;
}

Json sae_lens_version(const EvalSetup& s) {
  const Json* md = s.sae_config.is_object() ? s.sae_config.find("metadata") : nullptr;
  const Json* version = md && md->is_object() ? md->find("sae_lens_version") : nullptr;
  return version && version->is_string() ? *version : Json();
}

Json core_json(const EvalSetup& s, const sae::eval::CoreMetrics& m) {
  const auto meta = [&](const char* key) { return data_meta(s, key); };
  Json cfg = Json::object();  // SAEBench's CoreEvalConfig, field for field
  cfg["model_name"] = meta("model");
  cfg["llm_dtype"] = "float32";  // the SAE runs in float32 here
  cfg["batch_size_prompts"] = s.config.batch_size_prompts;
  cfg["n_eval_reconstruction_batches"] = 0;
  cfg["n_eval_sparsity_variance_batches"] = m.batches;
  cfg["dataset"] = s.data_source;
  cfg["context_size"] = s.config.context_size;
  cfg["compute_kl"] = false;
  cfg["compute_ce_loss"] = false;
  cfg["compute_l2_norms"] = true;
  cfg["compute_sparsity_metrics"] = true;
  cfg["compute_variance_metrics"] = true;
  cfg["compute_featurewise_density_statistics"] = true;
  cfg["compute_featurewise_weight_based_metrics"] = true;
  cfg["exclude_special_tokens_from_reconstruction"] = false;
  cfg["verbose"] = false;

  const auto& b = m.saebench;
  const auto group = [](std::initializer_list<std::pair<const char*, double>> values) {
    Json g = Json::object();
    for (const auto& [key, v] : values) g[key] = saebench_number(v);
    return g;
  };
  Json metrics = Json::object();
  metrics["reconstruction_quality"] = group({{"explained_variance", b.explained_variance},
                                             {"explained_variance_legacy", b.explained_variance_legacy},
                                             {"mse", b.mse},
                                             {"cossim", b.cossim}});
  metrics["shrinkage"] = group({{"l2_norm_in", b.l2_norm_in},
                                {"l2_norm_out", b.l2_norm_out},
                                {"l2_ratio", b.l2_ratio},
                                {"relative_reconstruction_bias", b.relative_reconstruction_bias}});
  metrics["sparsity"] = group({{"l0", b.l0}, {"l1", b.l1}});
  Json tokens = Json::object();
  tokens["total_tokens_eval_reconstruction"] = 0;
  tokens["total_tokens_eval_sparsity_variance"] = m.rows;
  metrics["token_stats"] = tokens;
  metrics["misc_metrics"] = group({{"freq_over_1_percent", m.misc.freq_over_1_percent},
                                   {"freq_over_10_percent", m.misc.freq_over_10_percent},
                                   {"normalized_freq_over_1_percent", m.misc.normalized_freq_over_1_percent},
                                   {"normalized_freq_over_10_percent", m.misc.normalized_freq_over_10_percent},
                                   {"average_max_encoder_cosine_sim", m.misc.average_max_encoder_cosine_sim},
                                   {"average_max_decoder_cosine_sim", m.misc.average_max_decoder_cosine_sim},
                                   {"frac_alive", m.misc.frac_alive}});

  Json details = Json::array();  // CoreFeatureMetric, one per latent
  const auto& l = m.latents;
  for (std::size_t i = 0; i < l.feature_density.size(); ++i) {
    Json d = Json::object();
    d["index"] = static_cast<long long>(i);
    d["feature_density"] = saebench_number(l.feature_density[i]);
    d["consistent_activation_heuristic"] = saebench_number(l.consistent_activation_heuristic[i]);
    d["encoder_bias"] = saebench_number(l.encoder_bias[i]);
    d["encoder_norm"] = saebench_number(l.encoder_norm[i]);
    d["encoder_decoder_cosine_sim"] = saebench_number(l.encoder_decoder_cosine_sim[i]);
    d["max_decoder_cosine_sim"] = saebench_number(l.max_decoder_cosine_sim[i]);
    d["max_encoder_cosine_sim"] = saebench_number(l.max_encoder_cosine_sim[i]);
    details.push_back(d);
  }

  Json unstructured = Json::object();
  unstructured["implementation"] = std::string("sae-eval (sae ") + SAE_VERSION_STRING +
                                   ", C++): the formulas of SAEBench 0.6.0's core eval (sae_bench/evals/core/main.py) on stored "
                                   "activations, in double";
  Json not_computed = Json::object();
  for (const auto& [group, names] : model_groups()) {
    Json list = Json::array();
    for (const auto& n : names) list.push_back(n);
    not_computed[group] = list;
  }
  not_computed["reason"] = "computed by SAEBench with the language model (the SAE spliced into its forward pass); "
                           "sae-eval has activations only";
  unstructured["not_computed"] = not_computed;
  const auto& t = m.textbook;
  Json ours = Json::object();
  ours["explained_variance"] = our_number(t.explained_variance);
  ours["mse_per_element"] = our_number(t.mse);
  ours["relative_reconstruction_bias_pooled"] = our_number(t.relative_reconstruction_bias);
  ours["cossim_defined_rows"] = our_number(t.cossim);
  ours["rows_without_cossim"] = t.rows_without_cossim;
  ours["alive_latents"] = t.alive_latents;
  ours["dead_fraction"] = our_number(t.dead_fraction);
  ours["formulas"] =
      "explained_variance = 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over all rows (SAEBench's divides by "
      "E||x||^2 - (E||x||^2/D)^2 per batch: variance about zero); mse_per_element = mean (x - x_hat)^2 over all "
      "elements (SAEBench's mse divides each row's squared error by the batch's row count); "
      "relative_reconstruction_bias_pooled = sum ||x_hat||^2 / sum x.x_hat over all rows (SAEBench's is the mean of "
      "per-batch ratios); cossim_defined_rows leaves out rows where x or x_hat is zero (SAEBench's is then NaN, "
      "written -1)";
  unstructured["textbook_metrics"] = ours;
  Json batches = Json::object();
  batches["rows"] = m.rows;
  batches["batches"] = m.batches;
  batches["rows_per_batch"] = s.config.batch_rows();
  batches["last_batch_rows"] = m.last_batch_rows;
  unstructured["batches"] = batches;
  Json sae_info = Json::object();
  sae_info["path"] = s.sae_dir.string();
  sae_info["kind"] = s.sae_kind;
  sae_info["architecture"] = s.architecture;
  sae_info["d_in"] = s.d_in;
  sae_info["d_sae"] = s.d_sae;
  sae_info["max_decoder_norm_deviation"] = m.max_decoder_norm_deviation;
  unstructured["sae"] = sae_info;
  Json data_info = Json::object();
  data_info["source"] = s.data_source;
  data_info["metadata"] = sae::data::metadata_to_json(s.data_metadata);
  unstructured["data"] = data_info;

  Json out = Json::object();  // CoreEvalOutput, in its field order
  out["eval_type_id"] = "core";
  out["eval_config"] = cfg;
  out["eval_id"] = uuid4();
  out["datetime_epoch_millis"] = static_cast<long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  out["eval_result_metrics"] = metrics;
  out["eval_result_details"] = details;
  out["sae_bench_commit_hash"] = std::string("none: sae-eval ") + SAE_VERSION_STRING + " (SAEBench 0.6.0's formulas)";
  out["sae_lens_id"] = s.sae_dir.filename().string();
  out["sae_lens_release_id"] = Json();
  out["sae_lens_version"] = sae_lens_version(s);
  out["sae_cfg_dict"] = s.sae_config;
  out["eval_result_unstructured"] = unstructured;
  return out;
}

// Local time as Python's datetime.now().isoformat() writes it: 2024-11-05T01:54:14.197238.
std::string iso_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  char date[32], frac[16];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(micros));
  return std::string(date) + frac;
}

// The JSON SAEBench's mdl/main.py run_eval writes per SAE (MDL has no eval_output.py schema), key
// for key: eval_results is its list of MDLEvalResult.to_dict() (bins emptied, k None as null).
// "sae_eval" is ours: how the rows were used, and what SAEBench's formulas do that the paper does not.
Json mdl_json(const EvalSetup& s, const sae::eval::MdlMetrics& m) {
  Json cfg = Json::object();  // asdict(MDLEvalConfig), field for field
  Json ks = Json::array(), bins = Json::array();
  for (auto k : s.mdl.k_values) ks.push_back(k == 0 ? Json() : Json(k));
  for (auto nb : s.mdl.num_bins_values) bins.push_back(nb);
  cfg["k_values"] = ks;
  cfg["num_bins_values"] = bins;
  cfg["random_seed"] = 42;  // SAEBench's default; nothing is sampled here
  cfg["dataset_name"] = s.data_source;
  cfg["context_length"] = s.config.context_size;
  cfg["sae_batch_size"] = s.config.batch_size_prompts;
  cfg["model_name"] = data_meta(s, "model");
  cfg["llm_dtype"] = "float32";
  cfg["mse_epsilon_threshold"] = s.mdl.mse_epsilon_threshold;

  Json results = Json::array();
  for (const auto& r : m.results) {
    Json e = Json::object();
    e["num_bins"] = r.num_bins;
    e["bins"] = Json::array();
    e["k"] = r.k == 0 ? Json() : Json(r.k);
    e["description_length"] = saebench_number(r.description_length);
    e["within_threshold"] = r.within_threshold;
    e["mse_loss"] = saebench_number(r.mse_loss);
    results.push_back(e);
  }
  Json ours = Json::object();
  ours["implementation"] = std::string("sae-eval (sae ") + SAE_VERSION_STRING +
                           ", C++): the formulas of SAEBench 0.6.0's MDL eval (sae_bench/evals/mdl/main.py: "
                           "get_min_max_activations, build_bins, check_quantised_features_reach_mse_threshold, "
                           "calculate_dl) on stored activations, sums in double";
  ours["rows"] = m.rows;
  ours["rows_per_batch"] = s.config.batch_rows();
  ours["max_activation_floor"] = sae::eval::mdl::max_activation_floor;
  ours["latents_above_floor"] = m.latents_above_floor;
  ours["notes"] =
      "Every phase (max, threshold check, description length) uses every row; SAEBench draws fresh rows from its "
      "activation store for each. As in SAEBench: each latent's bins span [0, max(100, its largest value)]; "
      "mse_loss is sqrt(mean (x_hat_q - x)^2) / d_in with latents that are 0 quantised to their first bin's "
      "midpoint; k (a top-k before quantising) changes mse_loss only; the histogram behind the description length "
      "counts every row, zeros in bin 0.";
  Json out = Json::object();
  out["eval_instance_id"] = uuid4();
  out["sae_lens_release"] = Json();
  out["sae_lens_id"] = s.sae_dir.filename().string();
  out["eval_type_id"] = "mdl";
  out["sae_lens_version"] = sae_lens_version(s);
  out["sae_bench_version"] = std::string("none: sae-eval ") + SAE_VERSION_STRING + " (SAEBench 0.6.0's formulas)";
  out["date_time"] = iso_now();
  out["eval_config"] = cfg;
  out["eval_results"] = results;
  Json artifacts = Json::object();
  artifacts["artifacts"] = "None";
  out["eval_artifacts"] = artifacts;
  out["sae_cfg_dict"] = s.sae_config;
  out["sae_eval"] = ours;
  return out;
}

// A SAEBench value for the report: NaN is "undefined", beside the -1 core.json holds for it.
std::string shown(double v, const char* format = "%.6g") {
  if (std::isnan(v)) return "undefined (-1 in core.json)";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt(format, v);
}

// The core eval's part of report.md.
void core_report(std::ostringstream& r, const EvalSetup& s, const sae::eval::CoreMetrics& m) {
  const auto& b = m.saebench;
  const auto& t = m.textbook;
  r << "## Core metrics\n\n"
    << "* " << m.rows << " rows in " << m.batches << " SAEBench batches of " << s.config.batch_rows() << " rows ("
    << s.config.batch_size_prompts << " prompts x " << s.config.context_size << " rows)"
    << (m.last_batch_rows != s.config.batch_rows() ? ", the last of " + std::to_string(m.last_batch_rows) : "") << "\n"
    << "* formulas: SAEBench 0.6.0, `sae_bench/evals/core/main.py` (`get_sparsity_and_variance_metrics`, "
       "`get_featurewise_weight_based_metrics`, `calculate_max_cosine_sim`, `calculate_misc_metrics`), in double; "
       "`core.json` follows its `CoreEvalOutput` schema\n\n";
  sae::report::MarkdownTable table({"group", "SAEBench metric", "value", "ours (textbook)", "note"});
  table.row({"reconstruction_quality", "explained_variance", shown(b.explained_variance), shown(t.explained_variance),
             "SAEBench's denominator is E‖x‖² − (E‖x‖²/D)² per batch (variance about zero); ours 1 − Σ‖x − x̂‖² / Σ‖x − mean‖²"});
  table.row({"reconstruction_quality", "explained_variance_legacy", shown(b.explained_variance_legacy), "",
             "per row 1 − ‖x − x̂‖² / ‖x − batch mean‖², averaged"});
  table.row({"reconstruction_quality", "mse", shown(b.mse), shown(t.mse),
             "SAEBench divides each row's ‖x − x̂‖² by the batch's row count; ours: mean over all elements"});
  table.row({"reconstruction_quality", "cossim", shown(b.cossim), shown(t.cossim),
             "ours leaves out " + std::to_string(t.rows_without_cossim) + " row(s) where x or x̂ is zero"});
  table.row({"shrinkage", "l2_norm_in", shown(b.l2_norm_in), "", "mean ‖x‖"});
  table.row({"shrinkage", "l2_norm_out", shown(b.l2_norm_out), "", "mean ‖x̂‖"});
  table.row({"shrinkage", "l2_ratio", shown(b.l2_ratio), "", "mean ‖x̂‖/‖x‖ (÷1 where ‖x‖ < 1e-4)"});
  table.row({"shrinkage", "relative_reconstruction_bias", shown(b.relative_reconstruction_bias),
             shown(t.relative_reconstruction_bias), "SAEBench: mean over batches of E‖x̂‖² / E x·x̂; ours over all rows"});
  table.row({"sparsity", "l0", shown(b.l0), "", "mean count of nonzero latents"});
  table.row({"sparsity", "l1", shown(b.l1), "", "mean sum of latents"});
  table.row({"misc_metrics", "frac_alive", shown(m.misc.frac_alive), shown(1 - t.dead_fraction),
             std::to_string(t.alive_latents) + " of " + std::to_string(s.d_sae) + " latents fired"});
  table.row({"misc_metrics", "freq_over_1_percent", shown(m.misc.freq_over_1_percent), "", "latents with density > 0.01"});
  table.row({"misc_metrics", "freq_over_10_percent", shown(m.misc.freq_over_10_percent), "", "latents with density > 0.1"});
  table.row({"misc_metrics", "normalized_freq_over_1_percent", shown(m.misc.normalized_freq_over_1_percent), "",
             "their share of the summed densities"});
  table.row({"misc_metrics", "normalized_freq_over_10_percent", shown(m.misc.normalized_freq_over_10_percent), "", ""});
  table.row({"misc_metrics", "average_max_encoder_cosine_sim", shown(m.misc.average_max_encoder_cosine_sim), "",
             "mean over latents of the largest cosine with another encoder column"});
  table.row({"misc_metrics", "average_max_decoder_cosine_sim", shown(m.misc.average_max_decoder_cosine_sim), "",
             "the same for decoder rows"});
  r << table.str() << "\n"
    << "`eval_result_details` in `core.json` holds each latent's `feature_density`, `consistent_activation_heuristic` "
       "(active rows per prompt it is active in; a prompt is " << s.config.context_size
    << " consecutive rows, meaningful only when the rows are consecutive tokens), `encoder_bias`, `encoder_norm`, "
       "`encoder_decoder_cosine_sim`, `max_encoder_cosine_sim` and `max_decoder_cosine_sim`.\n\n"
    << "## Not computed\n\n"
    << "SAEBench computes these with the language model, running it with the SAE's reconstruction spliced in; from "
       "activations alone they cannot be: ";
  std::vector<std::string> names;
  for (const auto& [group, list] : model_groups())
    for (const auto& n : list) names.push_back("`" + group + "." + n + "`");
  r << sae::report::join(names, ", ") << ". `core.json` leaves their groups out and lists them under "
    << "`eval_result_unstructured.not_computed`.\n\n"
    << "## Differences from a SAEBench run\n\n"
    << "* Every row counts: SAEBench leaves BOS/EOS/PAD tokens out, which stored rows no longer name.\n"
    << "* SAEBench folds decoder norms into the encoder of SAELens releases (`fold_W_dec_norm`); sae-eval scores the "
       "weights as stored. Largest | ‖W_dec[i]‖ − 1 | here: " << fmt("%.3g", m.max_decoder_norm_deviation)
    << (m.max_decoder_norm_deviation > 1e-3 ? " — l1, encoder_bias and encoder_norm would differ after folding" : " (unit rows: the same)")
    << ".\n"
    << (s.folder_bias ? "* `encoder_bias` is the folder's `b_enc` (`apply_b_dec_to_input` false), as SAEBench reports it; "
                        "the model here encodes with `b_enc + W_enc b_dec` on `x - b_dec`, the same pre-activations.\n"
                      : "")
    << "* SAEBench runs in the model's dtype (float32 by default); sae-eval reads rows as float32 and sums in double.\n\n";
}

// The MDL eval's part of report.md.
void mdl_report(std::ostringstream& r, const EvalSetup& s, const sae::eval::MdlMetrics& m) {
  r << "## MDL (description length)\n\n"
    << "* formulas: SAEBench 0.6.0, `sae_bench/evals/mdl/main.py` (`get_min_max_activations`, `build_bins`, "
       "`check_quantised_features_reach_mse_threshold`, `calculate_dl`); `mdl.json` is what its `run_eval` writes\n"
    << "* " << m.rows << " rows; each latent's bins split [0, max(100, its largest value)] into num_bins equal bins ("
    << m.latents_above_floor << " of " << s.d_sae << " latents exceed 100, the others use the floor)\n"
    << "* description length = Σ over latents of H(p) + p · H(histogram), p the fraction of rows where the latent is "
       "> 0, H in bits; mse_loss = √(mean (x̂_q − x)²) / d_in with the codes quantised to bin midpoints; within "
       "threshold when below " << fmt("%g", s.mdl.mse_epsilon_threshold) << "\n\n";
  sae::report::MarkdownTable table({"num_bins", "k", "description_length (bits)", "mse_loss", "within_threshold"});
  for (const auto& e : m.results)
    table.row({std::to_string(e.num_bins), e.k == 0 ? "None" : std::to_string(e.k), shown(e.description_length, "%.6g"),
               shown(e.mse_loss, "%.6g"), e.within_threshold ? "yes" : "no"});
  r << table.str() << "\n"
    << "### As SAEBench computes it (kept here)\n\n"
    << "* The running max starts at 100, so a latent whose values stay below 100 gets bins of width 100 / num_bins: "
       "on activations of small scale most values share bin 0 and the histogram entropy is near 0.\n"
    << "* A latent that is 0 is quantised to its first bin's midpoint (`bucketize` puts 0 in bin 0), not to 0, so "
       "every silent latent adds its midpoint times its decoder row to x̂_q; where that dominates (most latents silent, "
       "the max at its floor), mse_loss halves each time num_bins doubles, as in SAEBench's own expected results.\n"
    << "* The histogram counts every row (the zeros in bin 0), and is then weighted by p; k (a top-k before "
       "quantising) changes mse_loss only, not the description length.\n"
    << "* mse_loss is the root mean square error divided by d_in (not an MSE), as SAEBench names it.\n\n"
    << "### Differences from a SAEBench run\n\n"
    << "* The max, the threshold checks and the description lengths all use these rows; SAEBench draws fresh rows "
       "from its activation store for each (10 buffers for the max, one per check and per description length), so a "
       "value above a latent's max is left out of its histogram there and cannot be here.\n"
    << "* SAEBench computes in float32; sae-eval bins in float32 as torch does (the same edges bit for bit) and sums in "
       "double.\n\n";
}

std::string report_md(const EvalSetup& s, std::int64_t rows, const sae::eval::CoreMetrics* core,
                      const sae::eval::MdlMetrics* mdl) {
  std::ostringstream r;
  std::vector<std::string> evals;
  if (core) evals.push_back("core");
  if (mdl) evals.push_back("mdl");
  r << "# SAEBench evals (offline): " << s.sae_dir.filename().string() << "\n\n"
    << "* SAE: `" << s.sae_dir.string() << "` — " << s.sae_kind << ", d_in " << s.d_in << ", " << s.d_sae << " latents\n"
    << "* data: " << s.data_source << " — " << rows << " rows\n"
    << "* evals: " << sae::report::join(evals, ", ") << "\n\n";
  if (core) core_report(r, s, *core);
  if (mdl) mdl_report(r, s, *mdl);
  return r.str();
}

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-eval", [&] {
    cxxopts::Options options("sae-eval", "SAEBench's evals of an SAE on stored activations, in its formulas: core (the "
                                         "metrics that need no language model) as core.json, mdl (description length) "
                                         "as mdl.json, and a report.");
    sae::examples::FieldFlags field_flags(options);
    // clang-format off
    options.add_options()
      ("evals", "which of SAEBench's evals to run, comma-separated: core, mdl (default: both, every eval built that "
                "needs only activations and the SAE)", cxxopts::value<std::string>()->default_value("core,mdl"))
      ("sae", "the SAE: our checkpoint folder (any architecture) or a SAELens or sparsify folder (detected)",
       cxxopts::value<std::string>())
      ("force-mismatch", "score even when the rows' metadata contradicts the checkpoint's training data")
      ("threads", "OpenMP threads (0 = default)", cxxopts::value<long>()->default_value("0"))
      ("out", "output directory", cxxopts::value<std::string>()->default_value("runs/sae-eval"));
    // clang-format on
    sae::examples::add_data_options(field_flags, "", {"data", "layer", "position"});
    field_flags.declare("", sae::eval::CoreEvalConfig{});
    field_flags.declare("mdl", sae::eval::MdlEvalConfig{});
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    sae::examples::set_threads(sae::examples::int_flag(args, "threads", 0, 4096));
    sae::examples::check_flag(args.count("sae") > 0, "--sae is required: the SAE folder to evaluate");
    const std::string sae_path = args["sae"].as<std::string>();
    const auto data_options = sae::examples::data_flags(args, field_flags);
    sae::examples::check_flag(!data_options.data.empty(), "--data is required: the activations to evaluate on");
    bool run_core = false, run_mdl = false;
    {
      std::istringstream list(args["evals"].as<std::string>());
      for (std::string name; std::getline(list, name, ',');) {
        sae::examples::check_flag(name == "core" || name == "mdl",
                                  "--evals: unknown eval '" + name + "'; built: core, mdl (SAEBench's others are not)");
        (name == "core" ? run_core : run_mdl) = true;
      }
      sae::examples::check_flag(run_core || run_mdl, "--evals: expected core, mdl or both, got '" + args["evals"].as<std::string>() + "'");
    }
    EvalSetup setup;
    field_flags.read(args, setup.config);
    field_flags.read(args, setup.mdl);
    for (const char* flag : {"mdl-num-bins", "mdl-k-values", "mdl-mse-threshold"})
      sae::examples::refuse_idle_flags(args, {{flag, run_mdl, "does nothing without mdl in --evals"}});
    sae::examples::require_outputs_apart(args, {"out"});
    const fs::path out = args["out"].as<std::string>();

    setup.sae_dir = sae_path;
    const auto loaded = sae::load_any_sae<float>(setup.sae_dir);
    setup.sae_kind = loaded.kind;
    setup.sae_config = loaded.config;
    std::visit(
        [&](const auto& m) {
          setup.architecture = std::decay_t<decltype(m)>::architecture;
          setup.d_in = m.input_dim(), setup.d_sae = m.num_latents();
        },
        loaded.model);
    std::cout << "read " << setup.sae_dir.string() << ": " << setup.sae_kind << ", d_in " << setup.d_in << ", "
              << setup.d_sae << " latents\n";
    const auto rows = sae::data::open_rows<float>(data_options.data, data_options.slice());
    setup.data_source = rows->describe();
    setup.data_metadata = rows->metadata();
    sae::examples::check_flag(rows->input_dim() == setup.d_in, "--data: " + rows->describe() + " has rows of " +
                                                                   std::to_string(rows->input_dim()) +
                                                                   " values, the SAE takes " + std::to_string(setup.d_in));
    sae::data::require_same_data(loaded.trained_on, setup.sae_dir.string(), setup.data_metadata, "--data " + rows->describe(),
                                 args.count("force-mismatch") > 0, "--force-mismatch");
    if (!sae::data::metadata_conflicts(loaded.trained_on, setup.data_metadata).empty())
      std::cerr << "warning: --force-mismatch: scoring " << rows->describe() << " although its metadata contradicts "
                << setup.sae_dir.string() << "'s training data\n";

    if (run_mdl)
      for (auto k : setup.mdl.k_values)  // SAEBench's torch.topk refuses k > d_sae
        sae::examples::check_flag(k <= setup.d_sae, "--mdl-k-values: k " + std::to_string(k) + " exceeds the SAE's " +
                                                        std::to_string(setup.d_sae) + " latents");

    sae::io::RunDirectory run(out, "sae-eval");
    sae::examples::write_resolved_config(run, options, args);
    std::cout << "data: " << setup.data_source << " (" << rows->rows() << " rows; batches of " << setup.config.batch_rows()
              << " rows = " << setup.config.batch_size_prompts << " prompts x " << setup.config.context_size << ")\n";
    std::optional<sae::eval::CoreMetrics> core;
    std::optional<sae::eval::MdlMetrics> mdl;
    std::vector<std::string> written;
    if (run_core) {
      const auto start = std::chrono::steady_clock::now();
      core = std::visit([&](const auto& model) { return sae::eval::core_metrics(model, *rows, setup.config); }, loaded.model);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (loaded.folder_encoder_bias) {  // the folder's own b_enc, as SAEBench reports it (the model's has b_dec folded in)
        const auto& b = *loaded.folder_encoder_bias;
        core->latents.encoder_bias.assign(b.data(), b.data() + b.size());
        setup.folder_bias = true;
      }
      sae::report::write_text_file(run.stage("core.json"), core_json(setup, *core).dump() + "\n");
      written.push_back((out / "core.json").string());
      const auto& b = core->saebench;
      std::cout << "core: scored " << core->rows << " rows in " << core->batches << " batches (" << fmt("%.1f", seconds)
                << " s)\n"
                << "explained variance (SAEBench) " << shown(b.explained_variance, "%.4f") << ", legacy "
                << shown(b.explained_variance_legacy, "%.4f") << ", textbook "
                << shown(core->textbook.explained_variance, "%.4f") << "\n"
                << "cossim " << shown(b.cossim, "%.4f") << ", l2_ratio " << shown(b.l2_ratio, "%.4f") << ", L0 "
                << shown(b.l0, "%.2f") << ", alive " << core->textbook.alive_latents << "/" << setup.d_sae << "\n"
                << "not computed (need the language model): KL divergence and CE loss\n";
    }
    if (run_mdl) {
      const auto start = std::chrono::steady_clock::now();
      mdl = std::visit([&](const auto& model) { return sae::eval::mdl_metrics(model, *rows, setup.mdl, setup.config.batch_rows()); },
                       loaded.model);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      sae::report::write_text_file(run.stage("mdl.json"), mdl_json(setup, *mdl).dump() + "\n");
      written.push_back((out / "mdl.json").string());
      std::cout << "mdl: " << mdl->results.size() << " settings on " << mdl->rows << " rows (" << fmt("%.1f", seconds)
                << " s)\n";
      for (const auto& e : mdl->results)
        std::cout << "  num_bins " << e.num_bins << ", k " << (e.k == 0 ? std::string("None") : std::to_string(e.k))
                  << ": description length " << shown(e.description_length, "%.4f") << " bits, mse_loss "
                  << shown(e.mse_loss, "%.4g") << (e.within_threshold ? " (within threshold)" : "") << "\n";
    }
    sae::report::write_text_file(run.stage("report.md"),
                                 report_md(setup, rows->rows(), core ? &*core : nullptr, mdl ? &*mdl : nullptr));
    sae::examples::test_fault_point("before-commit");
    run.commit();
    std::cout << "wrote " << sae::report::join(written, ", ") << ", report.md\n";
    return 0;
  });
}
