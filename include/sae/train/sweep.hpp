// Training many TopK SAEs on slices of one activation file, resumably. The report-001 grid (one
// slice, K x latent_dim, one SAE after another) and the report-002 sweep (every (layer, position)
// x K x latent_dim, a slice's SAEs in one shared pass) are two plans for the same run:
//
// - each finished SAE is written at once, with its fingerprint, as one JSON file in the run's
//   staging folder (io::RunDirectory), so a killed run resumes where it stopped;
// - results of earlier runs are reused only when their fingerprints equal this run's, and a
//   committed one made with other settings stops the run before any training (io::reusable_result);
// - a progress line per epoch carries the ETA of the whole run.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/memory.hpp>
#include <sae/core/types.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/open_rows.hpp>
#include <sae/data/split.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/array_file.hpp>
#include <sae/io/result_cache.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/recipe.hpp>
#include <sae/model/registry.hpp>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/train/l0_search.hpp>
#include <sae/optim/adam.hpp>
#include <sae/train/callbacks.hpp>
#include <sae/train/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace sae {

using Slice = std::optional<data::LayerPosition>;  // a (layer, position) of a 4-D array; none for 2-D

// One kind of SAE a plan trains at every (slice, K, latent_dim): a registered architecture, its
// config made from the plan's TopK options (shared fields by key, then `model`'s fields), and how
// it reaches the grid's K. The default is the reports' TopK.
struct SweepVariant {
  std::string name = "topk";          // in result names and labels
  std::string architecture = "topk";  // model/registry.hpp
  io::Json model = io::Json::object();  // field values over the plan's options, by key ({"aux_k": 4})
  std::optional<Recipe> recipe;       // instead of the plan's (TopK only)
  // JumpReLU has no K: search its sparsity for validation L0 = K with up to this many trainings
  // (train/l0_search.hpp), keeping the closest; 0 = train once as configured.
  int l0_search_runs = 0;
  double l0_tolerance = 0.1;  // an L0 within this fraction of K counts as matched
};

struct SweepPlan {
  std::vector<Slice> slices = {std::nullopt};
  std::vector<index_t> ks, latents;
  std::vector<SweepVariant> variants = {SweepVariant{}};
  TrainConfig train;
  AdamConfig adam;
  std::optional<double> validation_fraction;  // the split: data::SplitPolicy{this, train.seed}
  // Options every SAE of the plan gets (decoder_bias, tied_init, aux_k, ...: the reports' TopK by
  // default); its sizes, selection and seed are ignored (each config sets its own).
  TopKConfig model;
  Recipe recipe = Recipe::reports;  // applied to each TopK config (model/recipe.hpp)
  bool force = false;           // retrain every SAE, reusing nothing
  bool keep_weights = false;    // also checkpoint each SAE under weights/<name>/
  bool shared_pass = true;      // a slice's SAEs of one variant train together in one pass (false: one after another)
  bool slice_in_names = true;   // results/L{l}_P{p}_K{k}_d{d}.json (false: K{k}_d{d}.json, one slice)
  bool score_training_rows = false;  // also record each SAE's dead fraction on the training rows
  int max_slices = 0;           // train at most this many slices in this run (0: all)
  std::string results_folder = "configs";
  // Train only this shard's SAEs (a job array's task `index` of `count`; see sweep_shard_of).
  int shard_index = 0, shard_count = 1;
  // Folders holding results of other runs of this plan (a sharded run's shards): reused as an
  // unfinished run's would be, when their fingerprints match.
  std::vector<std::filesystem::path> reuse_from;

  // Whether result names carry the variant (any plan but the reports' TopK alone).
  bool names_variants() const { return variants.size() != 1 || variants.front().name != "topk"; }
};

// One SAE of a plan: the slice's and the variant's indices in the plan, K and latent_dim.
struct SweepTask {
  std::size_t slice = 0;
  index_t k = 0, latents = 0;
  std::size_t variant = 0;
};

