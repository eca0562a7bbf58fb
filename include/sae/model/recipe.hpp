// Training recipes for the TopK model: the reports' setup (the default), and "modern", the
// combination against dead latents measured best on the bundled MiniLM slice (README "Fewer dead
// latents"): a decoder bias started at the geometric median of the training rows, AuxK with
// k_aux = 4 over a two-epoch dead window, and the encoder tied to the decoder at initialisation
// for K <= D/16 (measured: on the bundled D = 384 slice tying helps at K = 5-20 and costs ~0.012
// EV at K = 100, where nothing is dead anyway; on planted data with D = 64 it helps dictionary
// recovery at K = 2, 4 and hurts it at K = 8, 16).
#pragma once

#include <sae/core/error.hpp>
#include <sae/model/topk_autoencoder.hpp>

#include <string>

namespace sae {

enum class Recipe { reports, modern };

inline const char* name(Recipe r) { return r == Recipe::modern ? "modern" : "reports"; }

inline Recipe parse_recipe(const std::string& s) {
  if (s == "reports") return Recipe::reports;
  if (s == "modern") return Recipe::modern;
  throw invalid_argument("expected 'reports' or 'modern', got '" + s + "'");
}

// `c` (sizes set) under recipe `r` for `train_rows` training rows per epoch.
inline TopKConfig apply_recipe(TopKConfig c, Recipe r, index_t train_rows) {
  if (r == Recipe::reports) return c;
  c.decoder_bias = true, c.median_decoder_bias = true;
  c.tied_init = 16 * c.k <= c.input_dim;
  c.aux_k = std::min<index_t>(4, c.num_latents), c.aux_alpha = 1.0 / 32;
  c.dead_window = 2 * std::max<index_t>(train_rows, 1);
  return c;
}

}  // namespace sae
