#define BOOST_TEST_MODULE train
#include "test_helpers.hpp"

#include <sae/sae.hpp>
#include <sae/train/l0_search.hpp>

#include <fstream>
#include <sstream>

using sae::index_t;
using Model = sae::TopKAutoencoder<float>;

namespace {
sae::data::PlantedData<float> planted(index_t n, std::uint64_t seed) {
  sae::data::PlantedConfig c;
  c.num_samples = n;
  c.input_dim = 32;
  c.num_features = 48;
  c.k_true = 3;
  c.noise_std = 0.01;
  c.seed = seed;
  return sae::data::make_planted<float>(c);
}

Model train_model(const sae::Matrix<float>& x, std::uint64_t seed, index_t epochs) {
  Model model(sae::TopKConfig{32, 96, 3, sae::Selection::value, false, seed});
  auto trainer = sae::make_trainer<Model>(sae::TrainConfig{epochs, 128, seed, true}, sae::Adam<float>(sae::AdamConfig{3e-3}));
  trainer.fit(model, x, nullptr);
  return model;
}

// For each true direction, the best cosine similarity among decoder rows, averaged.
double mean_max_cosine(const sae::Matrix<float>& truth, const sae::Matrix<float>& w_dec) {
  const Eigen::MatrixXf cos = truth * w_dec.transpose();  // both have unit rows
  return static_cast<double>(cos.rowwise().maxCoeff().mean());
}
}  // namespace

BOOST_AUTO_TEST_CASE(training_recovers_a_planted_dictionary) {
  // 48 true directions in 32 dims, 3 active per sample; SAE with F = 96, K = 3, 60 epochs, Adam 3e-3.
  // Train on 8,000 samples, score explained variance on 2,000 held-out ones.
  const auto data = planted(10000, 1);
  const sae::Matrix<float> train = data.x.topRows(8000), test = data.x.bottomRows(2000);
  Model model = train_model(train, 0, 60);
  const double recovery = mean_max_cosine(data.dictionary, model.parameters().w_dec);
  const auto eval = sae::metrics::evaluate(model, test);
  BOOST_TEST_MESSAGE("mean max cosine " << recovery << ", held-out EV " << eval.explained_variance);
  BOOST_TEST(recovery > 0.9);
  BOOST_TEST(eval.explained_variance > 0.9);
}

// The bf16 encoder GEMM trains the same model to within its rounding: same data, seeds and schedule
// as fp32, held-out EV within 0.01, and the two encoders agree on nearly every active latent.
BOOST_AUTO_TEST_CASE(bf16_encoder_trains_like_fp32,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       return boost::test_tools::assertion_result(sae::bf16_encoder_available);
                     })) {
  const auto data = planted(10000, 1);
  const sae::Matrix<float> train = data.x.topRows(8000), test = data.x.bottomRows(2000);
  double ev[2];
  Model* trained[2];
  std::vector<Model> models;
  models.reserve(2);
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    sae::TopKConfig config{32, 96, 3, sae::Selection::value, false, 0};
    config.encoder_precision = bf16 ? sae::EncoderPrecision::bf16 : sae::EncoderPrecision::fp32;
    models.emplace_back(config);
    auto trainer = sae::make_trainer<Model>(sae::TrainConfig{60, 128, 0, true}, sae::Adam<float>(sae::AdamConfig{3e-3}));
    trainer.fit(models.back(), train, nullptr);
    trained[bf16] = &models.back();
    ev[bf16] = sae::metrics::evaluate(models.back(), test).explained_variance;
  }
  const double overlap = sae::metrics::active_overlap(trained[1]->encode(test), trained[0]->encode(test));
  // The bf16 model's own weights through the fp32 encoder: what its rounding changes at inference.
  sae::TopKConfig exact = trained[1]->config();
  exact.encoder_precision = sae::EncoderPrecision::fp32;
  const Model reference(exact, trained[1]->parameters());
  const double same_weights = sae::metrics::active_overlap(trained[1]->encode(test), reference.encode(test));
  BOOST_TEST_MESSAGE("held-out EV fp32 " << ev[0] << ", bf16 " << ev[1] << "; overlap with the fp32-trained model "
                                         << overlap << ", with its own weights through fp32 " << same_weights);
  BOOST_TEST(ev[0] > 0.9);
  BOOST_TEST(std::abs(ev[1] - ev[0]) < 0.01);
  BOOST_TEST(same_weights > 0.99);
  BOOST_TEST(!sae::test::same(trained[1]->parameters().w_enc, trained[0]->parameters().w_enc));  // bf16 really ran
}

