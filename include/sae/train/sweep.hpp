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
#include <sae/data/split.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/array_file.hpp>
#include <sae/io/result_cache.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/recipe.hpp>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/optim/adam.hpp>
#include <sae/train/callbacks.hpp>
#include <sae/train/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace sae {

using Slice = std::optional<data::LayerPosition>;  // a (layer, position) of a 4-D array; none for 2-D

struct SweepPlan {
  std::vector<Slice> slices = {std::nullopt};
  std::vector<index_t> ks, latents;
  TrainConfig train;
  AdamConfig adam;
  std::optional<double> validation_fraction;  // the split: data::SplitPolicy{this, train.seed}
  // Options every SAE of the plan gets (decoder_bias, tied_init, aux_k, ...: the reports' TopK by
  // default); its sizes, selection and seed are ignored (each config sets its own).
  TopKConfig model;
  Recipe recipe = Recipe::reports;  // applied to each SAE's config (model/recipe.hpp)
  bool force = false;           // retrain every SAE, reusing nothing
  bool keep_weights = false;    // also checkpoint each SAE under weights/<name>/
  bool shared_pass = true;      // a slice's SAEs train together in one pass (false: one after another)
  bool slice_in_names = true;   // results/L{l}_P{p}_K{k}_d{d}.json (false: K{k}_d{d}.json, one slice)
  int max_slices = 0;           // train at most this many slices in this run (0: all)
  std::string results_folder = "configs";
  // Train only this shard's SAEs (a job array's task `index` of `count`; see sweep_shard_of).
  int shard_index = 0, shard_count = 1;
  // Folders holding results of other runs of this plan (a sharded run's shards): reused as an
  // unfinished run's would be, when their fingerprints match.
  std::vector<std::filesystem::path> reuse_from;
};

// One SAE of a plan: the slice's index in plan.slices, K and latent_dim.
struct SweepTask {
  std::size_t slice = 0;
  index_t k = 0, latents = 0;
};

// Every SAE of the plan, largest first (an epoch costs about latent_dim, then K), ties in plan
// order: the order a distributed run hands them out in, so the longest ones do not come last.
inline std::vector<SweepTask> sweep_tasks_largest_first(const SweepPlan& plan) {
  std::vector<SweepTask> tasks;
  for (std::size_t si = 0; si < plan.slices.size(); ++si)
    for (index_t d : plan.latents)
      for (index_t k : plan.ks) tasks.push_back({si, k, d});
  std::stable_sort(tasks.begin(), tasks.end(), [](const SweepTask& a, const SweepTask& b) {
    return a.latents != b.latents ? a.latents > b.latents : a.k > b.k;
  });
  return tasks;
}