// Every SAE of the plan in plan order: slice, variant, latent_dim, K.
inline std::vector<SweepTask> sweep_tasks(const SweepPlan& plan) {
  std::vector<SweepTask> tasks;
  for (std::size_t si = 0; si < plan.slices.size(); ++si)
    for (std::size_t vi = 0; vi < plan.variants.size(); ++vi)
      for (index_t d : plan.latents)
        for (index_t k : plan.ks) tasks.push_back({si, k, d, vi});
  return tasks;
}

// The work of a task in units of one latent_dim-sized epoch: an L0 search may train several times.
inline double sweep_task_units(const SweepPlan& plan, const SweepTask& t) {
  return static_cast<double>(t.latents) * std::max(1, plan.variants[t.variant].l0_search_runs);
}

// Every SAE of the plan, largest first (an epoch costs about latent_dim, then K), ties in plan
// order: the order a distributed run hands them out in, so the longest ones do not come last.
inline std::vector<SweepTask> sweep_tasks_largest_first(const SweepPlan& plan) {
  std::vector<SweepTask> tasks = sweep_tasks(plan);
  std::stable_sort(tasks.begin(), tasks.end(), [&](const SweepTask& a, const SweepTask& b) {
    const double ua = sweep_task_units(plan, a), ub = sweep_task_units(plan, b);
    return ua != ub ? ua > ub : a.k > b.k;
  });
  return tasks;
}

// Which shard trains each SAE: dealt round-robin from the largest-first order, so every shard
// gets a like share of the work. Indexed by the task's position in plan order (sweep_tasks).
inline std::vector<int> sweep_shard_of(const SweepPlan& plan) {
  const auto plan_index = [&](const SweepTask& t) {
    const auto d = std::find(plan.latents.begin(), plan.latents.end(), t.latents) - plan.latents.begin();
    const auto k = std::find(plan.ks.begin(), plan.ks.end(), t.k) - plan.ks.begin();
    return ((t.slice * plan.variants.size() + t.variant) * plan.latents.size() + static_cast<std::size_t>(d)) * plan.ks.size() +
           static_cast<std::size_t>(k);
  };
  const auto tasks = sweep_tasks_largest_first(plan);
  std::vector<int> shard(tasks.size(), 0);
  for (std::size_t j = 0; j < tasks.size(); ++j)
    shard[plan_index(tasks[j])] = static_cast<int>(j % static_cast<std::size_t>(std::max(plan.shard_count, 1)));
  return shard;
}

struct SweepResult {
  Slice slice;
  index_t k = 0, latents = 0;
  std::string variant;      // empty for the reports' TopK alone (SweepPlan::names_variants)
  metrics::Evaluation val;  // on the validation rows (activation_frequency not kept)
  double seconds = 0;       // training time (an even share of a shared pass; every training of an L0 search)
  index_t epochs = 0;       // epochs run
  // What else the variant records: train_dead_fraction (score_training_rows); an L0 search's
  // sparsity_coefficient, initial_l0, search_runs and l0_matched.
  io::Json extra = io::Json::object();
  io::Json fingerprint;     // what decided it (sweep_fingerprint)
};

// ---- names, JSON and fingerprints ----

inline std::string sweep_result_name(const SweepPlan& plan, const Slice& slice, index_t k, index_t latents,
                                     const std::string& variant = "") {
  std::string name = "K" + std::to_string(k) + "_d" + std::to_string(latents);
  if (!variant.empty()) name = variant + "_" + name;
  if (plan.slice_in_names && slice)
    name = "L" + std::to_string(slice->layer) + "_P" + std::to_string(slice->position) + "_" + name;
  return name;
}

inline io::Json to_json(const SweepResult& r) {
  io::Json j = metrics::to_json(r.val);
  j["fingerprint"] = r.fingerprint;
  if (r.slice) {
    j["layer"] = r.slice->layer;
    j["position"] = r.slice->position;
  }
  if (!r.variant.empty()) j["variant"] = r.variant;
  j["k"] = r.k;
  j["latent_dim"] = r.latents;
  j["seconds"] = r.seconds;
  j["epochs"] = r.epochs;
  if (!r.extra.as_object().empty()) j["extra"] = r.extra;
  return j;
}