// After an Adam step the model encodes with W_enc as the optimizer repacked it, block by block; that
// must equal packing the same weights afresh, and an edit through parameters() must be seen.
BOOST_AUTO_TEST_CASE(encoder_repacked_by_the_optimizer_matches_a_fresh_pack) {
  const auto data = planted(700, 9);
  for (const auto precision : {sae::EncoderPrecision::fp32, sae::EncoderPrecision::bf16}) {
    if (precision == sae::EncoderPrecision::bf16 && !sae::bf16_encoder_available) continue;
    BOOST_TEST_CONTEXT("bf16=" << (precision == sae::EncoderPrecision::bf16)) {
      sae::TopKConfig config{32, 100, 4};  // 100 latents: two whole 48-row blocks and a partial one
      config.encoder_precision = precision;
      Model model(config);
      auto trainer = sae::make_trainer<Model>(sae::TrainConfig{2, 128, 0, true}, sae::Adam<float>(sae::AdamConfig{3e-3}));
      trainer.fit(model, data.x, nullptr);
      const Model& trained = model;  // const: reading the weights must not drop the packed copy
      const auto fresh = [&] { return Model(config, trained.parameters()).encode(data.x); };
      const auto codes = model.encode(data.x);
      const auto expected = fresh();
      BOOST_TEST(codes.indices == expected.indices);
      BOOST_TEST(codes.values == expected.values);
      model.parameters().w_enc.row(60) *= -2.0f;  // must not be hidden by the stale packed copy
      const auto edited = model.encode(data.x), edited_expected = fresh();
      BOOST_TEST(edited.values == edited_expected.values);
      BOOST_TEST(edited.values != codes.values);
    }
  }
}

BOOST_AUTO_TEST_CASE(bf16_encoder_needs_float) {
  sae::TopKConfig config{8, 16, 2};
  config.encoder_precision = sae::EncoderPrecision::bf16;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::TopKAutoencoder<double> m(config); },
                                                        {"bf16 needs Scalar = float"});
}

BOOST_AUTO_TEST_CASE(same_seed_same_weights_bitwise) {
  const auto data = planted(1500, 3);
  const Model a = train_model(data.x, 7, 3), b = train_model(data.x, 7, 3), c = train_model(data.x, 8, 3);
  BOOST_TEST(sae::test::same(a.parameters().w_enc, b.parameters().w_enc));
  BOOST_TEST(sae::test::same(a.parameters().w_dec, b.parameters().w_dec));
  BOOST_TEST(sae::test::same(a.parameters().b_enc, b.parameters().b_enc));
  BOOST_TEST(!sae::test::same(a.parameters().w_enc, c.parameters().w_enc));
}

BOOST_AUTO_TEST_CASE(decoder_rows_stay_unit_norm_and_loss_falls) {
  const auto data = planted(2000, 4);
  Model model(sae::TopKConfig{32, 64, 3});
  auto trainer = sae::make_trainer<Model>(sae::TrainConfig{5, 256, 0, true}, sae::Adam<float>());
  std::ostringstream csv;
  const sae::Matrix<float> val = data.x.topRows(300);
  const auto summary = trainer.fit(model, data.x, &val, sae::CsvLogger(csv));
  BOOST_TEST(summary.history.size() == 5u);
  BOOST_TEST(summary.history.back().train_loss < summary.history.front().train_loss);
  BOOST_TEST(summary.history.back().validation_ev.has_value());
  const Eigen::VectorXf norms = model.parameters().w_dec.rowwise().norm();
  BOOST_TEST((norms.array() - 1).abs().maxCoeff() < 1e-5f);
  // CSV: header + one line per epoch, 7 columns each.
  std::istringstream lines(csv.str());
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    BOOST_TEST(std::count(line.begin(), line.end(), ',') == 6);
    ++count;
  }
  BOOST_TEST(count == 6);
  // The validation metrics in the history match a fresh evaluation of the final model.
  BOOST_TEST(*summary.history.back().validation_ev ==
                 sae::metrics::explained_variance(val, model.forward(val)),
             boost::test_tools::tolerance(1e-6));  // float forward, summed in another order
}

