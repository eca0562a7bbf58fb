// Interventions on sparse codes (report 004): ablate, amplify or swap latents, decode, and measure
// how far the reconstruction moved. Rows an intervention does not touch are decoded exactly as
// before, so their difference is exactly zero; ablating nothing and amplifying by 1 are exact
// identities, and swapping the same latents twice restores the codes.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/io/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace sae::analysis {

template <class Scalar>
struct Intervention {
  SparseCodes<Scalar> codes;       // the edited codes
  Matrix<Scalar> reconstruction;   // decoded from them
  std::vector<double> sample_mean_abs, sample_max_abs;  // |new - original| per sample, over D
  double mean_abs = 0;             // over every sample and dimension (the report's "mean impact")
  double max_abs = 0;              // largest single change (the report's "max impact")
  index_t affected_samples = 0;    // samples whose reconstruction changed at all
};

template <class Model>
class InterventionEngine {
 public:
  using Scalar = typename Model::scalar_type;

  // `codes` are the model's codes of some samples (e.g. model.encode(validation)).
  InterventionEngine(const Model& model, SparseCodes<Scalar> codes)
      : model_(model), codes_(std::move(codes)), original_(model_.decode(codes_)) {}

  const SparseCodes<Scalar>& codes() const { return codes_; }
  const Matrix<Scalar>& reconstruction() const { return original_; }

  // Every listed latent set to 0 on every sample.
  Intervention<Scalar> ablate(const std::vector<index_t>& latents) const { return scale(latents, Scalar(0), "ablate()"); }

  // Every listed latent multiplied by `factor` on every sample.
  Intervention<Scalar> amplify(const std::vector<index_t>& latents, double factor) const {
    return scale(latents, static_cast<Scalar>(factor), "amplify()");
  }

  // Samples a and b exchange their values of the listed latents.
  Intervention<Scalar> swap(index_t a, index_t b, const std::vector<index_t>& latents) const {
    return swap_in(codes_, a, b, latents);
  }
  Intervention<Scalar> swap_in(const SparseCodes<Scalar>& from, index_t a, index_t b,
                               const std::vector<index_t>& latents) const {
    check_latents(latents, "swap()");
    sae::detail::require(a >= 0 && a < from.rows && b >= 0 && b < from.rows, "swap()",
                         "samples must be in [0, " + std::to_string(from.rows) + "), got " + std::to_string(a) + " and " +
                             std::to_string(b));
    SparseCodes<Scalar> edited = from;
    std::vector<Scalar> va, vb;
    std::vector<bool> swapped(static_cast<std::size_t>(from.num_latents), false);
    for (index_t j : latents) {
      va.push_back(value_of(from, a, j)), vb.push_back(value_of(from, b, j));
      swapped[static_cast<std::size_t>(j)] = true;
    }
    for (std::size_t t = 0; t < latents.size(); ++t) {
      set_value(edited, a, latents[t], vb[t], swapped);
      set_value(edited, b, latents[t], va[t], swapped);
    }
    return measure(std::move(edited));
  }

  // Any edit of the codes, measured against the original reconstruction.
  Intervention<Scalar> measure(SparseCodes<Scalar> edited) const {
    sae::detail::require(edited.rows == codes_.rows && edited.num_latents == codes_.num_latents, "InterventionEngine",
                         "edited codes must keep the samples and latents of the original");
    Intervention<Scalar> r;
    r.reconstruction = model_.decode(edited);
    r.codes = std::move(edited);
    const index_t n = original_.rows(), d = original_.cols();
    r.sample_mean_abs.assign(static_cast<std::size_t>(n), 0.0);
    r.sample_max_abs.assign(static_cast<std::size_t>(n), 0.0);
    double total = 0;
    for (index_t i = 0; i < n; ++i) {
      double sum = 0, mx = 0;
      for (index_t c = 0; c < d; ++c) {
        const double diff = std::abs(static_cast<double>(r.reconstruction(i, c)) - static_cast<double>(original_(i, c)));
        sum += diff;
        mx = std::max(mx, diff);
      }
      r.sample_mean_abs[static_cast<std::size_t>(i)] = sum / static_cast<double>(d);
      r.sample_max_abs[static_cast<std::size_t>(i)] = mx;
      total += sum;
      r.max_abs = std::max(r.max_abs, mx);
      r.affected_samples += mx > 0 ? 1 : 0;
    }
    r.mean_abs = n > 0 && d > 0 ? total / static_cast<double>(n * d) : 0.0;
    return r;
  }