inline SweepResult sweep_result_from_json(const io::Json& j, const std::string& source) {
  try {
    SweepResult r;
    if (j.find("layer")) r.slice = data::LayerPosition{j.at("layer").as_int(), j.at("position").as_int()};
    if (const io::Json* v = j.find("variant")) r.variant = v->as_string();
    r.k = j.at("k").as_int();
    r.latents = j.at("latent_dim").as_int();
    r.val = metrics::evaluation_from_json(j);
    r.seconds = j.at("seconds").as_number();
    r.epochs = j.at("epochs").as_int();
    if (const io::Json* e = j.find("extra")) {
      if (!e->is_object()) throw invalid_argument("\"extra\" is not an object");
      r.extra = *e;
    }
    r.fingerprint = j.at("fingerprint");
    return r;
  } catch (const error& e) {
    throw io_error(source, std::string("not a sweep result (") + e.what() + "); delete it or pass --force");
  }
}

// Every setting that changes the weights: the training fields and the optimizer's (field lists).
inline io::Json training_fingerprint(const TrainConfig& t, const AdamConfig& a) {
  io::Json j = io::fields_to_json(t);
  j["optimizer"] = "adam";
  const io::Json optimizer = io::fields_to_json(a);
  for (const auto& [key, value] : optimizer.as_object()) j[key] = value;
  return j;
}

// What decides every SAE of a run: the library version, the data file's content, the split and
// the training settings.
inline io::Json sweep_run_fingerprint(const io::Json& data, const SweepPlan& plan, index_t rows) {
  io::Json f = io::Json::object();
  f["library"] = io::library_fingerprint();
  f["data"] = data;
  f["split"] = data::choose_split(rows, data::SplitPolicy{plan.validation_fraction, plan.train.seed}).description;
  f["training"] = training_fingerprint(plan.train, plan.adam);
  return f;
}

// ... and one SAE: the above plus its slice and model; a variant other than the reports' TopK adds
// its name, architecture and L0 search, so results of different variants never stand in for each other.
template <class Config>
io::Json sweep_fingerprint(const io::Json& run, const Slice& slice, const Config& model, const SweepVariant* variant = nullptr) {
  io::Json f = run;
  if (slice) {
    f["layer"] = slice->layer;
    f["position"] = slice->position;
  }
  if (variant) {
    f["variant"] = variant->name;
    f["architecture"] = variant->architecture;
    if (variant->l0_search_runs > 0) {
      io::Json search = io::Json::object();
      search["runs"] = variant->l0_search_runs;
      search["tolerance"] = variant->l0_tolerance;
      f["l0_search"] = search;
    }
  }
  io::Json m = io::fields_to_json(model);
  if constexpr (std::is_same_v<Config, TopKConfig>) m["encoder_precision"] = name(model.encoder_precision);
  f["model"] = m;
  return f;
}

namespace detail {

inline std::string eta_text(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  return buf;
}

// Progress of a whole run. The ETA assumes an epoch costs time proportional to latent_dim (the
// encoder GEMM and Adam dominate).
class SweepProgress {
 public:
  SweepProgress(SweepOutput out, double total_units)
      : out_(out), remaining_(total_units), start_(std::chrono::steady_clock::now()) {}

  void skip(double units) { remaining_ -= units; }
  // The next training unit: `label` names it, `models` train together, `units` per epoch.
  void begin(std::string label, index_t models, double units_per_epoch) {
    label_ = std::move(label), models_ = models, units_per_epoch_ = units_per_epoch, calls_ = 0;
  }
  void set_interrupt(std::function<void()> f) { interrupt_ = std::move(f); }

  template <class Model>
  bool on_epoch_end(const EpochStats& s, const Model&) {
    if (++calls_ % models_ != 0) return false;  // once per epoch, after the unit's last model
    remaining_ = std::max(0.0, remaining_ - units_per_epoch_);  // an L0 search may stop before its budgeted trainings
    done_ += units_per_epoch_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char buf[160];
    if (models_ == 1)
      std::snprintf(buf, sizeof buf, " epoch %lld/%lld  loss %.5f  val EV %.4f", static_cast<long long>(s.epoch),
                    static_cast<long long>(s.epochs), s.train_loss, s.validation_ev.value_or(0.0));
    else
      std::snprintf(buf, sizeof buf, " epoch %lld/%lld, %lld SAEs", static_cast<long long>(s.epoch),
                    static_cast<long long>(s.epochs), static_cast<long long>(models_));
    progress_line(out_, label_ + buf + "  | ETA " + eta_text(elapsed / done_ * remaining_), s.epoch == s.epochs);
    if (interrupt_) interrupt_();
    return false;
  }