BOOST_AUTO_TEST_CASE(callbacks_stop_training) {
  const auto data = planted(500, 5);
  Model model(sae::TopKConfig{32, 64, 3});
  auto trainer = sae::make_trainer<Model>(sae::TrainConfig{10, 128, 0, true}, sae::Adam<float>());
  struct StopAtThree {
    bool on_epoch_end(const sae::EpochStats& s, const Model&) { return s.epoch == 3; }
  };
  const auto summary = trainer.fit(model, data.x, nullptr, StopAtThree{});
  BOOST_TEST(summary.history.size() == 3u);
  BOOST_TEST(summary.stopped_early);

  // EarlyStop: stop after `patience` epochs without improvement.
  sae::EarlyStop stop(2);
  const double losses[] = {1.0, 0.8, 0.85, 0.79, 0.9, 0.95};
  std::vector<bool> decisions;
  for (int e = 0; e < 6; ++e) {
    sae::EpochStats s;
    s.epoch = e + 1;
    s.train_loss = losses[e];
    decisions.push_back(stop.on_epoch_end(s, model));
  }
  BOOST_TEST(decisions == std::vector<bool>({false, false, false, false, false, true}), boost::test_tools::per_element());
  BOOST_TEST(stop.best() == 0.79);
}

BOOST_AUTO_TEST_CASE(divergence_is_a_clear_error) {
  auto data = planted(300, 6);
  data.x *= 1e30f;  // the first weight gradients (~1e27 x 1e30) overflow float on every ISA
  Model model(sae::TopKConfig{32, 64, 3});
  auto trainer = sae::make_trainer<Model>(sae::TrainConfig{3, 64, 0, true}, sae::Adam<float>(sae::AdamConfig{1e3}));
  sae::test::require_throws_with<sae::numeric_error>([&] { trainer.fit(model, data.x, nullptr); },
                                                     {"loss became", "lower the learning rate"});
}

BOOST_AUTO_TEST_CASE(checkpoint_round_trip_and_bad_checkpoints) {
  sae::test::ScratchDir dir("checkpoint");
  sae::TopKConfig c{8, 16, 4, sae::Selection::magnitude, true, 3};
  Model model(c);
  model.parameters().b_dec.setConstant(0.5f);
  sae::save_checkpoint(dir / "ckpt", model);
  sae::save_checkpoint(dir / "ckpt", model);  // overwriting an existing checkpoint works
  const Model back = sae::load_checkpoint<float>(dir / "ckpt");
  BOOST_TEST((back.config().selection == sae::Selection::magnitude));
  BOOST_TEST(back.config().decoder_bias);
  BOOST_TEST(sae::test::same(back.parameters().w_enc, model.parameters().w_enc));
  BOOST_TEST(sae::test::same(back.parameters().w_dec, model.parameters().w_dec));
  {  // a seed no 64-bit integer holds is refused, not cast (the fuzzer's find)
    auto json = sae::to_json(c);
    json["seed"] = 5.66667e38;
    sae::test::require_throws_with<sae::io_error>([&] { sae::topk_config_from_json(json, "cfg.json"); },
                                                  {"cfg.json", "seed: expected a non-negative integer below 2^64"});
  }
  BOOST_TEST(sae::test::same(back.parameters().b_dec, model.parameters().b_dec));
  // A double model can load a float checkpoint.
  const auto as_double = sae::load_checkpoint<double>(dir / "ckpt");
  BOOST_TEST(sae::test::same(as_double.parameters().b_enc.cast<float>(), model.parameters().b_enc));
  BOOST_TEST(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);  // no leftovers

  // Wrong shape in one file: the error names that file.
  sae::io::save_npy(dir / "ckpt" / "w_dec.npy", sae::Matrix<float>::Zero(16, 7).eval());
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_checkpoint<float>(dir / "ckpt"); },
                                                {"w_dec.npy", "shape (16, 7)", "(16, 8)"});
  std::filesystem::remove(dir / "ckpt" / "b_enc.npy");
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_checkpoint<float>(dir / "ckpt"); }, {"b_enc.npy"});
  sae::io::write_text_atomically(dir / "ckpt" / "config.json", "{\"format\": \"other\"}");
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_checkpoint<float>(dir / "ckpt"); },
                                                {"config.json", "not an sae checkpoint"});
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_checkpoint<float>(dir / "none"); },
                                                {"config.json", "no such JSON file"});
}

