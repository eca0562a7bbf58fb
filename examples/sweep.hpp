// The report-002 sweep: every (layer, position) of a 4-D activation array x every (K, latent_dim).
// The configs of one (layer, position) are trained together in one pass over its data
// (Trainer::fit_shared); each finished config is written at once as its own JSON file, so a killed
// sweep resumes where it stopped and never loses a finished SAE.
#pragma once

#include "common.hpp"

#include <functional>
#include <map>
#include <tuple>

namespace sae::examples {

struct SweepOptions {
  std::vector<index_t> layers, positions;  // empty: all
  std::vector<index_t> ks, latents;
  TrainConfig train;
  AdamConfig adam;
  std::optional<double> val_fraction;
  bool force = false;
  bool keep_weights = false;
  int max_groups = 0;  // train at most this many (layer, position) groups this run (0 = all)
};

struct SweepResult {
  index_t layer = 0, position = 0, k = 0, latents = 0;
  metrics::Evaluation val;  // on the validation rows (activation_frequency not kept)
  double seconds = 0;       // this SAE's share of its group's shared pass
  io::Json fingerprint;     // what decided it (see sweep_fingerprint)
};

inline std::string sweep_config_name(index_t layer, index_t position, index_t k, index_t latents) {
  return "L" + std::to_string(layer) + "_P" + std::to_string(position) + "_K" + std::to_string(k) + "_d" +
         std::to_string(latents);
}

inline io::Json to_json(const SweepResult& r) {
  io::Json j = metrics::to_json(r.val);
  j["fingerprint"] = r.fingerprint;
  j["layer"] = r.layer;
  j["position"] = r.position;
  j["k"] = r.k;
  j["latent_dim"] = r.latents;
  j["seconds"] = r.seconds;
  return j;
}

inline SweepResult sweep_result_from_json(const io::Json& j, const std::string& source) {
  try {
    SweepResult r;
    r.layer = j.at("layer").as_int();
    r.position = j.at("position").as_int();
    r.k = j.at("k").as_int();
    r.latents = j.at("latent_dim").as_int();
    r.val = metrics::evaluation_from_json(j);
    r.seconds = j.at("seconds").as_number();
    r.fingerprint = *j.find("fingerprint");
    return r;
  } catch (const error& e) {
    throw io_error(source, std::string("not a sweep result (") + e.what() + "); delete it or pass --force");
  }
}

// What decides every SAE of a sweep: the data file's content, the split, the training settings
// and the library version.
inline io::Json sweep_run_fingerprint(const io::Json& data, const SweepOptions& opt) {
  io::Json f = io::Json::object();
  f["library"] = io::library_fingerprint();
  f["data"] = data;
  f["split"] = opt.val_fraction ? io::Json(*opt.val_fraction) : io::Json("reports");
  f["training"] = training_fingerprint(opt.train, opt.adam);
  return f;
}

// ... and one SAE: the above plus its slice and config.
inline io::Json sweep_fingerprint(const io::Json& data, const SweepOptions& opt, index_t layer, index_t position,
                                  index_t k, index_t latents, index_t input_dim) {
  io::Json f = sweep_run_fingerprint(data, opt);
  f["layer"] = layer;
  f["position"] = position;
  io::Json model = to_json(TopKConfig{input_dim, latents, k, Selection::value, false, opt.train.seed});
  model["encoder_precision"] = "fp32";
  f["model"] = model;
  return f;
}

// What in a sweep result contradicts its file name ("" when nothing).
inline std::string sweep_name_mismatch(const io::Json& j, index_t layer, index_t position, index_t k, index_t latents) {
  const auto l = j.at("layer").as_int(), p = j.at("position").as_int(), jk = j.at("k").as_int(),
             d = j.at("latent_dim").as_int();
  if (l == layer && p == position && jk == k && d == latents) return "";
  return "it holds " + sweep_config_name(l, p, jk, d);
}

// Progress for the whole sweep, one line per finished (layer, position) group off a terminal.
class SweepProgress {
 public:
  SweepProgress(index_t total_units) : remaining_(total_units), start_(std::chrono::steady_clock::now()) {}

  void begin_group(int index, int count, index_t layer, index_t position, index_t models, index_t units_per_epoch,
                   index_t epochs) {
    index_ = index, count_ = count, layer_ = layer, position_ = position, models_ = models;
    units_per_epoch_ = units_per_epoch, epochs_ = epochs, calls_ = 0;
  }
  void skip(index_t units) { remaining_ -= units; }
  void set_interrupt(std::function<void()> f) { interrupt_ = std::move(f); }

  template <class Model>
  bool on_epoch_end(const EpochStats& s, const Model&) {
    if (++calls_ % models_ != 0) return false;  // once per epoch, after the group's last model
    remaining_ -= units_per_epoch_;
    done_ += units_per_epoch_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = elapsed / static_cast<double>(done_) * static_cast<double>(remaining_);
    char buf[200];
    std::snprintf(buf, sizeof buf, "[group %d/%d layer %lld position %lld] epoch %lld/%lld, %lld SAEs | sweep ETA %.0fs",
                  index_, count_, static_cast<long long>(layer_), static_cast<long long>(position_),
                  static_cast<long long>(s.epoch), static_cast<long long>(epochs_), static_cast<long long>(models_), eta);
    progress_line(buf, s.epoch == s.epochs);
    if (interrupt_) interrupt_();
    return false;
  }