 private:
  SweepOutput out_;
  double remaining_, done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::function<void()> interrupt_;
  std::string label_;
  index_t models_ = 1, calls_ = 0;
  double units_per_epoch_ = 0;
};

}  // namespace detail

// A plan bound to its data: the configs, names and fingerprints of its SAEs, and the training of
// one, which every way of running a sweep shares (run_sweep below, mpi::run_sweep across ranks).
class SweepJob {
 public:
  // Checks the plan and that what trains at once fits in memory: a slice's SAEs together (shared
  // pass) or the largest alone.
  SweepJob(const data::ArraySet& data, const SweepPlan& plan) : data_(data), plan_(plan) {
    const auto& shape = data.shape();
    input_dim_ = shape.back();
    const index_t rows = shape.front();
    train_rows_ = static_cast<index_t>(
        data::choose_split(rows, data::SplitPolicy{plan.validation_fraction, plan.train.seed}).train.size());
    detail::require(!plan.ks.empty() && !plan.latents.empty() && !plan.slices.empty() && !plan.variants.empty(), "run_sweep()",
                    "the plan needs at least one K, one latent_dim, one slice and one variant");
    detail::require(plan.shard_count >= 1 && plan.shard_index >= 0 && plan.shard_index < plan.shard_count, "run_sweep()",
                    "shard " + std::to_string(plan.shard_index) + " of " + std::to_string(plan.shard_count) +
                        ": expected 0 <= index < count");
    for (index_t k : plan.ks)
      for (index_t d : plan.latents)
        detail::require(k >= 1 && k <= d, "run_sweep()",
                        "every K must be in [1, latent_dim]: K=" + std::to_string(k) + " with latent_dim=" + std::to_string(d));
    check_variants();
    double bytes = 0;
    for (index_t d : plan.latents)
      for (index_t k : plan.ks) {
        // Every architecture here has TopK's parameters (JumpReLU one vector more); a shared pass
        // trains one variant's SAEs of a slice at a time.
        const double b = training_memory_bytes<float>(config(k, d), plan.train.batch_size);
        bytes = plan.shared_pass ? bytes + b : std::max(bytes, b);
      }
    require_memory(bytes + static_cast<double>(rows) * static_cast<double>(input_dim_) * sizeof(float),
                   "training " + std::string(plan.shared_pass ? "these SAEs together" : "the largest SAE") + " on " +
                       std::to_string(rows) + " x " + std::to_string(input_dim_) + " activations");
    run_fingerprint_ = sweep_run_fingerprint(data.fingerprint(), plan, rows);
  }

  const SweepPlan& plan() const { return plan_; }

  // The plan's TopK options at (K, latent_dim), its recipe applied: the reports' TopK and the base
  // every variant's config starts from.
  TopKConfig config(index_t k, index_t d, const std::optional<Recipe>& recipe = std::nullopt) const {
    TopKConfig c = plan_.model;
    c.input_dim = input_dim_, c.num_latents = d, c.k = k, c.selection = Selection::value;
    c.seed = plan_.train.seed;
    return apply_recipe(c, recipe.value_or(plan_.recipe), train_rows_);
  }
  // A task's config as its architecture's Config: the base's shared fields, then the variant's.
  template <class Model>
  typename Model::Config model_config(const SweepTask& t) const {
    const SweepVariant& v = plan_.variants[t.variant];
    typename Model::Config c{};
    if constexpr (std::is_same_v<typename Model::Config, TopKConfig>) c = config(t.k, t.latents, v.recipe);
    else io::assign_shared_fields(config(t.k, t.latents), c);
    try {
      io::assign_fields(v.model, c);
      c.validate(Model::class_name);
    } catch (const error& e) {
      throw invalid_argument((plan_.names_variants() ? "variant '" + v.name + "' at " : std::string()) + "K=" +
                             std::to_string(t.k) + ", d=" + std::to_string(t.latents) + ": " + e.what());
    }
    return c;
  }
  // Calls f(type_tag<Model>{}) for the task's architecture.
  template <class F>
  decltype(auto) with_model(const SweepTask& t, F&& f) const {
    const SweepVariant& v = plan_.variants[t.variant];
    try {
      return with_architecture<float>(v.architecture, std::forward<F>(f));
    } catch (const invalid_argument& e) {
      if (std::string(e.what()).rfind("expected ", 0) != 0) throw;
      throw invalid_argument("variant '" + v.name + "': architecture " + e.what());
    }
  }