BOOST_AUTO_TEST_CASE(checkpointer_and_json_logger_write_files) {
  sae::test::ScratchDir dir("callbacks");
  const auto data = planted(400, 8);
  Model model(sae::TopKConfig{32, 64, 3});
  auto trainer = sae::make_trainer<Model>(sae::TrainConfig{3, 128, 0, true}, sae::Adam<float>());
  trainer.fit(model, data.x, nullptr, sae::Checkpointer(dir / "ckpt", 2), sae::JsonLogger(dir / "log.json"));
  const auto log = sae::io::read_json_file((dir / "log.json").string());
  BOOST_TEST(log.at("epochs").as_array().size() == 3u);
  BOOST_TEST(!log.at("stopped_early").as_bool());
  const Model back = sae::load_checkpoint<float>(dir / "ckpt");  // saved after the last epoch
  BOOST_TEST(sae::test::same(back.parameters().w_enc, model.parameters().w_enc));
}

BOOST_AUTO_TEST_CASE(shared_pass_training_equals_separate_training) {
  const auto data = planted(900, 9);
  const std::vector<sae::TopKConfig> configs = {{32, 48, 2}, {32, 96, 5}, {32, 64, 3, sae::Selection::magnitude}};
  const sae::TrainConfig tc{3, 128, 4, true};
  std::vector<Model> shared;
  for (const auto& c : configs) shared.emplace_back(c);
  auto trainer = sae::make_trainer<Model>(tc, sae::Adam<float>());
  const auto summaries = trainer.fit_shared(shared, data.x, nullptr);
  BOOST_TEST(summaries.size() == 3u);
  for (std::size_t m = 0; m < configs.size(); ++m) {
    Model alone(configs[m]);
    auto t = sae::make_trainer<Model>(tc, sae::Adam<float>());
    const auto s = t.fit(alone, data.x, nullptr);
    BOOST_TEST(sae::test::same(alone.parameters().w_enc, shared[m].parameters().w_enc));
    BOOST_TEST(sae::test::same(alone.parameters().w_dec, shared[m].parameters().w_dec));
    BOOST_TEST(s.history.back().train_loss == summaries[m].history.back().train_loss);
  }
}

BOOST_AUTO_TEST_CASE(validation_is_scored_on_the_asked_epochs) {
  const auto data = planted(600, 10);
  const sae::Matrix<float> train = data.x.topRows(500), val = data.x.bottomRows(100);
  const auto scored_epochs = [&](index_t every) {
    Model model(sae::TopKConfig{32, 64, 3});
    sae::TrainConfig c{7, 128, 0, true};
    c.validate_every = every;
    std::vector<index_t> scored;
    for (const auto& s : sae::make_trainer<Model>(c, sae::Adam<float>()).fit(model, train, &val).history)
      if (s.validation_ev) scored.push_back(s.epoch);
    return scored;
  };
  BOOST_TEST(scored_epochs(1) == (std::vector<index_t>{1, 2, 3, 4, 5, 6, 7}), boost::test_tools::per_element());
  BOOST_TEST(scored_epochs(3) == (std::vector<index_t>{3, 6, 7}), boost::test_tools::per_element());  // and the last
  BOOST_TEST(scored_epochs(0).empty());
  sae::TrainConfig bad;
  bad.validate_every = -1;
  BOOST_CHECK_THROW(bad.validate(), sae::invalid_argument);
}

// The model concept: both models satisfy it; a type missing a piece is detected piece by piece
// (the Trainer's static_assert then names it).
namespace {
struct NotAModel {
  using scalar_type = float;
  using backend_type = sae::cpu;
  struct Parameters {};
  struct Gradients {};
  struct Workspace {};
  sae::index_t input_dim() const { return 1; }
  float loss_and_gradient(const sae::Matrix<float>&, Gradients&, Workspace&) { return 0; }  // not a StepLoss
};
}  // namespace

