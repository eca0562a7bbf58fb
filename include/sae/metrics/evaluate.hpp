// Every metric the reports use, computed for one model on one evaluation set.
#pragma once

#include <sae/io/json.hpp>
#include <sae/metrics/reconstruction.hpp>
#include <sae/metrics/sparsity.hpp>

#include <limits>
#include <vector>

namespace sae::metrics {

struct Evaluation {
  double explained_variance = 0;          // SAELens formula
  double explained_variance_reports = 0;  // the reports' formula
  double mse = 0;
  double l0 = 0;
  double dead_fraction = 0;
  index_t alive_latents = 0;
  double mean_active_activation = 0;
  double max_activation = 0;
  double ev_per_active_latent = 0;  // explained_variance / alive_latents
  std::vector<double> activation_frequency;
};

// Scored against `target` (a transcoder's next layer; by default x itself: an autoencoder).
template <class Model>
Evaluation evaluate(const Model& model, const Matrix<typename Model::scalar_type>& x,
                    const Matrix<typename Model::scalar_type>& target) {
  const auto codes = model.encode(x);
  const auto x_hat = model.decode(codes);
  Evaluation e;
  e.explained_variance = explained_variance(target, x_hat);
  e.explained_variance_reports = explained_variance_reports(target, x_hat);
  e.mse = mse(target, x_hat);
  e.l0 = l0(codes);
  e.activation_frequency = activation_frequency(codes);
  e.alive_latents = alive_latents(e.activation_frequency);
  e.dead_fraction = dead_fraction(e.activation_frequency);
  e.mean_active_activation = mean_active_activation(codes);
  e.max_activation = max_activation(codes);
  e.ev_per_active_latent = ev_per_active_latent(e.explained_variance, e.alive_latents);
  return e;
}
template <class Model>
Evaluation evaluate(const Model& model, const Matrix<typename Model::scalar_type>& x) {
  return evaluate(model, x, x);
}

// The scalar metrics (frequencies left out; save them as .npy when needed).
inline io::Json to_json(const Evaluation& e) {
  io::Json j = io::Json::object();
  j["explained_variance"] = e.explained_variance;
  j["explained_variance_reports"] = e.explained_variance_reports;
  j["mse"] = e.mse;
  j["l0"] = e.l0;
  j["dead_fraction"] = e.dead_fraction;
  j["alive_latents"] = e.alive_latents;
  j["mean_active_activation"] = e.mean_active_activation;
  j["max_activation"] = e.max_activation;
  j["ev_per_active_latent"] = e.ev_per_active_latent;
  return j;
}

// Reads back what to_json wrote (activation_frequency stays empty); an undefined metric, written
// as null, reads back as NaN.
inline Evaluation evaluation_from_json(const io::Json& j) {
  const auto number_or_undefined = [&](const char* key) {
    const io::Json& v = j.at(key);
    return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.as_number();
  };
  Evaluation e;
  e.explained_variance = number_or_undefined("explained_variance");
  e.explained_variance_reports = number_or_undefined("explained_variance_reports");
  e.mse = j.at("mse").as_number();
  e.l0 = j.at("l0").as_number();
  e.dead_fraction = j.at("dead_fraction").as_number();
  e.alive_latents = j.at("alive_latents").as_int();
  e.mean_active_activation = j.at("mean_active_activation").as_number();
  e.max_activation = j.at("max_activation").as_number();
  e.ev_per_active_latent = number_or_undefined("ev_per_active_latent");
  return e;
}

}  // namespace sae::metrics