// Which shard trains each SAE: dealt round-robin from the largest-first order, so every shard
// gets a like share of the work. Indexed by the task's position in plan order (slice, latent_dim, K).
inline std::vector<int> sweep_shard_of(const SweepPlan& plan) {
  const auto plan_index = [&](const SweepTask& t) {
    const auto d = std::find(plan.latents.begin(), plan.latents.end(), t.latents) - plan.latents.begin();
    const auto k = std::find(plan.ks.begin(), plan.ks.end(), t.k) - plan.ks.begin();
    return (t.slice * plan.latents.size() + static_cast<std::size_t>(d)) * plan.ks.size() + static_cast<std::size_t>(k);
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
  metrics::Evaluation val;  // on the validation rows (activation_frequency not kept)
  double seconds = 0;       // training time (an even share of a shared pass)
  index_t epochs = 0;       // epochs run
  io::Json fingerprint;     // what decided it (sweep_fingerprint)
};

// ---- names, JSON and fingerprints ----

inline std::string sweep_result_name(const SweepPlan& plan, const Slice& slice, index_t k, index_t latents) {
  std::string name = "K" + std::to_string(k) + "_d" + std::to_string(latents);
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
  j["k"] = r.k;
  j["latent_dim"] = r.latents;
  j["seconds"] = r.seconds;
  j["epochs"] = r.epochs;
  return j;
}

inline SweepResult sweep_result_from_json(const io::Json& j, const std::string& source) {
  try {
    SweepResult r;
    if (j.find("layer")) r.slice = data::LayerPosition{j.at("layer").as_int(), j.at("position").as_int()};
    r.k = j.at("k").as_int();
    r.latents = j.at("latent_dim").as_int();
    r.val = metrics::evaluation_from_json(j);
    r.seconds = j.at("seconds").as_number();
    r.epochs = j.at("epochs").as_int();
    r.fingerprint = j.at("fingerprint");
    return r;
  } catch (const error& e) {
    throw io_error(source, std::string("not a sweep result (") + e.what() + "); delete it or pass --force");
  }
}

// Every setting that changes the weights.
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

// ... and one SAE: the above plus its slice and model.
inline io::Json sweep_fingerprint(const io::Json& run, const Slice& slice, const TopKConfig& model) {
  io::Json f = run;
  if (slice) {
    f["layer"] = slice->layer;
    f["position"] = slice->position;
  }
  io::Json m = to_json(model);
  m["encoder_precision"] = name(model.encoder_precision);
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
    remaining_ -= units_per_epoch_;
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
  using Model = TopKAutoencoder<float>;

  // Checks the plan and that what trains at once fits in memory: a slice's SAEs together (shared
  // pass) or the largest alone.
  SweepJob(const io::ArrayFile& view, const SweepPlan& plan) : view_(view), plan_(plan) {
    const auto& shape = view.shape();
    input_dim_ = shape.back();
    const index_t rows = shape.front();
    train_rows_ = static_cast<index_t>(
        data::choose_split(rows, data::SplitPolicy{plan.validation_fraction, plan.train.seed}).train.size());
    detail::require(!plan.ks.empty() && !plan.latents.empty() && !plan.slices.empty(), "run_sweep()",
                    "the plan needs at least one K, one latent_dim and one slice");
    detail::require(plan.shard_count >= 1 && plan.shard_index >= 0 && plan.shard_index < plan.shard_count, "run_sweep()",
                    "shard " + std::to_string(plan.shard_index) + " of " + std::to_string(plan.shard_count) +
                        ": expected 0 <= index < count");
    for (index_t k : plan.ks)
      for (index_t d : plan.latents)
        detail::require(k >= 1 && k <= d, "run_sweep()",
                        "every K must be in [1, latent_dim]: K=" + std::to_string(k) + " with latent_dim=" + std::to_string(d));
    double bytes = 0;
    for (index_t d : plan.latents)
      for (index_t k : plan.ks) {
        const double b = training_memory_bytes<float>(config(k, d), plan.train.batch_size);
        bytes = plan.shared_pass ? bytes + b : std::max(bytes, b);
      }
    require_memory(bytes + static_cast<double>(rows) * static_cast<double>(input_dim_) * sizeof(float),
                   "training " + std::string(plan.shared_pass ? "these SAEs together" : "the largest SAE") + " on " +
                       std::to_string(rows) + " x " + std::to_string(input_dim_) + " activations");
    run_fingerprint_ = sweep_run_fingerprint(io::data_fingerprint(view), plan, rows);
  }

  const SweepPlan& plan() const { return plan_; }

  TopKConfig config(index_t k, index_t d) const {
    TopKConfig c = plan_.model;
    c.input_dim = input_dim_, c.num_latents = d, c.k = k, c.selection = Selection::value;
    c.seed = plan_.train.seed;
    return apply_recipe(c, plan_.recipe, train_rows_);
  }
  io::Json fingerprint(const SweepTask& t) const {
    return sweep_fingerprint(run_fingerprint_, plan_.slices[t.slice], config(t.k, t.latents));
  }
  std::string name(const SweepTask& t) const { return sweep_result_name(plan_, plan_.slices[t.slice], t.k, t.latents); }
  // The result file, relative to the run folder.
  std::string file(const SweepTask& t) const { return plan_.results_folder + "/" + name(t) + ".json"; }

  // An earlier result of `t` with this run's fingerprint (adopted into `run`), if any.
  std::optional<SweepResult> reusable(const io::RunDirectory& run, const SweepTask& t) const {
    if (plan_.force) return std::nullopt;
    const Slice& s = plan_.slices[t.slice];
    const auto mismatch = [&](const io::Json& j) -> std::string {
      const auto r = sweep_result_from_json(j, file(t));
      if (r.k == t.k && r.latents == t.latents &&
          (!plan_.slice_in_names || !s || (r.slice && r.slice->layer == s->layer && r.slice->position == s->position)))
        return "";
      return "it holds " + (r.slice ? data::describe(*r.slice) + ", " : std::string()) + "K=" + std::to_string(r.k) +
             ", d=" + std::to_string(r.latents);
    };
    if (const auto j = io::reusable_result(run, file(t), fingerprint(t), mismatch, plan_.reuse_from))
      return sweep_result_from_json(*j, (run.out() / file(t)).string());
    return std::nullopt;
  }

  // The training and validation rows of a slice.
  std::pair<Matrix<float>, Matrix<float>> slice_data(std::size_t slice) const {
    const Matrix<float> all = data::gather_activations<float>(view_, plan_.slices[slice]);
    const auto split = data::choose_split(all.rows(), data::SplitPolicy{plan_.validation_fraction, plan_.train.seed});
    return {data::take_rows(all, split.train), data::take_rows(all, split.validation)};
  }

  // A fresh trainer per fit: fit() steps the trainer's own optimizer, whose moments would carry over.
  auto trainer() const { return make_trainer<Model>(plan_.train, Adam<float>(plan_.adam)); }

  // Scores a trained SAE and writes its result (and weights, if kept) under `staging`.
  SweepResult finish(const Model& model, const SweepTask& t, const Matrix<float>& validation, double seconds,
                     index_t epochs, const std::filesystem::path& staging) const {
    SweepResult r;
    r.slice = plan_.slices[t.slice], r.k = t.k, r.latents = t.latents, r.seconds = seconds, r.epochs = epochs;
    r.val = metrics::evaluate(model, validation);
    r.val.activation_frequency.clear();
    r.fingerprint = fingerprint(t);
    if (plan_.keep_weights) save_checkpoint(io::RunDirectory::stage_in(staging, "weights/" + name(t)), model);
    io::write_text_atomically(io::RunDirectory::stage_in(staging, file(t)), to_json(r).dump() + "\n");
    return r;
  }

  // Trains `t` alone on its slice's rows and finishes it.
  template <class... Callbacks>
  SweepResult train(const SweepTask& t, const Matrix<float>& train, const Matrix<float>& validation,
                    const std::filesystem::path& staging, Callbacks&&... callbacks) const {
    Model model(config(t.k, t.latents));
    const auto summary = trainer().fit(model, train, &validation, callbacks...);
    return finish(model, t, validation, summary.seconds, static_cast<index_t>(summary.history.size()), staging);
  }

 private:
  const io::ArrayFile& view_;
  SweepPlan plan_;
  index_t input_dim_ = 0, train_rows_ = 0;
  io::Json run_fingerprint_;
};

// Runs (or resumes) `plan` on `view` into `run` and returns every result of the plan found or
// trained, in plan order (slice, then latent_dim, then K). The caller commits `run`. `interrupt`
// (tests) is called after each epoch and may throw to simulate a kill.
inline std::vector<SweepResult> run_sweep(const io::ArrayFile& view, const SweepPlan& plan, io::RunDirectory& run,
                                          SweepOutput out, std::function<void()> interrupt = {}) {
  using Model = SweepJob::Model;
  const SweepJob job(view, plan);
  const auto shard = sweep_shard_of(plan);
  const auto task_at = [&](std::size_t si, index_t k, index_t d) { return SweepTask{si, k, d}; };
  const auto index_of = [&](std::size_t si, std::size_t di, std::size_t ki) {
    return (si * plan.latents.size() + di) * plan.ks.size() + ki;
  };
  // Every result already there is checked before any training.
  std::map<std::tuple<std::size_t, index_t, index_t>, SweepResult> found;
  for (std::size_t si = 0; si < plan.slices.size(); ++si)
    for (index_t d : plan.latents)
      for (index_t k : plan.ks)
        if (auto r = job.reusable(run, task_at(si, k, d))) found[{si, k, d}] = std::move(*r);
  if (!found.empty())
    progress_line(out, std::to_string(found.size()) + " of " + std::to_string(shard.size()) +
                           " SAEs reused from earlier runs (their fingerprints match this run's)", true);
  // This run trains an SAE that is not found and belongs to its shard.
  const auto wanted = [&](std::size_t si, std::size_t di, std::size_t ki) {
    return !found.count({si, plan.ks[ki], plan.latents[di]}) && shard[index_of(si, di, ki)] == plan.shard_index;
  };

  double per_slice_units = 0;
  for (index_t d : plan.latents) per_slice_units += static_cast<double>(d) * static_cast<double>(plan.ks.size());
  detail::SweepProgress progress(out, per_slice_units * static_cast<double>(plan.train.epochs * plan.slices.size()));
  progress.set_interrupt(std::move(interrupt));
  const auto slice_label = [](const Slice& s) {
    return s ? "layer " + std::to_string(s->layer) + " position " + std::to_string(s->position) : std::string();
  };

  std::vector<SweepResult> results;
  int trained_slices = 0, unit = 0;
  const int units = static_cast<int>(plan.slices.size() * (plan.shared_pass ? 1 : plan.ks.size() * plan.latents.size()));
  for (std::size_t si = 0; si < plan.slices.size(); ++si) {
    const Slice& s = plan.slices[si];
    double pending_units = 0;
    for (std::size_t di = 0; di < plan.latents.size(); ++di)
      for (std::size_t ki = 0; ki < plan.ks.size(); ++ki)
        if (wanted(si, di, ki)) pending_units += static_cast<double>(plan.latents[di]);
    progress.skip((per_slice_units - pending_units) * static_cast<double>(plan.train.epochs));
    const bool train_now = pending_units > 0 && (plan.max_slices <= 0 || trained_slices < plan.max_slices);
    if (!train_now) progress.skip(pending_units * static_cast<double>(plan.train.epochs));
    trained_slices += train_now;

    Matrix<float> train, validation;
    if (train_now) std::tie(train, validation) = job.slice_data(si);

    if (plan.shared_pass) {
      ++unit;
      std::vector<SweepTask> pending;
      std::vector<Model> models;
      for (std::size_t di = 0; di < plan.latents.size(); ++di)
        for (std::size_t ki = 0; ki < plan.ks.size(); ++ki)
          if (train_now && wanted(si, di, ki))
            pending.push_back(task_at(si, plan.ks[ki], plan.latents[di])), models.emplace_back(job.config(plan.ks[ki], plan.latents[di]));
      if (!models.empty()) {
        progress.begin("[group " + std::to_string(unit) + "/" + std::to_string(units) + " " + slice_label(s) + "]",
                       static_cast<index_t>(models.size()), pending_units);
        const auto summaries = job.trainer().fit_shared(models, train, &validation, progress);
        for (std::size_t m = 0; m < models.size(); ++m)  // the shared pass's time, split evenly
          found[{si, pending[m].k, pending[m].latents}] =
              job.finish(models[m], pending[m], validation, summaries[m].seconds / static_cast<double>(models.size()),
                         static_cast<index_t>(summaries[m].history.size()), run.staging());
      }
    } else {
      for (std::size_t di = 0; di < plan.latents.size(); ++di)
        for (std::size_t ki = 0; ki < plan.ks.size(); ++ki) {
          const index_t k = plan.ks[ki], d = plan.latents[di];
          const std::string label = "[config " + std::to_string(++unit) + "/" + std::to_string(units) +
                                    (s && plan.slice_in_names ? " " + slice_label(s) : "") + " K=" + std::to_string(k) +
                                    " d=" + std::to_string(d) + "]";
          if (found.count({si, k, d})) {
            progress_line(out, label + " reused: " + (run.out() / job.file(task_at(si, k, d))).string() +
                              " has this run's fingerprint (--force retrains)",
                          true);
          } else if (train_now && wanted(si, di, ki)) {
            progress.begin(label, 1, static_cast<double>(d));
            found[{si, k, d}] = job.train(task_at(si, k, d), train, validation, run.staging(), progress);
          }
        }
    }
    for (index_t d : plan.latents)
      for (index_t k : plan.ks)
        if (const auto it = found.find({si, k, d}); it != found.end()) results.push_back(it->second);
  }
  return results;
}

}  // namespace sae