BOOST_AUTO_TEST_CASE(model_concept_is_checked_piece_by_piece) {
  static_assert(sae::require_trainable_model<sae::TopKAutoencoder<float>>());
  static_assert(sae::require_trainable_model<sae::MatryoshkaAutoencoder<double>>());
  static_assert(sae::model_detail::has_types<NotAModel>::value && sae::model_detail::has_input_dim<NotAModel>::value);
  BOOST_TEST(!sae::model_detail::has_step<NotAModel>::value);
  BOOST_TEST(!sae::model_detail::has_forward<NotAModel>::value);
  BOOST_TEST(!sae::model_detail::has_normalize<NotAModel>::value);
  BOOST_TEST(sae::model_detail::has_step<sae::TopKAutoencoder<double>>::value);
}

BOOST_AUTO_TEST_CASE(checkpoints_are_generic_over_architectures) {
  sae::test::ScratchDir dir("checkpoint-arch");
  // Matryoshka through the same Checkpointer: config (groups), parameters and threshold come back.
  using Mat = sae::MatryoshkaAutoencoder<float>;
  sae::MatryoshkaConfig mc;
  mc.input_dim = 32, mc.num_latents = 64, mc.k = 3, mc.group_sizes = {8, 24, 32}, mc.decoder_bias = true, mc.seed = 5;
  Mat mat(mc);
  const auto data = planted(400, 8);
  auto trainer = sae::make_trainer<Mat>(sae::TrainConfig{2, 128, 0, true}, sae::Adam<float>());
  trainer.fit(mat, data.x, nullptr, sae::Checkpointer(dir / "mat", 1));
  const Mat back = sae::load_model<Mat>(dir / "mat");
  BOOST_TEST(back.config().group_sizes == mc.group_sizes, boost::test_tools::per_element());
  BOOST_TEST(back.config().decoder_bias);
  BOOST_TEST(back.threshold() == mat.threshold());
  BOOST_TEST(mat.threshold() > 0);
  BOOST_TEST(sae::test::same(back.parameters().w_dec, mat.parameters().w_dec));
  BOOST_TEST(sae::test::same(back.parameters().b_dec, mat.parameters().b_dec));
  BOOST_TEST((back.encode(data.x).to_dense() - mat.encode(data.x).to_dense()).cwiseAbs().maxCoeff() == 0.0f);
  // Another architecture's checkpoint is refused, naming both.
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_checkpoint<float>(dir / "mat"); },
                                                {"config.json", "holds a 'matryoshka' SAE, not 'topk'"});
  // A checkpoint of the previous format (sae.topk.v1, no architecture field) still loads as TopK.
  Model topk(sae::TopKConfig{8, 16, 4});
  sae::save_checkpoint(dir / "v1", topk);
  auto meta = sae::io::read_json_file((dir / "v1" / "config.json").string());
  sae::io::Json v1 = sae::io::Json::object();
  v1["format"] = "sae.topk.v1";
  v1["scalar"] = "float32";
  v1["config"] = meta.at("config");
  sae::io::write_text_atomically(dir / "v1" / "config.json", v1.dump() + "\n");
  BOOST_TEST(sae::test::same(sae::load_checkpoint<float>(dir / "v1").parameters().w_enc, topk.parameters().w_enc));
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_model<Mat>(dir / "v1"); },
                                                {"holds a 'topk' SAE, not 'matryoshka'"});
}

// median_decoder_bias: the trainer starts b_dec at the geometric median of the training rows
// (all of them below 8,192), once, for a fresh model only.
namespace {
struct NoUpdate {
  template <class M>
  void step(M&, const typename M::Gradients&) {}
};
}  // namespace
BOOST_AUTO_TEST_CASE(median_decoder_bias_starts_at_the_training_rows_geometric_median) {
  const auto data = planted(500, 3);
  sae::TopKConfig c{data.x.cols(), 32, 4};
  c.decoder_bias = true;
  c.median_decoder_bias = true;
  sae::TopKAutoencoder<float> model(c);
  BOOST_TEST(model.parameters().b_dec.cwiseAbs().maxCoeff() == 0.0f);
  auto trainer = sae::make_trainer<sae::TopKAutoencoder<float>>(sae::TrainConfig{1, 100, 0, true, 0}, NoUpdate{});
  trainer.fit(model, data.x, nullptr);
  const sae::Vector<float> expected = sae::data::geometric_median(data.x);
  BOOST_TEST((model.parameters().b_dec - expected).cwiseAbs().maxCoeff() == 0.0f);
  BOOST_TEST(expected.norm() > 0.0f);
  sae::TopKAutoencoder<float> loaded(c, model.parameters());  // from stored parameters: left alone
  const sae::Matrix<float> shifted = data.x.array() + 5.0f;
  trainer.fit(loaded, shifted, nullptr);
  BOOST_TEST((loaded.parameters().b_dec - expected).cwiseAbs().maxCoeff() == 0.0f);
  sae::TopKConfig bad = c;
  bad.decoder_bias = false;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::TopKAutoencoder<float> m(bad); }, {"needs decoder_bias"});
}