  io::Json fingerprint(const SweepTask& t) const {
    const bool named = plan_.names_variants();
    return with_model(t, [&](auto tag) {
      return sweep_fingerprint(run_fingerprint_, plan_.slices[t.slice], model_config<typename decltype(tag)::type>(t),
                               named ? &plan_.variants[t.variant] : nullptr);
    });
  }
  std::string variant_name(const SweepTask& t) const { return plan_.names_variants() ? plan_.variants[t.variant].name : ""; }
  std::string name(const SweepTask& t) const {
    return sweep_result_name(plan_, plan_.slices[t.slice], t.k, t.latents, variant_name(t));
  }
  // The result file, relative to the run folder.
  std::string file(const SweepTask& t) const { return plan_.results_folder + "/" + name(t) + ".json"; }

  // The weights of `t`, relative to the run folder.
  std::string weights(const SweepTask& t) const { return "weights/" + name(t); }

  // An earlier result of `t` with this run's fingerprint (adopted into `run`), if any. With
  // --keep-weights, only one whose own weights sit beside it (adopted too); `*without_weights` is
  // set when a result was passed over for lacking them.
  std::optional<SweepResult> reusable(const io::RunDirectory& run, const SweepTask& t, bool* without_weights = nullptr) const {
    if (plan_.force) return std::nullopt;
    const Slice& s = plan_.slices[t.slice];
    const auto mismatch = [&](const io::Json& j) -> std::string {
      const auto r = sweep_result_from_json(j, file(t));
      if (r.k == t.k && r.latents == t.latents && r.variant == variant_name(t) &&
          (!plan_.slice_in_names || !s || (r.slice && r.slice->layer == s->layer && r.slice->position == s->position)))
        return "";
      return "it holds " + (r.variant.empty() ? std::string() : r.variant + ", ") +
             (r.slice ? data::describe(*r.slice) + ", " : std::string()) + "K=" + std::to_string(r.k) + ", d=" +
             std::to_string(r.latents);
    };
    std::vector<std::filesystem::path> companions;
    if (plan_.keep_weights) companions.push_back(weights(t));  // written whole (save_checkpoint)
    std::string lacking;
    if (const auto j = io::reusable_result(run, file(t), fingerprint(t), mismatch, plan_.reuse_from, companions, &lacking))
      return sweep_result_from_json(*j, (run.out() / file(t)).string());
    if (without_weights && !lacking.empty()) *without_weights = true;
    return std::nullopt;
  }

