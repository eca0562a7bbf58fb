// Learning-rate schedules, a policy of their own: the trainer multiplies each optimizer step's
// learning rate by factor(step). Linear warmup from lr/warmup to lr over the first warmup_steps,
// then constant, or decayed to final_fraction x lr at the last step of training, linearly or
// along a half cosine (as torch's LinearLR/CosineAnnealingLR and the SAE libraries use them).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <array>
#include <utility>
#include <cmath>
#include <cstdint>
#include <string>

namespace sae {

enum class LrDecay { none, linear, cosine };

inline std::array<std::pair<LrDecay, const char*>, 3> enum_names(LrDecay) {
  return {{{LrDecay::none, "none"}, {LrDecay::linear, "linear"}, {LrDecay::cosine, "cosine"}}};
}

inline const char* name(LrDecay d) { return d == LrDecay::linear ? "linear" : d == LrDecay::cosine ? "cosine" : "none"; }

inline LrDecay parse_lr_decay(const std::string& s) {
  if (s == "none") return LrDecay::none;
  if (s == "linear") return LrDecay::linear;
  if (s == "cosine") return LrDecay::cosine;
  throw invalid_argument("expected 'none', 'linear' or 'cosine', got '" + s + "'");
}

struct LrSchedule {
  index_t warmup_steps = 0;
  LrDecay decay = LrDecay::none;
  double final_fraction = 0.0;  // with decay: the last step's lr as a fraction of lr

  bool constant() const { return warmup_steps == 0 && decay == LrDecay::none; }

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.warmup_steps, field("warmup_steps", "linear learning-rate warmup over this many steps").at_least(0));
    v(c.decay, field("decay", "after warmup: 'none', 'linear' or 'cosine' decay to final_fraction x lr at the last step")
                   .flag_name("lr-decay"));
    v(c.final_fraction, field("final_fraction", "the last step's learning rate as a fraction of lr (with a decay)")
                            .flag_name("final-lr-fraction").at_least(0).at_most(1));
  }

  void validate() const {
    detail::require(warmup_steps >= 0, "LrSchedule", "warmup_steps must be >= 0, got " + std::to_string(warmup_steps));
    detail::require(final_fraction >= 0 && final_fraction <= 1, "LrSchedule",
                    "final_fraction must be in [0, 1], got " + std::to_string(final_fraction));
  }

  // The factor of step `step` (1-based) of `total` steps.
  double factor(std::int64_t step, std::int64_t total) const {
    if (step <= warmup_steps) return static_cast<double>(step) / static_cast<double>(warmup_steps);
    if (decay == LrDecay::none || total <= warmup_steps + 1) return 1.0;
    // progress 0 at the first step after warmup, 1 at the last step
    const double progress = std::min(1.0, static_cast<double>(step - warmup_steps - 1) / static_cast<double>(total - warmup_steps - 1));
    const double shape = decay == LrDecay::linear ? 1.0 - progress : 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
    return final_fraction + (1.0 - final_fraction) * shape;
  }
};

}  // namespace sae
