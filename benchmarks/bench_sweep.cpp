// SAEs per minute for the report's grid (K in {5,10,20,100} x latent_dim in {512,1024,2048}) at
// one (layer, position), training the 12 configs one after another vs in one shared pass over the
// data (Trainer::fit_shared). N = 5,978, batch 256, D from --dim (2,048 in the report).
//
//   build/benchmarks/bench_sweep [--epochs 25] [--dim 2048]
#include <sae/sae.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  long epochs = 25, d = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::stol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dim")) d = std::stol(argv[i + 1]);
    else return std::fprintf(stderr, "unknown flag %s\n", argv[i]), 2;
  }
  using Model = sae::TopKAutoencoder<float>;
  sae::data::PlantedConfig pc;
  pc.num_samples = 5978;
  pc.input_dim = d;
  pc.num_features = 2 * d;
  pc.k_true = 32;
  pc.noise_std = 0.05;
  const auto data = sae::data::make_planted<float>(pc);
  std::vector<sae::TopKConfig> configs;
  for (long f : {512, 1024, 2048})
    for (long k : {5, 10, 20, 100}) configs.push_back(sae::TopKConfig{d, f, k});
  const sae::TrainConfig tc{epochs, 256, 0, true};
  using Clock = std::chrono::steady_clock;

  auto t = Clock::now();
  for (const auto& c : configs) {
    Model m(c);
    auto trainer = sae::make_trainer<Model>(tc, sae::Adam<float>());
    trainer.fit(m, data.x, nullptr);
  }
  const double separate = std::chrono::duration<double>(Clock::now() - t).count();

  t = Clock::now();
  std::vector<Model> models;
  for (const auto& c : configs) models.emplace_back(c);
  auto trainer = sae::make_trainer<Model>(tc, sae::Adam<float>());
  trainer.fit_shared(models, data.x, nullptr);
  const double shared = std::chrono::duration<double>(Clock::now() - t).count();

  const double n = static_cast<double>(configs.size());
  std::printf("bench_sweep: N=5978 D=%ld epochs=%ld threads=%d, 12 configs\n", d, epochs, sae::max_threads());
  std::printf("  separate passes: %7.1f s  %6.1f SAEs/min\n", separate, n / separate * 60);
  std::printf("  shared pass:     %7.1f s  %6.1f SAEs/min  (%.2fx)\n", shared, n / shared * 60, separate / shared);
  std::printf("  projected 1,152-SAE report-002 sweep at 25 epochs, shared rate: %.0f min\n",
              1152 / (n / shared * 60) * (25.0 / static_cast<double>(epochs)));
  return 0;
}