  // reusable() for each of `tasks`, with a line saying how many were reused and how many are
  // retrained because their weights are missing (or belong to another run) under --keep-weights.
  std::vector<std::optional<SweepResult>> reusable_all(const io::RunDirectory& run, const std::vector<SweepTask>& tasks,
                                                       SweepOutput out) const {
    std::vector<std::optional<SweepResult>> found(tasks.size());
    std::size_t reused = 0, without_weights = 0;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      bool lacking = false;
      reused += (found[i] = reusable(run, tasks[i], &lacking)).has_value();
      without_weights += lacking && !found[i];
    }
    if (reused > 0)
      progress_line(out, std::to_string(reused) + " of " + std::to_string(tasks.size()) +
                             " SAEs reused from earlier runs (their fingerprints match this run's)", true);
    if (without_weights > 0)
      progress_line(out, std::to_string(without_weights) + " SAEs have results from an earlier run but not their own "
                             "weights; retraining them to keep the weights (--keep-weights)", true);
    return found;
  }

  // The training and validation rows of a slice.
  std::pair<Matrix<float>, Matrix<float>> slice_data(std::size_t slice) const {
    const Matrix<float> all = data::read_all_inputs(*data_.rows<float>(plan_.slices[slice]));
    const auto split = data::choose_split(all.rows(), data::SplitPolicy{plan_.validation_fraction, plan_.train.seed});
    return {data::take_rows(all, split.train), data::take_rows(all, split.validation)};
  }

  // A fresh trainer per fit: fit() steps the trainer's own optimizer, whose moments would carry over.
  template <class Model>
  auto trainer() const {
    return make_trainer<Model>(plan_.train, Adam<float>(plan_.adam));
  }

  // Scores a trained SAE and writes its result (and weights, if kept) under `staging`.
  template <class Model>
  SweepResult finish(const Model& model, const SweepTask& t, const Matrix<float>& train, const Matrix<float>& validation,
                     double seconds, index_t epochs, const std::filesystem::path& staging, io::Json extra = io::Json::object()) const {
    SweepResult r;
    r.slice = plan_.slices[t.slice], r.k = t.k, r.latents = t.latents, r.variant = variant_name(t);
    r.seconds = seconds, r.epochs = epochs;
    r.val = metrics::evaluate(model, validation);
    r.val.activation_frequency.clear();
    r.extra = std::move(extra);
    if (plan_.score_training_rows) r.extra["train_dead_fraction"] = metrics::evaluate(model, train).dead_fraction;
    r.fingerprint = fingerprint(t);
    if (plan_.keep_weights) {
      const auto folder = io::RunDirectory::stage_in(staging, weights(t));
      save_checkpoint(folder, model);
      io::write_companion_fingerprint(folder, r.fingerprint);
    }
    io::write_text_atomically(io::RunDirectory::stage_in(staging, file(t)), to_json(r).dump() + "\n");
    return r;
  }

  // Trains `t` alone on its slice's rows (an L0 search: the closest of its trainings) and finishes it.
  template <class... Callbacks>
  SweepResult train(const SweepTask& t, const Matrix<float>& train, const Matrix<float>& validation,
                    const std::filesystem::path& staging, Callbacks&&... callbacks) const {
    return with_model(t, [&](auto tag) {
      using Model = typename decltype(tag)::type;
      if constexpr (std::is_same_v<Model, JumpReluAutoencoder<float>>) {
        if (plan_.variants[t.variant].l0_search_runs > 0) return train_at_l0(t, train, validation, staging, callbacks...);
      }
      Model model(model_config<Model>(t));
      const auto summary = trainer<Model>().fit(model, train, &validation, callbacks...);
      return finish(model, t, train, validation, summary.seconds, static_cast<index_t>(summary.history.size()), staging);
    });
  }

  // Trains a slice's tasks of one variant together in one pass over the rows (fit_shared), the
  // pass's time split evenly, and finishes each.
  template <class... Callbacks>
  std::vector<SweepResult> train_shared(const std::vector<SweepTask>& tasks, const Matrix<float>& train,
                                        const Matrix<float>& validation, const std::filesystem::path& staging,
                                        Callbacks&&... callbacks) const {
    if (tasks.empty()) return {};
    return with_model(tasks.front(), [&](auto tag) {
      using Model = typename decltype(tag)::type;
      std::vector<Model> models;
      for (const auto& t : tasks) models.emplace_back(model_config<Model>(t));
      const auto summaries = trainer<Model>().fit_shared(models, train, &validation, callbacks...);
      std::vector<SweepResult> out;
      for (std::size_t m = 0; m < models.size(); ++m)
        out.push_back(finish(models[m], tasks[m], train, validation, summaries[m].seconds / static_cast<double>(models.size()),
                             static_cast<index_t>(summaries[m].history.size()), staging));
      return out;
    });
  }

 private:
  // Every variant's configs are made (and so checked) before anything trains.
  void check_variants() const {
    for (std::size_t vi = 0; vi < plan_.variants.size(); ++vi) {
      const SweepVariant& v = plan_.variants[vi];
      for (std::size_t o = 0; o < vi; ++o)
        detail::require(plan_.variants[o].name != v.name, "run_sweep()", "two variants are named '" + v.name + "'");
      detail::require(v.l0_search_runs == 0 || v.architecture == "jumprelu", "run_sweep()",
                      "variant '" + v.name + "': an L0 search is for JumpReLU (the others have a K)");
      for (index_t d : plan_.latents)
        for (index_t k : plan_.ks) {
          const SweepTask t{0, k, d, vi};
          with_model(t, [&](auto tag) { model_config<typename decltype(tag)::type>(t); });
        }
    }
  }

  // JumpReLU at validation L0 = K (train/l0_search.hpp): the closest training, with the search's record.
  template <class... Callbacks>
  SweepResult train_at_l0(const SweepTask& t, const Matrix<float>& train, const Matrix<float>& validation,
                          const std::filesystem::path& staging, Callbacks&&... callbacks) const {
    using Model = JumpReluAutoencoder<float>;
    const SweepVariant& v = plan_.variants[t.variant];
    std::optional<Model> best_model;  // only the closest so far is kept (the search's rule: strictly closer wins)
    double best_gap = std::numeric_limits<double>::infinity(), seconds = 0;
    index_t epochs = 0;
    const auto search = search_jumprelu_l0(model_config<Model>(t), t.k, v.l0_search_runs, v.l0_tolerance, [&](const JumpReluConfig& c) {
      Model model(c);
      const auto summary = trainer<Model>().fit(model, train, &validation, callbacks...);
      seconds += summary.seconds;
      const double l0 = metrics::evaluate(model, validation).l0, gap = std::abs(l0 - static_cast<double>(t.k));
      if (gap < best_gap) best_gap = gap, best_model.emplace(std::move(model)), epochs = static_cast<index_t>(summary.history.size());
      return l0;
    });
    const JumpReluConfig& best = search.steps[search.best].config;
    io::Json extra = io::Json::object();
    extra["sparsity_coefficient"] = best.sparsity_coefficient;
    extra["initial_l0"] = best.initial_l0;
    extra["search_runs"] = static_cast<index_t>(search.steps.size());
    extra["l0_matched"] = search.matched;
    return finish(*best_model, t, train, validation, seconds, epochs, staging, std::move(extra));
  }

  const data::ArraySet& data_;
  SweepPlan plan_;
  index_t input_dim_ = 0, train_rows_ = 0;
  io::Json run_fingerprint_;
};

