// Issue 16's two measurements beyond sae-compare's table:
//   auxk:     AuxK's share of a training step — K = 5, d = 2,048 on the bundled slice, encoder
//             tied, k_aux 4, two-epoch window, after 10 epochs (so latents are dead): the same
//             weights stepped with and without AuxK, alternating 30 rounds of one epoch each;
//             median milliseconds per step (loss, gradient and Adam step).
//   recovery: dictionary recovery on planted data (256 true directions in 64 dimensions, 10,000
//             training rows, F = 512, K = k_true, 25 epochs): the mean over the true directions
//             of their best cosine with a decoder row, for TopK as the reports train it, under
//             --recipe modern, and BatchTopK.
//
//   build/benchmarks/bench_dead_latents [--mode auxk|recovery|all] [--data examples/data/activations_layer4_pos3.npy]
#include <sae/sae.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Model = sae::TopKAutoencoder<float>;

void auxk_cost(const std::string& path) {
  const auto all = sae::io::load_npy_matrix<float>(path);
  const sae::Matrix<float> train = all.topRows(std::min<sae::index_t>(5978, all.rows()));
  sae::TopKConfig c{train.cols(), 2048, 5};
  c.tied_init = true, c.aux_k = 4, c.dead_window = 2 * train.rows();
  Model aux(c);
  auto warm = sae::make_trainer<Model>(sae::TrainConfig{10, 256, 0, true, 0}, sae::Adam<float>());
  warm.fit(aux, train, nullptr);
  sae::TopKConfig plain_config = c;
  plain_config.aux_k = 0, plain_config.dead_window = 0;
  Model plain(plain_config, aux.parameters());
  std::vector<char> dead;
  const auto dead_count = sae::DeadLatents(aux.dead_latents()).mask(c.num_latents, c.dead_window, dead);
  const sae::index_t batch = 256, steps = train.rows() / batch;
  std::vector<sae::Matrix<float>> batches;
  for (sae::index_t s = 0; s < steps; ++s) batches.push_back(train.middleRows(s * batch, batch));
  sae::Adam<float> adam_aux, adam_plain;
  Model::Gradients g;
  Model::Workspace ws_aux, ws_plain;
  std::vector<double> with, without;
  for (int round = 0; round < 30; ++round)
    for (int which = 0; which < 2; ++which) {
      Model& m = which ? plain : aux;
      auto& opt = which ? adam_plain : adam_aux;
      auto& ws = which ? ws_plain : ws_aux;
      const auto start = std::chrono::steady_clock::now();
      for (const auto& b : batches) {
        m.loss_and_gradient(b, g, ws);
        opt.step(m, g);
      }
      (which ? without : with)
          .push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
                     static_cast<double>(steps));
    }
  std::sort(with.begin(), with.end());
  std::sort(without.begin(), without.end());
  const double a = with[with.size() / 2], p = without[without.size() / 2];
  std::printf("AuxK cost (K=5, d=2048, k_aux 4, %lld dead at the start, %d threads): %.3f ms/step with, %.3f without: +%.1f%%\n",
              static_cast<long long>(dead_count), sae::max_threads(), a, p, 100 * (a / p - 1));
}

void recovery() {
  std::printf("planted recovery (mean best cosine to the 256 true directions; validation EV, dead %%)\n");
  for (sae::index_t k : {2, 4, 8, 16}) {
    sae::data::PlantedConfig pc;
    pc.num_samples = 12000, pc.input_dim = 64, pc.num_features = 256, pc.k_true = k, pc.seed = 3;
    const auto data = sae::data::make_planted<float>(pc);
    const sae::Matrix<float> train = data.x.topRows(10000), val = data.x.bottomRows(2000);
    const auto score = [&](const char* name, auto& model) {
      auto trainer = sae::make_trainer<std::decay_t<decltype(model)>>(sae::TrainConfig{25, 256, 0, true, 0}, sae::Adam<float>());
      trainer.fit(model, train, nullptr);
      const Eigen::MatrixXf cos = data.dictionary * model.parameters().w_dec.transpose();
      const auto e = sae::metrics::evaluate(model, val);
      std::printf("  K=%-3lld %-14s recovery %.4f  EV %.4f  dead %5.1f%%\n", static_cast<long long>(k), name,
                  cos.rowwise().maxCoeff().mean(), e.explained_variance, 100 * e.dead_fraction);
    };
    for (auto recipe : {sae::Recipe::reports, sae::Recipe::modern}) {
      Model m(sae::apply_recipe(sae::TopKConfig{64, 512, k}, recipe, train.rows()));
      score(recipe == sae::Recipe::reports ? "TopK" : "recipe modern", m);
    }
    sae::BatchTopKConfig bc;
    bc.input_dim = 64, bc.num_latents = 512, bc.k = k;
    sae::BatchTopKAutoencoder<float> batch_topk(bc);
    score("BatchTopK", batch_topk);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "all", data = SAE_EXAMPLES_DATA "/activations_layer4_pos3.npy";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mode")) mode = argv[i + 1];
    else if (!std::strcmp(argv[i], "--data")) data = argv[i + 1];
    else return std::fprintf(stderr, "bench_dead_latents: unknown flag %s\n", argv[i]), 2;
  }
  if (mode != "auxk" && mode != "recovery" && mode != "all")
    return std::fprintf(stderr, "bench_dead_latents: --mode: expected auxk, recovery or all, got '%s'\n", mode.c_str()), 2;
  try {
    if (mode != "recovery") auxk_cost(data);
    if (mode != "auxk") recovery();
  } catch (const std::exception& e) {
    return std::fprintf(stderr, "bench_dead_latents: %s\n", e.what()), 1;
  }
  return 0;
}