  // Samples on which latent j fires.
  index_t active_samples(index_t j) const {
    index_t n = 0;
    for (index_t i = 0; i < codes_.rows; ++i) n += value_of(codes_, i, j) > Scalar(0) ? 1 : 0;
    return n;
  }

 private:
  void check_latents(const std::vector<index_t>& latents, const char* caller) const {
    for (index_t j : latents)
      sae::detail::require(j >= 0 && j < codes_.num_latents, caller,
                           "latent " + std::to_string(j) + " is outside [0, " + std::to_string(codes_.num_latents) + ")");
  }

  Intervention<Scalar> scale(const std::vector<index_t>& latents, Scalar factor, const char* caller) const {
    check_latents(latents, caller);
    std::vector<bool> hit(static_cast<std::size_t>(codes_.num_latents), false);
    for (index_t j : latents) hit[static_cast<std::size_t>(j)] = true;
    SparseCodes<Scalar> edited = codes_;
    for (std::size_t e = 0; e < edited.values.size(); ++e)
      if (hit[static_cast<std::size_t>(edited.indices[e])] && edited.values[e] != Scalar(0)) edited.values[e] *= factor;
    return measure(std::move(edited));
  }

  static Scalar value_of(const SparseCodes<Scalar>& c, index_t i, index_t j) {
    for (index_t s = 0; s < c.k; ++s)
      if (c.row_indices(i)[s] == j && c.row_values(i)[s] != Scalar(0)) return c.row_values(i)[s];
    return Scalar(0);
  }

  // Sets latent j of row i: in its active slot if it has one, else in an inactive slot — one that
  // held j first, and never one left by another latent being swapped, so undoing a swap puts
  // every latent back in its slot — else in a new padded slot added to every row. Other slots keep
  // their order, so the rest of the row is decoded exactly as before.
  static void set_value(SparseCodes<Scalar>& c, index_t i, index_t j, Scalar v, const std::vector<bool>& swapped) {
    index_t same = -1, free = -1;
    for (index_t s = 0; s < c.k; ++s) {
      const bool inactive = c.row_values(i)[s] == Scalar(0);
      if (c.row_indices(i)[s] == j && !inactive) {
        c.row_values(i)[s] = v;
        return;
      }
      if (inactive && c.row_indices(i)[s] == j && same < 0) same = s;
      if (inactive && free < 0 && !swapped[static_cast<std::size_t>(c.row_indices(i)[s])]) free = s;
    }
    if (v == Scalar(0)) return;  // inactive and staying so
    if (same >= 0) free = same;
    if (free < 0) {
      SparseCodes<Scalar> wider;
      wider.resize(c.rows, c.k + 1, c.num_latents);
      for (index_t r = 0; r < c.rows; ++r) {
        std::copy(c.row_indices(r), c.row_indices(r) + c.k, wider.row_indices(r));
        std::copy(c.row_values(r), c.row_values(r) + c.k, wider.row_values(r));
        wider.row_indices(r)[c.k] = 0;
        wider.row_values(r)[c.k] = Scalar(0);
      }
      c = std::move(wider);
      free = c.k - 1;
    }
    c.row_indices(i)[free] = static_cast<std::int32_t>(j);
    c.row_values(i)[free] = v;
  }

  const Model& model_;
  SparseCodes<Scalar> codes_;
  Matrix<Scalar> original_;
};

// Report 004's grading of an ablation's mean impact, with an explicit state for latents that fire
// on too few samples for the number to mean anything.
struct ImpactGrading {
  double high = 0.1;     // mean impact >= high: HIGH
  double medium = 0.05;  // >= medium: MEDIUM; below: LOW
  index_t min_active_samples = 10;
};