// The run folder of shard `index` of `count` under `out` (out/shards/<index>-of-<count>); `out`,
// where the shards' results are assembled, is claimed for `program` first (io::RunDirectory).
inline std::filesystem::path sweep_shard_folder(const std::filesystem::path& out, int index, int count,
                                                const std::string& program) {
  io::RunDirectory::require_owned_by(out, program);
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) throw io_error(out.string(), "cannot create the output directory: " + ec.message());
  io::RunDirectory::mark(out, program);
  return out / "shards" / (std::to_string(index) + "-of-" + std::to_string(count));
}

// The folders of a sharded run's shards under `out` (out/shards/*, and their unfinished runs'
// staging folders), whose results the run assembling them reuses (SweepPlan::reuse_from).
inline std::vector<std::filesystem::path> sweep_shard_folders(const std::filesystem::path& out) {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(out / "shards", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    found.push_back(it->path());
    for (auto s = std::filesystem::directory_iterator(it->path(), ec); !ec && s != std::filesystem::directory_iterator(); s.increment(ec))
      if (s->path().filename().string().rfind(io::RunDirectory::kStagingPrefix, 0) == 0) found.push_back(s->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Runs (or resumes) `plan` on `view` into `run` and returns every result of the plan found or
// trained, in plan order (slice, variant, latent_dim, K). The caller commits `run`. `interrupt`
// (tests) is called after each epoch and may throw to simulate a kill.
inline std::vector<SweepResult> run_sweep(const data::ArraySet& data, const SweepPlan& plan, io::RunDirectory& run,
                                          SweepOutput out, std::function<void()> interrupt = {}) {
  const SweepJob job(data, plan);
  const auto tasks = sweep_tasks(plan);
  const auto shard = sweep_shard_of(plan);
  // Every result already there is checked before any training.
  std::vector<std::optional<SweepResult>> found = job.reusable_all(run, tasks, out);
  // This run trains an SAE that is not found and belongs to its shard.
  const auto wanted = [&](std::size_t i) { return !found[i] && shard[i] == plan.shard_index; };

  double total_units = 0;
  for (const auto& t : tasks) total_units += sweep_task_units(plan, t);
  const auto epochs = static_cast<double>(plan.train.epochs);
  detail::SweepProgress progress(out, total_units * epochs);
  progress.set_interrupt(std::move(interrupt));
  const auto slice_label = [](const Slice& s) {
    return s ? "layer " + std::to_string(s->layer) + " position " + std::to_string(s->position) : std::string();
  };

  const std::size_t per_slice = plan.variants.size() * plan.latents.size() * plan.ks.size();
  const int units = static_cast<int>(plan.slices.size() * (plan.shared_pass ? plan.variants.size() : per_slice));
  int trained_slices = 0, unit = 0;
  for (std::size_t si = 0; si < plan.slices.size(); ++si) {
    const Slice& s = plan.slices[si];
    const std::size_t first = si * per_slice, last = first + per_slice;
    double slice_units = 0, pending_units = 0;
    for (std::size_t i = first; i < last; ++i) {
      slice_units += sweep_task_units(plan, tasks[i]);
      if (wanted(i)) pending_units += sweep_task_units(plan, tasks[i]);
    }
    progress.skip((slice_units - pending_units) * epochs);
    const bool train_now = pending_units > 0 && (plan.max_slices <= 0 || trained_slices < plan.max_slices);
    if (!train_now) progress.skip(pending_units * epochs);
    trained_slices += train_now;

    Matrix<float> train, validation;
    if (train_now) std::tie(train, validation) = job.slice_data(si);

    if (plan.shared_pass) {
      for (std::size_t vi = 0; vi < plan.variants.size(); ++vi) {
        ++unit;
        std::vector<SweepTask> pending;
        std::vector<std::size_t> where;
        double group_units = 0;
        for (std::size_t i = first; i < last; ++i)
          if (tasks[i].variant == vi && train_now && wanted(i))
            pending.push_back(tasks[i]), where.push_back(i), group_units += sweep_task_units(plan, tasks[i]);
        if (pending.empty()) continue;
        progress.begin("[group " + std::to_string(unit) + "/" + std::to_string(units) + " " + slice_label(s) +
                           (plan.names_variants() ? " " + plan.variants[vi].name : "") + "]",
                       static_cast<index_t>(pending.size()), group_units);
        auto results = job.train_shared(pending, train, validation, run.staging(), progress);
        for (std::size_t m = 0; m < results.size(); ++m) found[where[m]] = std::move(results[m]);
      }
    } else {
      for (std::size_t i = first; i < last; ++i) {
        const SweepTask& t = tasks[i];
        const std::string label = "[config " + std::to_string(++unit) + "/" + std::to_string(units) +
                                  (s && plan.slice_in_names ? " " + slice_label(s) : "") +
                                  (plan.names_variants() ? " " + plan.variants[t.variant].name : "") + " K=" +
                                  std::to_string(t.k) + " d=" + std::to_string(t.latents) + "]";
        if (found[i]) {
          progress_line(out, label + " reused: " + (run.out() / job.file(t)).string() +
                                 " has this run's fingerprint (--force retrains)",
                        true);
        } else if (train_now && wanted(i)) {
          progress.begin(label, 1, static_cast<double>(t.latents));
          found[i] = job.train(t, train, validation, run.staging(), progress);
        }
      }
    }
  }
  std::vector<SweepResult> results;
  for (auto& r : found)
    if (r) results.push_back(std::move(*r));
  return results;
}

}  // namespace sae
