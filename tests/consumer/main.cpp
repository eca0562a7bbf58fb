// Trains a tiny SAE through the installed package and checks it learned something.
#include <sae/sae.hpp>

#include <iostream>

int main() {
  sae::data::PlantedConfig pc;
  pc.num_samples = 512;
  pc.input_dim = 16;
  pc.num_features = 16;
  pc.k_true = 2;
  const auto data = sae::data::make_planted<float>(pc);
  sae::TopKAutoencoder<float> model(sae::TopKConfig{16, 32, 2});
  const double before = sae::metrics::mse(data.x, model.forward(data.x));
  auto trainer = sae::make_trainer<sae::TopKAutoencoder<float>>(sae::TrainConfig{5, 64, 0, true},
                                                                 sae::Adam<float>(sae::AdamConfig{1e-2}));
  trainer.fit(model, data.x, nullptr);
  const double after = sae::metrics::mse(data.x, model.forward(data.x));
  std::cout << "consumer: sae " << SAE_VERSION_STRING << " mse " << before << " -> " << after << "\n";
  return after < before ? 0 : 1;
}