 private:
  index_t remaining_, done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::function<void()> interrupt_;
  int index_ = 0, count_ = 0;
  index_t layer_ = 0, position_ = 0, models_ = 1, units_per_epoch_ = 0, epochs_ = 0, calls_ = 0;
};

// Runs (or resumes) the sweep into `run`; returns every result of the requested grid found or
// trained. Results of earlier runs (committed, or left by a killed run) are reused when their
// fingerprints match; a committed one that does not match stops the sweep before any training
// (unless opt.force). The caller commits `run`. `interrupt` (tests) is called after each epoch
// and may throw to simulate a kill.
inline std::vector<SweepResult> run_sweep(const io::NpyMmap& view, SweepOptions opt, io::RunDirectory& run,
                                          std::function<void()> interrupt = {}) {
  namespace fs = std::filesystem;
  using Model = TopKAutoencoder<float>;
  const auto& shape = view.shape();
  if (shape.size() != 4)
    throw io_error(view.path(), "the sweep needs a 4-D [N, layers, positions, D] array but shape is " +
                                    view.header().shape_string());
  const auto all_of = [](index_t n) {
    std::vector<index_t> v(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
  };
  if (opt.layers.empty()) opt.layers = all_of(shape[1]);
  if (opt.positions.empty()) opt.positions = all_of(shape[2]);
  for (index_t l : opt.layers)
    check_flag(l >= 0 && l < shape[1], "--layers: layer " + std::to_string(l) + " out of range [0, " + std::to_string(shape[1]) + ")");
  for (index_t p : opt.positions)
    check_flag(p >= 0 && p < shape[2], "--positions: position " + std::to_string(p) + " out of range [0, " + std::to_string(shape[2]) + ")");
  check_k_within_latents(opt.ks, opt.latents);
  // A group's SAEs train together, so all of them must fit at once.
  double group_bytes = 0;
  for (index_t d : opt.latents)
    for (index_t k : opt.ks)
      group_bytes += training_memory_bytes<float>(TopKConfig{shape[3], d, k, Selection::value, false, 0}, opt.train.batch_size);
  require_memory(group_bytes + static_cast<double>(shape[0]) * static_cast<double>(shape[3]) * sizeof(float),
                 "training " + std::to_string(opt.ks.size() * opt.latents.size()) + " SAE(s) together on " +
                     std::to_string(shape[0]) + " x " + std::to_string(shape[3]) + " activations");

  // Every result already there is checked before any training.
  const io::Json data = io::data_fingerprint(view);
  std::map<std::tuple<index_t, index_t, index_t, index_t>, SweepResult> found;
  if (!opt.force)
    for (index_t layer : opt.layers)
      for (index_t position : opt.positions)
        for (index_t d : opt.latents)
          for (index_t k : opt.ks) {
            const std::string file = "configs/" + sweep_config_name(layer, position, k, d) + ".json";
            const auto j = io::reusable_result(run, file, sweep_fingerprint(data, opt, layer, position, k, d, shape[3]),
                                               [&](const io::Json& r) { return sweep_name_mismatch(r, layer, position, k, d); });
            if (j) found[{layer, position, k, d}] = sweep_result_from_json(*j, (run.out() / file).string());
          }

  index_t latent_sum = 0;
  for (index_t d : opt.latents) latent_sum += d * static_cast<index_t>(opt.ks.size());
  SweepProgress progress(latent_sum * opt.train.epochs * static_cast<index_t>(opt.layers.size() * opt.positions.size()));
  progress.set_interrupt(std::move(interrupt));

  std::vector<SweepResult> results;
  const int groups = static_cast<int>(opt.layers.size() * opt.positions.size());
  int group = 0, trained_groups = 0;
  for (index_t layer : opt.layers) {
    for (index_t position : opt.positions) {
      ++group;
      // Which configs of this group still need training?
      std::vector<std::pair<index_t, index_t>> pending;
      index_t pending_units = 0;
      for (index_t d : opt.latents)
        for (index_t k : opt.ks) {
          const auto it = found.find({layer, position, k, d});
          if (it != found.end()) {
            results.push_back(it->second);
          } else {
            pending.push_back({k, d});
            pending_units += d;
          }
        }
      progress.skip((latent_sum - pending_units) * opt.train.epochs);
      if (pending.empty()) continue;
      if (opt.max_groups > 0 && trained_groups >= opt.max_groups) {
        progress.skip(pending_units * opt.train.epochs);
        continue;
      }
      ++trained_groups;
      const Matrix<float> all = data::gather_activations<float>(view, data::LayerPosition{layer, position});
      const auto split = split_rows(all, view.path(), opt.val_fraction, opt.train.seed);
      std::vector<Model> models;
      for (const auto& [k, d] : pending)
        models.emplace_back(TopKConfig{split.train.cols(), d, k, Selection::value, false, opt.train.seed});
      progress.begin_group(group, groups, layer, position, static_cast<index_t>(models.size()), pending_units,
                           opt.train.epochs);
      auto trainer = make_trainer<Model>(opt.train, Adam<float>(opt.adam));
      const auto summaries = trainer.fit_shared(models, split.train, &split.validation, progress);
      for (std::size_t m = 0; m < models.size(); ++m) {
        SweepResult r;
        r.layer = layer, r.position = position, r.k = pending[m].first, r.latents = pending[m].second;
        r.val = metrics::evaluate(models[m], split.validation);
        r.val.activation_frequency.clear();
        r.seconds = summaries[m].seconds / static_cast<double>(models.size());  // the shared pass, split evenly
        r.fingerprint = sweep_fingerprint(data, opt, layer, position, r.k, r.latents, shape[3]);
        const std::string name = sweep_config_name(layer, position, r.k, r.latents);
        if (opt.keep_weights) save_checkpoint(run.stage("weights/" + name), models[m]);
        io::write_text_atomically(run.stage("configs/" + name + ".json"), to_json(r).dump() + "\n");
        results.push_back(r);
      }
    }
  }
  return results;
}

}  // namespace sae::examples