BOOST_AUTO_TEST_CASE(recipes_set_what_they_say) {
  const sae::TopKConfig base{96, 64, 6};
  const auto same = sae::apply_recipe(base, sae::Recipe::reports, 1000);
  BOOST_TEST(sae::to_json(same).dump() == sae::to_json(base).dump());
  const auto modern = sae::apply_recipe(base, sae::Recipe::modern, 1000);
  BOOST_TEST(modern.decoder_bias);
  BOOST_TEST(modern.median_decoder_bias);
  BOOST_TEST(modern.tied_init);
  BOOST_TEST(modern.aux_k == 4);
  BOOST_TEST(modern.aux_alpha == 1.0 / 32);
  BOOST_TEST(modern.dead_window == 2000);  // two epochs
  sae::TopKConfig wide = base;
  wide.k = 7;
  BOOST_TEST(!sae::apply_recipe(wide, sae::Recipe::modern, 1000).tied_init);  // tied only for 16 K <= D
  sae::TopKConfig tiny{4, 3, 1};
  BOOST_TEST(sae::apply_recipe(tiny, sae::Recipe::modern, 10).aux_k == 3);
  BOOST_TEST((sae::parse_recipe("modern") == sae::Recipe::modern));
  sae::test::require_throws_with<sae::invalid_argument>([] { sae::parse_recipe("fancy"); }, {"'fancy'"});
}

// The JumpReLU L0 search (train/l0_search.hpp) against a known response L0 = 40 x lambda^-1/2 x
// start/K: the bisection's pressures, hand-computed, and its stop once within 10% of K.
BOOST_AUTO_TEST_CASE(jumprelu_l0_search_bisects_the_pressure) {
  sae::JumpReluConfig base;
  base.input_dim = 8, base.num_latents = 512;
  const auto response = [](const sae::JumpReluConfig& c) {
    return 40.0 / std::sqrt(c.sparsity_coefficient) * static_cast<double>(c.initial_l0) / 20.0;
  };
  const auto found = sae::search_jumprelu_l0(base, 20, 8, 0.1, response);
  // s = 0 (L0 40, too dense), 3 (1.26), 1.5 (7.1), 0.75 (16.9), 0.375 (26.0), 0.5625 (20.9: within 2).
  const double pressures[] = {0, 3, 1.5, 0.75, 0.375, 0.5625};
  BOOST_REQUIRE_EQUAL(found.steps.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    BOOST_TEST(found.steps[i].config.sparsity_coefficient == std::pow(10.0, pressures[i]), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(found.steps[i].config.initial_l0 == 20);
  }
  BOOST_TEST(found.best == 5u);
  BOOST_TEST(found.matched);
  // A response that never gets sparse enough: the pressure goes past 3, lambda stays 1e3 and the
  // thresholds start lower (K x 2^(3 - s)); the closest run is reported, unmatched.
  const auto stuck = sae::search_jumprelu_l0(base, 20, 4, 0.1, [](const sae::JumpReluConfig& c) {
    return 30.0 + static_cast<double>(c.initial_l0) / 100.0;
  });
  BOOST_REQUIRE_EQUAL(stuck.steps.size(), 4u);
  BOOST_TEST(stuck.steps[2].config.sparsity_coefficient == 1e3);  // s = 4.5
  BOOST_TEST(stuck.steps[2].config.initial_l0 == 7);              // 20 x 2^-1.5 = 7.07
  BOOST_TEST(stuck.steps[3].config.initial_l0 == 4);              // s = 5.25: 20 x 2^-2.25 = 4.2
  BOOST_TEST(stuck.best == 3u);
  BOOST_TEST(!stuck.matched);
}