enum class ImpactGrade { high, medium, low, too_rare };
inline const char* name(ImpactGrade g) {
  switch (g) {
    case ImpactGrade::high: return "HIGH";
    case ImpactGrade::medium: return "MEDIUM";
    case ImpactGrade::low: return "LOW";
    case ImpactGrade::too_rare: return "TOO RARE TO VALIDATE";
  }
  return "?";
}

struct LatentImpact {
  index_t latent = 0;
  index_t active_samples = 0;
  double mean_abs = 0, max_abs = 0;  // over every sample (the report's columns)
  double mean_abs_on_active = 0;     // over the samples whose reconstruction changed
  ImpactGrade grade = ImpactGrade::low;
};

template <class Model>
std::vector<LatentImpact> ablation_impact(const InterventionEngine<Model>& engine, const std::vector<index_t>& latents,
                                          const ImpactGrading& grading = {}) {
  std::vector<LatentImpact> out;
  for (index_t j : latents) {
    const auto r = engine.ablate({j});
    LatentImpact li;
    li.latent = j;
    li.active_samples = engine.active_samples(j);
    li.mean_abs = r.mean_abs;
    li.max_abs = r.max_abs;
    double on_active = 0;
    for (std::size_t i = 0; i < r.sample_mean_abs.size(); ++i)
      if (r.sample_max_abs[i] > 0) on_active += r.sample_mean_abs[i];
    li.mean_abs_on_active = r.affected_samples ? on_active / static_cast<double>(r.affected_samples) : 0.0;
    li.grade = li.active_samples < grading.min_active_samples ? ImpactGrade::too_rare
               : li.mean_abs >= grading.high                  ? ImpactGrade::high
               : li.mean_abs >= grading.medium                ? ImpactGrade::medium
                                                              : ImpactGrade::low;
    out.push_back(li);
  }
  return out;
}

inline io::Json to_json(const LatentImpact& li) {
  io::Json j = io::Json::object();
  j["latent"] = li.latent;
  j["active_samples"] = li.active_samples;
  j["mean_impact"] = li.mean_abs;
  j["max_impact"] = li.max_abs;
  j["mean_impact_on_active"] = li.mean_abs_on_active;
  j["grade"] = name(li.grade);
  return j;
}

struct SanityCheck {
  std::string name;
  bool ok = false;
};

// Report 004's checks that the engine is exact where it must be, on `latents` (the most frequent;
// at least one) and the first two samples: ablating nothing and amplifying by 1 change nothing,
// swapping twice restores the codes, and amplifying by 2 moves each sample as far as ablating.
template <class Model>
std::vector<SanityCheck> sanity_checks(const InterventionEngine<Model>& engine, const std::vector<index_t>& latents) {
  sae::detail::require(!latents.empty() && engine.codes().rows >= 2, "sanity_checks()",
                       "needs at least one latent and two samples");
  std::vector<SanityCheck> checks;
  checks.push_back({"ablating no latent leaves every reconstruction unchanged", engine.ablate({}).max_abs == 0});
  checks.push_back({"amplifying the top latents by 1 leaves every reconstruction unchanged",
                    engine.amplify(latents, 1.0).max_abs == 0});
  const auto once = engine.swap(0, 1, latents);
  const auto twice = engine.swap_in(once.codes, 0, 1, latents);
  checks.push_back({"swapping the top latents of samples 0 and 1 twice restores the codes",
                    (twice.codes.to_dense().array() == engine.codes().to_dense().array()).all() && twice.max_abs == 0});
  const auto amplified = engine.amplify({latents.front()}, 2.0), ablated = engine.ablate({latents.front()});
  checks.push_back({"amplifying the top latent by 2 moves each sample exactly as far as ablating it",
                    std::abs(amplified.mean_abs - ablated.mean_abs) <= 1e-6 * std::max(1.0, ablated.mean_abs)});
  return checks;
}

}  // namespace sae::analysis
