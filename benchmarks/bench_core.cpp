// Core CPU benchmark: seconds per SAE for the report-001 grid shapes (N = 5,978, D = 2,048,
// batch 256, K in {5, 10, 20, 100} x F in {512, 1024, 2048}), the encoder GEMM's achieved
// GFLOP/s, and where a training step spends its time (GEMM, top-k, sparse kernels, Adam). Adam
// must read and write every weight and both moments each step, so its floor is memory bandwidth:
// "adam floor" is the time of a plain read-modify-write pass over arrays of that size (p, m, v for
// W_enc and W_dec) on the same threads, and "of floor" that time over Adam's measured time.
//
//   build/benchmarks/bench_core [--epochs 25] [--ks 5,10,20,100] [--latents 512,1024,2048] [--precision fp32|bf16]
#include <sae/sae.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Model = sae::TopKAutoencoder<float>;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<long> parse_list(const char* s) {
  std::vector<long> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stol(item));
  return out;
}

struct Phases {
  double gemm = 0, topk = 0, sparse = 0, adam = 0;
  double total() const { return gemm + topk + sparse + adam; }
};

// Replays the model's training step phase by phase, with a timer around each. "adam" includes the
// decoder renormalisation and repacking W_enc for the next GEMM (both in Adam's pass).
Phases profile_steps(Model& model, const sae::Matrix<float>& x, long batch, int steps) {
  sae::Adam<float> adam;
  Model::Gradients grad;
  Model::Workspace ws;
  Phases p;
  const Model& m = model;
  const auto& w = m.parameters();
  sae::ops::PackedEncoder packed;  // in training Adam's pass packs W_enc: untimed here, timed under adam
  for (int s = 0; s < steps; ++s) {
    const sae::Matrix<float> xb = x.middleRows((s * batch) % (x.rows() - batch), batch);
    sae::ops::shape_packed_encoder(packed, w.w_enc.rows(), w.w_enc.cols(), m.config().encoder_precision);
    sae::ops::pack_encoder_rows(w.w_enc, 0, w.w_enc.rows(), packed);
    packed.fresh = true;
    auto t = Clock::now();
    sae::ops::encoder_preactivations(sae::cpu{}, xb, w.w_enc, w.b_enc, ws.pre, m.config().encoder_precision, ws.gemm,
                                     &packed);
    p.gemm += since(t);
    t = Clock::now();
    sae::ops::topk_rows(sae::cpu{}, ws.pre, m.k(), sae::Selection::value, ws.codes);
    p.topk += since(t);
    t = Clock::now();
    sae::ops::decode_with_code_gradients(sae::cpu{}, ws.codes, w.w_dec, static_cast<const sae::Vector<float>*>(nullptr),
                                         xb, 2.0f / static_cast<float>(xb.size()), ws.x_hat, ws.g, ws.dcode);
    sae::ops::sparse_weight_gradients(sae::cpu{}, ws.codes, ws.g, xb, ws.groups, ws.dcode, grad.w_enc, grad.b_enc,
                                      grad.w_dec);
    p.sparse += since(t);
    t = Clock::now();
    adam.step(model, grad);
    model.normalize_decoder();
    p.adam += since(t);
  }
  return p;
}

// Seconds of one read-modify-write pass over three arrays of n floats (Adam's p, m, v traffic
// without its arithmetic), best of 5, on all threads.
double stream_pass_seconds(std::size_t n) {
  std::vector<float> p(n, 1.0f), m(n, 2.0f), v(n, 3.0f);
  double best = 1e30;
  for (int round = 0; round < 6; ++round) {
    const auto t = Clock::now();
    const auto count = static_cast<long>(n);
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long i = 0; i < count; ++i) {
      m[i] = 0.9f * m[i] + 0.1f;
      v[i] = 0.999f * v[i] + 0.001f;
      p[i] -= 1e-3f * m[i] / (v[i] + 1.0f);
    }
    if (round > 0) best = std::min(best, since(t));  // round 0 faults the pages in
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  long epochs = 25, n = 5978, d = 2048, batch = 256;
  std::vector<long> ks = {5, 10, 20, 100}, latents = {512, 1024, 2048};
  sae::EncoderPrecision precision = sae::EncoderPrecision::fp32;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::stol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--ks")) ks = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--latents")) latents = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rows")) n = std::stol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--precision") && (!std::strcmp(argv[i + 1], "fp32") || !std::strcmp(argv[i + 1], "bf16")))
      precision = argv[i + 1][0] == 'b' ? sae::EncoderPrecision::bf16 : sae::EncoderPrecision::fp32;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  sae::data::PlantedConfig pc;
  pc.num_samples = n;
  pc.input_dim = d;
  pc.num_features = 4096;
  pc.k_true = 32;
  pc.noise_std = 0.05;
  const auto data = sae::data::make_planted<float>(pc);
  std::printf("bench_core: N=%ld D=%ld batch=%ld epochs=%ld threads=%d encoder GEMM=ours %s, %ld-float vectors\n", n,
              d, batch, epochs, sae::max_threads(), precision == sae::EncoderPrecision::bf16 ? "bf16" : "fp32",
              static_cast<long>(sae::ops::detail::kLanes));
  std::printf("%5s %5s %9s %10s %7s %7s %7s %7s %8s %8s %9s %8s\n", "K", "F", "s/SAE", "GEMM GF/s", "gemm%", "topk%",
              "sparse%", "adam%", "step ms", "adam ms", "adam floor", "of floor");
  double grid_seconds = 0;
  for (long f : latents) {
    for (long k : ks) {
      sae::TopKConfig config{d, f, k};
      config.encoder_precision = precision;
      Model model(config);
      auto trainer = sae::make_trainer<Model>(sae::TrainConfig{epochs, batch, 0, true}, sae::Adam<float>());
      const auto summary = trainer.fit(model, data.x, nullptr);
      grid_seconds += summary.seconds;
      Model probe(config);
      const int steps = 40;
      const Phases p = profile_steps(probe, data.x, batch, steps);
      const double gflops = 2.0 * batch * d * f * steps / p.gemm / 1e9;
      const double adam_floor = stream_pass_seconds(static_cast<std::size_t>(2 * f * d));
      const double traffic_gb = 2.0 * f * d * 6 * sizeof(float) / 1e9;  // p, m, v read and written
      std::printf("%5ld %5ld %9.2f %10.1f %6.1f%% %6.1f%% %6.1f%% %6.1f%% %8.2f %8.2f %6.2f ms %7.0f%%   "
                  "(%.0f GB/s; EV %.4f)\n",
                  k, f, summary.seconds, gflops, 100 * p.gemm / p.total(), 100 * p.topk / p.total(),
                  100 * p.sparse / p.total(), 100 * p.adam / p.total(), 1e3 * p.total() / steps, 1e3 * p.adam / steps,
                  1e3 * adam_floor, 100 * adam_floor / (p.adam / steps), traffic_gb / adam_floor,
                  summary.history.back().train_ev);
      std::fflush(stdout);
    }
  }
  std::printf("whole grid: %.1f s of training\n", grid_seconds);
  return 0;
}
