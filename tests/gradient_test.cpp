#define BOOST_TEST_MODULE gradient
#include "test_helpers.hpp"

#include <sae/core/rng.hpp>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/model/resampling.hpp>

#include <algorithm>

using sae::index_t;
using sae::test::random_matrix;
using Model = sae::TopKAutoencoder<double>;

BOOST_AUTO_TEST_CASE(central_difference_gradient_check_every_parameter) {
  // F = 10 uses the partial-sort top-k path, F = 40 the bounded-heap path.
  for (index_t f : {10, 40})
  for (bool decoder_bias : {false, true}) {
    for (auto selection : {sae::Selection::value, sae::Selection::magnitude}) {
      BOOST_TEST_CONTEXT("F=" << f << " decoder_bias=" << decoder_bias
                              << " magnitude=" << (selection == sae::Selection::magnitude)) {
        sae::TopKConfig c{6, f, 3, selection, decoder_bias, 5};
        Model model(c);
        if (decoder_bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
        sae::test::check_gradients_by_central_differences(model, random_matrix(7, 6, 11), decoder_bias);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(gradient_rows_are_only_the_selected_latents) {
  Model model(sae::TopKConfig{8, 64, 2});
  const auto x = random_matrix(3, 8, 1);
  typename Model::Gradients g;
  typename Model::Workspace ws;
  model.loss_and_gradient(x, g, ws);
  BOOST_TEST(g.w_enc.rows.size() <= 6u);  // at most B * K latents
  const auto codes = model.encode(x);
  for (auto j : g.w_enc.rows) {
    bool selected = false;
    for (std::size_t e = 0; e < codes.indices.size(); ++e) selected |= codes.indices[e] == j && codes.values[e] > 0;
    BOOST_TEST(selected);
  }
}

BOOST_AUTO_TEST_CASE(weight_gradients_added_onto_others_equal_the_sum) {
  // AuxK adds a second code set's gradients onto the main ones: rows both touch are summed, rows
  // only the second touches are appended; the dense result is the sum of the two computed apart.
  const index_t f = 40, d = 6, rows = 5;
  const auto x = random_matrix(rows, d, 3), g = random_matrix(rows, d, 4);
  const auto codes = [&](std::uint64_t seed) {
    sae::SparseCodes<double> c;
    c.resize(rows, 3, f);
    sae::Rng rng(seed);
    for (index_t i = 0; i < rows; ++i)
      for (index_t s = 0; s < 3; ++s)
        c.row_indices(i)[s] = static_cast<std::int32_t>(rng.uniform(0, 20)), c.row_values(i)[s] = rng.uniform(0.1, 1);
    return c;
  };
  const auto a = codes(1), b = codes(2);
  const auto dcode = [](const sae::SparseCodes<double>& c) {
    std::vector<double> v(c.values.size());
    for (std::size_t e = 0; e < v.size(); ++e) v[e] = 0.3 * c.values[e] - 0.1 * static_cast<double>(e);
    return v;
  };
  sae::ops::LatentMajor groups;
  sae::RowSparse<double> enc_a, dec_a, enc_b, dec_b;
  sae::Vector<double> bias_a, bias_b;
  sae::ops::sparse_weight_gradients(sae::cpu{}, a, g, x, groups, dcode(a), enc_a, bias_a, dec_a);
  sae::ops::sparse_weight_gradients(sae::cpu{}, b, g, x, groups, dcode(b), enc_b, bias_b, dec_b);
  const sae::Matrix<double> enc_sum = enc_a.to_dense() + enc_b.to_dense(), dec_sum = dec_a.to_dense() + dec_b.to_dense();
  const sae::Vector<double> bias_sum = bias_a + bias_b;
  const std::size_t rows_a = enc_a.rows.size();
  sae::ops::add_sparse_weight_gradients(sae::cpu{}, b, g, x, groups, dcode(b), enc_a, bias_a, dec_a);
  BOOST_TEST((enc_a.to_dense() - enc_sum).cwiseAbs().maxCoeff() < 1e-12);
  BOOST_TEST((dec_a.to_dense() - dec_sum).cwiseAbs().maxCoeff() < 1e-12);
  BOOST_TEST((bias_a - bias_sum).cwiseAbs().maxCoeff() < 1e-12);
  BOOST_TEST(enc_a.rows == dec_a.rows, boost::test_tools::per_element());
  std::vector<std::int32_t> sorted = enc_a.rows;
  std::sort(sorted.begin(), sorted.end());
  BOOST_TEST((std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end()));  // each row once
  BOOST_TEST(enc_a.rows.size() > rows_a);  // some appended
  BOOST_TEST(enc_a.rows.size() < rows_a + enc_b.rows.size());  // some shared
}

BOOST_AUTO_TEST_CASE(sparse_decode_matches_dense_product) {
  sae::TopKConfig c{5, 12, 4};
  c.decoder_bias = true;
  Model model(c);
  model.parameters().b_dec.setConstant(0.25);
  const auto x = random_matrix(6, 5, 2);
  const auto codes = model.encode(x);
  const sae::Matrix<double> dense = codes.to_dense() * model.parameters().w_dec;
  const sae::Matrix<double> expected = dense.rowwise() + model.parameters().b_dec.transpose();
  BOOST_TEST((model.decode(codes) - expected).cwiseAbs().maxCoeff() < 1e-12);
  // And encode itself against the dense definition: ReLU(TopK(W_enc (x - b_dec) + b_enc)).
  const sae::Matrix<double> pre =
      ((x.rowwise() - model.parameters().b_dec.transpose()) * model.parameters().w_enc.transpose()).rowwise() +
      model.parameters().b_enc.transpose();
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t s = 0; s < c.k; ++s)
      BOOST_TEST(codes.row_values(i)[s] == std::max(0.0, pre(i, codes.row_indices(i)[s])));
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_caller) {
  Model model(sae::TopKConfig{4, 8, 2});
  sae::test::require_throws_with<sae::invalid_argument>([&] { model.encode(random_matrix(2, 5, 0)); },
                                                        {"encode()", "5 columns", "input_dim=4"});
  sae::test::require_throws_with<sae::invalid_argument>([] { Model(sae::TopKConfig{4, 8, 9}); },
                                                        {"k must be in [1, num_latents=8], got 9"});
}

BOOST_AUTO_TEST_CASE(auxk_gradient_by_central_differences) {
  // AuxK's gradient treats the residual e = x - x_hat as a constant, so it is checked against
  // central differences of the auxiliary term alone with x_hat held fixed: the model's gradient
  // with AuxK minus its gradient without must equal them. dead_window = 1: after one step every
  // latent that did not fire on x is dead, and stays dead while the same x is fed again.
  for (bool decoder_bias : {false, true}) {
    BOOST_TEST_CONTEXT("decoder_bias=" << decoder_bias) {
      sae::TopKConfig c{6, 40, 2, sae::Selection::value, decoder_bias, 5};
      c.aux_k = 3;
      c.aux_alpha = 0.5;
      c.dead_window = 1;
      Model model(c);
      if (decoder_bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
      const auto x = random_matrix(7, 6, 11);
      typename Model::Gradients with, without;
      typename Model::Workspace ws, ws_plain;
      const auto first = model.loss_and_gradient(x, with, ws);  // no latent dead yet: plain TopK
      BOOST_TEST(first.loss == first.reconstruction_mse);
      const auto step = model.loss_and_gradient(x, with, ws);
      BOOST_TEST(step.loss > step.reconstruction_mse);  // the auxiliary term is on
      const sae::Matrix<double> x_hat = ws.x_hat;      // held fixed below
      const std::vector<char> dead = ws.extra.dead;
      const index_t num_dead = static_cast<index_t>(std::count(dead.begin(), dead.end(), 1));
      BOOST_TEST(num_dead >= 26);  // at most 7 x 2 latents fire
      sae::TopKConfig plain_config = c;
      plain_config.aux_k = 0;
      Model plain(plain_config, model.parameters());
      plain.loss_and_gradient(x, without, ws_plain);
      // The auxiliary term as a function of the parameters, the live/dead split and x_hat fixed.
      auto& p = model.parameters();
      const auto aux_term = [&] {
        const sae::Matrix<double> x_in = decoder_bias ? sae::Matrix<double>(x.rowwise() - p.b_dec.transpose()) : x;
        const sae::Matrix<double> pre = (x_in * p.w_enc.transpose()).rowwise() + p.b_enc.transpose();
        sae::AuxKScratch<double> s;
        s.dead = dead;
        typename Model::Gradients unused;
        unused.w_enc.total_rows = unused.w_dec.total_rows = 40;
        unused.b_enc.setZero(40);
        unused.b_dec.setZero(decoder_bias ? 6 : 0);
        return sae::add_auxk(c.aux_k, c.aux_alpha, num_dead, p, decoder_bias, x, x_in, pre, x_hat, unused, s);
      };
      const auto check = [&](auto& param, const sae::Matrix<double>& analytic, const char* name) {
        const double h = 1e-6;
        double worst = 0, largest = 0;
        for (index_t i = 0; i < param.rows(); ++i)
          for (index_t j = 0; j < param.cols(); ++j) {
            const double saved = param(i, j);
            param(i, j) = saved + h;
            const double up = aux_term();
            param(i, j) = saved - h;
            const double down = aux_term();
            param(i, j) = saved;
            const double numeric = (up - down) / (2 * h), a = analytic(i, j);
            largest = std::max(largest, std::abs(a));
            worst = std::max(worst, std::abs(numeric - a) / std::max(1e-4, std::abs(numeric) + std::abs(a)));
          }
        BOOST_TEST_MESSAGE(name << ": worst relative error " << worst << ", largest |gradient| " << largest);
        BOOST_TEST(worst < 1e-6, name << " AuxK gradient is off: worst relative error " << worst);
        BOOST_TEST(largest > 1e-3, name << ": the auxiliary gradient should not vanish here");
      };
      check(p.w_enc, with.w_enc.to_dense() - without.w_enc.to_dense(), "w_enc");
      check(p.w_dec, with.w_dec.to_dense() - without.w_dec.to_dense(), "w_dec");
      check(p.b_enc, sae::Matrix<double>(with.b_enc - without.b_enc), "b_enc");
      if (decoder_bias) check(p.b_dec, sae::Matrix<double>(with.b_dec - without.b_dec), "b_dec");
    }
  }
}

BOOST_AUTO_TEST_CASE(dead_latent_bookkeeping_matches_a_naive_counter) {
  sae::Rng rng(4);
  sae::DeadLatents tracker;
  std::vector<char> dead;
  std::vector<long> last_fired(12, -1);  // naive: the sample count when each latent last fired
  long seen = 0;
  for (int step = 0; step < 30; ++step) {
    sae::SparseCodes<double> codes;
    const index_t rows = 1 + static_cast<index_t>(rng.uniform(0, 5));
    codes.resize(rows, 2, 12);
    for (std::size_t e = 0; e < codes.indices.size(); ++e) {
      codes.indices[e] = static_cast<std::int32_t>(rng.uniform(0, 12));
      codes.values[e] = rng.uniform(0, 1) < 0.3 ? 0.0 : 1.0;  // a selected latent at 0 did not fire
    }
    const index_t window = 6;
    const index_t n = tracker.mask(12, window, dead);
    index_t naive_dead = 0;
    for (std::size_t j = 0; j < 12; ++j) {
      const long since = last_fired[j] < 0 ? seen : seen - last_fired[j];
      BOOST_TEST(tracker.samples_since_fired()[j] == since);
      BOOST_TEST(static_cast<bool>(dead[j]) == (since >= window));
      naive_dead += since >= window ? 1 : 0;
    }
    BOOST_TEST(n == naive_dead);
    tracker.record(codes);
    seen += rows;
    for (std::size_t e = 0; e < codes.indices.size(); ++e)
      if (codes.values[e] > 0) last_fired[static_cast<std::size_t>(codes.indices[e])] = seen;
  }
}

BOOST_AUTO_TEST_CASE(tied_init_and_config_json) {
  sae::TopKConfig c{8, 24, 3};
  c.tied_init = true;
  const Model tied(c), plain(sae::TopKConfig{8, 24, 3});
  BOOST_TEST(sae::test::same(tied.parameters().w_enc, tied.parameters().w_dec));
  BOOST_TEST(sae::test::same(tied.parameters().w_dec, plain.parameters().w_dec));  // the same draws
  BOOST_TEST(sae::test::same(tied.parameters().b_enc, plain.parameters().b_enc));
  // The reports' config is written as before (fingerprints of earlier results stay valid) ...
  BOOST_TEST(sae::to_json(sae::TopKConfig{8, 24, 3}).find("aux_k") == nullptr);
  BOOST_TEST(sae::to_json(sae::TopKConfig{8, 24, 3}).find("tied_init") == nullptr);
  // ... and the new options round-trip.
  c.aux_k = 4, c.aux_alpha = 0.125, c.dead_window = 500;
  const auto back = sae::topk_config_from_json(sae::to_json(c), "test");
  BOOST_TEST(back.tied_init);
  BOOST_TEST(back.aux_k == 4);
  BOOST_TEST(back.aux_alpha == 0.125);
  BOOST_TEST(back.dead_window == 500);
  c.dead_window = 0;
  sae::test::require_throws_with<sae::invalid_argument>([&] { Model m(c); }, {"dead_window", "must be positive"});
}

// With project_decoder_gradient the decoder gradient is that of the loss as a function of the
// normalised rows, L(W_dec / ||row||): checked by central differences, the perturbed row
// renormalised before each evaluation.
BOOST_AUTO_TEST_CASE(projected_decoder_gradient_by_central_differences) {
  sae::TopKConfig c{6, 12, 3};
  c.project_decoder_gradient = true;
  Model model(c);
  const auto x = random_matrix(9, 6, 21);
  Model::Gradients g;
  Model::Workspace ws;
  model.loss_and_gradient(x, g, ws);
  BOOST_REQUIRE(!g.w_dec.rows.empty());
  const auto loss_at = [&](const sae::Matrix<double>& w_dec) {
    auto p = model.parameters();
    p.w_dec = w_dec;
    for (index_t r = 0; r < p.w_dec.rows(); ++r) p.w_dec.row(r).normalize();
    sae::TopKConfig plain = c;
    plain.project_decoder_gradient = false;
    Model m(plain, p);
    Model::Gradients unused;
    Model::Workspace w;
    return m.loss_and_gradient(x, unused, w).loss;
  };
  const auto dense = g.w_dec.to_dense();
  const double h = 1e-6;
  double worst = 0;
  for (auto r : g.w_dec.rows) {
    BOOST_TEST(std::abs(dense.row(r).dot(model.parameters().w_dec.row(r))) < 1e-12);  // orthogonal to the row
    for (index_t j = 0; j < 6; ++j) {
      sae::Matrix<double> plus = model.parameters().w_dec, minus = plus;
      plus(r, j) += h, minus(r, j) -= h;
      const double numeric = (loss_at(plus) - loss_at(minus)) / (2 * h);
      worst = std::max(worst, std::abs(numeric - dense(r, j)));
    }
  }
  BOOST_TEST(worst < 1e-7);
  // Without the projection the same check fails: the raw gradient has a component along the row.
  sae::TopKConfig plain = c;
  plain.project_decoder_gradient = false;
  Model raw(plain, model.parameters());
  Model::Gradients gr;
  raw.loss_and_gradient(x, gr, ws);
  double along = 0;
  for (std::size_t s = 0; s < gr.w_dec.rows.size(); ++s)
    along = std::max(along, std::abs(gr.w_dec.values.row(static_cast<index_t>(s)).dot(raw.parameters().w_dec.row(gr.w_dec.rows[s]))));
  BOOST_TEST(along > 1e-4);
}

// Resampling by hand: the only badly reconstructed row gives every dead latent its direction,
// the encoder row scaled to 0.2 x the live rows' mean norm, the bias zeroed; live latents untouched.
BOOST_AUTO_TEST_CASE(resampling_gives_dead_latents_the_residual_directions) {
  sae::AutoencoderParameters<double> p;
  p.w_enc = sae::Matrix<double>::Zero(4, 3);
  p.w_enc.row(0) << 3, 0, 4;  // norm 5
  p.w_enc.row(2) << 0, 1, 0;  // norm 1
  p.w_dec = p.w_enc;
  p.b_enc = Eigen::VectorXd::Constant(4, 0.7);
  const sae::AutoencoderParameters<double> before = p;
  sae::Matrix<double> x(3, 3), x_hat(3, 3);
  x << 1, 2, 3, 0, 0, 2, 5, 5, 5;
  x_hat = x;
  x_hat(1, 2) = 0;  // row 1's residual: (0, 0, 2)
  const std::vector<char> dead = {0, 1, 0, 1};
  sae::Rng rng(3);
  BOOST_TEST(sae::resample_dead_latents(p, dead, x, x_hat, rng) == 2);
  for (index_t j : {1, 3}) {
    BOOST_TEST((p.w_dec.row(j) - Eigen::RowVector3d(0, 0, 1)).norm() < 1e-15);
    BOOST_TEST((p.w_enc.row(j) - Eigen::RowVector3d(0, 0, 0.2 * 3.0)).norm() < 1e-15);  // 0.2 x mean(5, 1)
    BOOST_TEST(p.b_enc(j) == 0.0);
  }
  for (index_t j : {0, 2}) {
    BOOST_TEST(p.w_enc.row(j) == before.w_enc.row(j));
    BOOST_TEST(p.b_enc(j) == 0.7);
  }
  BOOST_TEST(sae::resample_dead_latents(p, dead, x, x, rng) == 0);  // nothing reconstructed badly
}

// In the model: with resample_every, latents dead for the window are resampled at the schedule's
// points (and only those), and their dead counters restart.
BOOST_AUTO_TEST_CASE(the_model_resamples_on_schedule) {
  sae::TopKConfig c{6, 40, 1};
  c.resample_every = 20, c.dead_window = 10;
  Model model(c);
  const auto x = random_matrix(10, 6, 4);
  Model::Gradients g;
  Model::Workspace ws;
  model.loss_and_gradient(x, g, ws);  // 10 samples: no resampling yet
  const auto after_first = model.parameters();
  const auto since = model.dead_latents().samples_since_fired();
  model.loss_and_gradient(x, g, ws);  // 20 samples: resample those unfired for >= 10
  index_t changed = 0, expected = 0;
  for (index_t j = 0; j < 40; ++j) {
    const bool was_dead = since[static_cast<std::size_t>(j)] >= 10;
    const bool moved = model.parameters().w_dec.row(j) != after_first.w_dec.row(j);
    expected += was_dead, changed += moved;
    BOOST_TEST(moved == was_dead, "latent " << j);
  }
  BOOST_TEST(expected > 20);  // K = 1 over 10 rows leaves most of the 40 latents unfired
  BOOST_TEST(changed == expected);
}

// AuxK's one-pass top-k over the dead columns against gathering them and running the main top-k
// (ties included: values rounded to a coarse grid).
BOOST_AUTO_TEST_CASE(auxk_direct_topk_matches_gathered_topk) {
  sae::Matrix<float> pre = random_matrix(50, 300, 8).cast<float>();
  pre = (pre.array() * 4).round() / 4;  // many ties
  std::vector<std::int32_t> columns;
  for (std::int32_t j = 0; j < 300; j += 3) columns.push_back(j);
  columns.push_back(299);
  for (index_t k : {1, 4, 32}) {
    sae::SparseCodes<float> direct, gathered;
    sae::ops::topk_of_columns(sae::cpu{}, pre, columns, k, direct);
    sae::Matrix<float> sub(pre.rows(), static_cast<index_t>(columns.size()));
    for (index_t c = 0; c < sub.cols(); ++c) sub.col(c) = pre.col(columns[static_cast<std::size_t>(c)]);
    sae::ops::topk_rows(sae::cpu{}, sub, k, sae::Selection::value, gathered);
    for (auto& j : gathered.indices) j = columns[static_cast<std::size_t>(j)];
    BOOST_TEST(direct.indices == gathered.indices);
    BOOST_TEST(direct.values == gathered.values);
  }
}
