// The architecture registry (model/registry.hpp): what every registered architecture must pass,
// iterated over the registry so a new architecture is tested by adding its line there.
#define BOOST_TEST_MODULE registry
#include "test_helpers.hpp"

#include <sae/io/config_json.hpp>
#include <sae/model/registry.hpp>

#include <string>
#include <type_traits>
#include <vector>

namespace {

// A small config of any architecture: the shape, K, decoder bias and seed set by key.
template <class Model>
typename Model::Config small_config(bool decoder_bias, std::uint64_t seed) {
  typename Model::Config c{};
  sae::io::assign_shared_fields(sae::TopKConfig{6, 12, 3, sae::Selection::value, decoder_bias, seed}, c);
  return c;
}

// Whether slot `slot` of Model has a true derivative (JumpReLU's thresholds get the paper's
// pseudo-derivative instead; architectures_test checks it against a known density).
template <class Model>
bool differentiable(int slot) {
  return !(std::is_same_v<Model, sae::JumpReluAutoencoder<double>> && slot == 4);
}

}  // namespace

// Every parameter slot the optimizer visits, by central differences of the model's own loss.
BOOST_AUTO_TEST_CASE(every_slot_of_every_architecture_by_central_differences) {
  const sae::Matrix<double> x = sae::test::random_matrix(9, 6, 21);
  sae::for_each_architecture<double>([&](auto tag) {
    using Model = typename decltype(tag)::type;
    for (const bool bias : {false, true}) {
      BOOST_TEST_CONTEXT(Model::architecture << (bias ? " with decoder bias" : "")) {
        Model model(small_config<Model>(bias, 3));
        typename Model::Gradients g, unused;
        typename Model::Workspace ws;
        model.loss_and_gradient(x, g, ws);
        int slots = 0;
        model.for_each_parameter(g, [&](int slot, auto& param, const auto& grad, auto&&...) {
          ++slots;
          if (!differentiable<Model>(slot) || param.size() == 0) return;
          Eigen::MatrixXd analytic;
          if constexpr (std::is_same_v<std::decay_t<decltype(grad)>, sae::RowSparse<double>>) analytic = grad.to_dense();
          else analytic = grad;
          BOOST_REQUIRE_EQUAL(analytic.size(), param.size());
          double worst = 0;
          for (sae::index_t r = 0; r < param.rows(); ++r)
            for (sae::index_t c = 0; c < param.cols(); ++c) {
              const double saved = param(r, c), h = 1e-6;
              param(r, c) = saved + h;
              const double up = model.loss_and_gradient(x, unused, ws).loss;
              param(r, c) = saved - h;
              const double down = model.loss_and_gradient(x, unused, ws).loss;
              param(r, c) = saved;
              const double numeric = (up - down) / (2 * h), a = analytic(r, c);
              worst = std::max(worst, std::abs(numeric - a) / std::max(1e-4, std::abs(numeric) + std::abs(a)));
            }
          BOOST_TEST(worst < 1e-6, "slot " << slot << ": worst relative error " << worst);
        });
        // w_enc, b_enc, w_dec, b_dec with the bias, and JumpReLU's thresholds.
        BOOST_TEST(slots == 3 + (bias ? 1 : 0) + (std::is_same_v<Model, sae::JumpReluAutoencoder<double>> ? 1 : 0));
      }
    }
  });
}

// The registry: every architecture saves and loads back through load_any_checkpoint with every
// slot and its config equal; an unknown architecture is refused naming the file.
BOOST_AUTO_TEST_CASE(every_registered_architecture_round_trips_through_load_any) {
  sae::test::ScratchDir dir("registry");
  std::vector<std::string> seen;
  sae::for_each_architecture<double>([&](auto tag) {
    using Model = typename decltype(tag)::type;
    BOOST_TEST_CONTEXT(Model::architecture) {
      seen.emplace_back(Model::architecture);
      typename Model::Config c{};
      sae::io::assign_shared_fields(sae::TopKConfig{8, 16, 2, sae::Selection::value, true, 5}, c);
      const Model model(c);
      const auto path = dir / Model::architecture;
      sae::save_checkpoint(path, model);
      const auto any = sae::load_any_checkpoint<double>(path);
      BOOST_REQUIRE(std::holds_alternative<Model>(any));
      const Model& back = std::get<Model>(any);
      BOOST_TEST(sae::io::fields_to_json(back.config()).dump() == sae::io::fields_to_json(model.config()).dump());
      BOOST_TEST(back.config().seed == 5u);
      auto p = model.parameters();
      auto q = back.parameters();
      int slots = 0;
      Model::for_each_slot(p, c, [&](const char* name, auto& a, sae::index_t, sae::index_t) {
        Model::for_each_slot(q, c, [&](const char* other, auto& b, sae::index_t, sae::index_t) {
          if constexpr (std::is_same_v<std::decay_t<decltype(a)>, std::decay_t<decltype(b)>>)
            if (std::string(name) == other) {
              BOOST_TEST(sae::test::same(a, b), name);
              ++slots;
            }
        });
      });
      BOOST_TEST(slots >= 4);  // w_enc, b_enc, w_dec, b_dec (and JumpReLU's thresholds)
    }
  });
  BOOST_TEST((seen == sae::architecture_names()));
  BOOST_TEST(seen.size() == 4u);
  auto meta = sae::io::read_json_file((dir / "topk" / "config.json").string());
  meta["architecture"] = "gated";
  sae::io::write_text_atomically(dir / "topk" / "config.json", meta.dump());
  sae::test::require_throws_with<sae::io_error>([&] { sae::load_any_checkpoint<double>(dir / "topk"); },
                                                {"config.json", "unknown architecture 'gated'", "'matryoshka'"});
  sae::test::require_throws_with<sae::invalid_argument>([] { sae::with_architecture("gated", [](auto) {}); },
                                                        {"expected 'topk', 'batchtopk', 'jumprelu' or 'matryoshka', got 'gated'"});
}
