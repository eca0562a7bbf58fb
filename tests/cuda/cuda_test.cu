// CUDA backend vs the CPU backend. Every case that needs a GPU is skipped (and reported as
// skipped) when none is present; the error-path case runs everywhere.
#define BOOST_TEST_MODULE cuda
#include <boost/test/unit_test.hpp>

// The CPU umbrella first, on purpose: the models find the CUDA ops by argument-dependent lookup, so
// the include order does not matter (it once had to be <sae/cuda.hpp> first).
#include <sae/sae.hpp>
#include <sae/cuda.hpp>

#include <cmath>

using sae::index_t;
using GpuModel = sae::TopKAutoencoder<float, sae::cuda>;
using CpuModel = sae::TopKAutoencoder<float>;

namespace {
struct HasGpu {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(sae::cuda_device_count() > 0);
    if (!r) r.message() << "no CUDA device: skipped";
    return r;
  }
};

sae::Matrix<float> random_matrix(index_t r, index_t c, std::uint64_t seed, float scale = 1.0f) {
  sae::Rng rng(seed);
  sae::Matrix<float> m(r, c);
  for (index_t i = 0; i < m.size(); ++i) m.data()[i] = scale * static_cast<float>(rng.normal());
  return m;
}

float max_abs_diff(const sae::Matrix<float>& a, const sae::Matrix<float>& b) { return (a - b).cwiseAbs().maxCoeff(); }
}  // namespace

BOOST_AUTO_TEST_CASE(cuda_errors_name_the_call_and_place) {
  // An impossible allocation fails with or without a GPU (no device, or out of memory).
  try {
    sae::cuda_backend::DeviceBuffer<float> huge(std::size_t{1} << 60);
    BOOST_FAIL("expected sae::cuda_error");
  } catch (const sae::cuda_error& e) {
    const std::string what = e.what();
    BOOST_TEST(what.find("cudaMalloc") != std::string::npos, what);
    BOOST_TEST(what.find("device_matrix.cuh") != std::string::npos, what);
  }
}

BOOST_AUTO_TEST_CASE(unsupported_models_are_refused_before_touching_the_device) {
  // The config is checked before any parameter is uploaded, so this runs without a GPU too.
  const auto refusal = [](sae::TopKConfig c) {
    try {
      GpuModel model(c);
      return std::string("accepted");
    } catch (const sae::error& e) {
      return std::string(e.what());
    }
  };
  const std::string bias = refusal(sae::TopKConfig{16, 64, 4, sae::Selection::value, true, 1});
  BOOST_TEST(bias.find("decoder bias is not implemented on the CUDA backend") != std::string::npos, bias);
  const std::string large_k = refusal(sae::TopKConfig{16, 1024, 513, sae::Selection::value, false, 1});
  BOOST_TEST(large_k.find("k must be <= 512 on the CUDA backend, got 513") != std::string::npos, large_k);
}

BOOST_AUTO_TEST_CASE(topk_indices_identical_to_cpu, *boost::unit_test::precondition(HasGpu())) {
  // Shapes from tiny to the largest supported (F = 65,536, K = 512); values quantised so ties occur.
  const std::vector<std::pair<index_t, index_t>> shapes{{64, 1}, {64, 64}, {1000, 32}, {4096, 100}, {65536, 512}};
  for (const auto& [f, k] : shapes)
    for (auto selection : {sae::Selection::value, sae::Selection::magnitude}) {
      BOOST_TEST_CONTEXT("F=" << f << " K=" << k << " magnitude=" << (selection == sae::Selection::magnitude)) {
        sae::TopKConfig c{16, f, k, selection, false, 3};
        CpuModel cpu(c);
        GpuModel gpu(c, cpu.parameters());
        sae::Matrix<float> x = random_matrix(33, 16, 5);
        x = (x.array() * 4.0f).round() / 4.0f;  // coarse inputs: many equal pre-activations
        // Through each backend's own GEMM: rounding differs, so near-ties may flip.
        const auto cpu_codes = cpu.encode(x);
        const auto gpu_codes = gpu.encode(x);
        index_t mismatched_rows = 0;
        for (index_t i = 0; i < x.rows(); ++i) {
          bool same = true;
          for (index_t s = 0; s < k; ++s) same &= cpu_codes.row_indices(i)[s] == gpu_codes.row_indices(i)[s];
          mismatched_rows += same ? 0 : 1;
        }
        // GEMM rounding may reorder near-ties; the selection itself must agree on nearly every row.
        BOOST_TEST(mismatched_rows <= 1);
      }
    }
}

BOOST_AUTO_TEST_CASE(topk_kernel_exact_on_identical_inputs, *boost::unit_test::precondition(HasGpu())) {
  // With D = F and W_enc = I, b_enc = 0, the pre-activations are x itself on both backends, so
  // indices must be identical, ties included.
  for (index_t f : {37, 512, 2048}) {
    const index_t k = std::min<index_t>(f, 100);
    sae::TopKConfig c{f, f, k, sae::Selection::value, false, 1};
    auto params = CpuModel(c).parameters();
    params.w_enc.setIdentity();
    params.b_enc.setZero();
    CpuModel cpu(c, params);
    GpuModel gpu(c, params);
    sae::Matrix<float> x = random_matrix(20, f, 9);
    x = (x.array() * 2.0f).round();  // integers: heavy ties
    const auto a = cpu.encode(x), b = gpu.encode(x);
    BOOST_TEST(a.indices == b.indices, boost::test_tools::per_element());
    BOOST_TEST(a.values == b.values, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(loss_gradients_and_decode_match_cpu, *boost::unit_test::precondition(HasGpu())) {
  sae::TopKConfig c{64, 256, 8, sae::Selection::value, false, 2};
  CpuModel cpu(c);
  GpuModel gpu(c, cpu.parameters());
  const auto x = random_matrix(40, 64, 4);
  CpuModel::Gradients gc;
  CpuModel::Workspace wc;
  GpuModel::Gradients gg;
  GpuModel::Workspace wg;
  const double lc = cpu.loss_and_gradient(x, gc, wc).loss, lg = gpu.loss_and_gradient(x, gg, wg).loss;
  BOOST_TEST(lg == lc, boost::test_tools::tolerance(1e-4));
  sae::Matrix<float> dw;
  gg.w_dec.download(dw, sae::cuda_backend::context());
  BOOST_TEST(max_abs_diff(dw, gc.w_dec.to_dense()) < 1e-5f);
  gg.w_enc.download(dw, sae::cuda_backend::context());
  BOOST_TEST(max_abs_diff(dw, gc.w_enc.to_dense()) < 1e-5f);
  BOOST_TEST(max_abs_diff(gpu.forward(x), cpu.forward(x)) < 1e-4f);
  BOOST_TEST(max_abs_diff(gpu.decode(cpu.encode(x)), cpu.decode(cpu.encode(x))) < 1e-5f);
}

BOOST_AUTO_TEST_CASE(training_matches_cpu_within_tolerance, *boost::unit_test::precondition(HasGpu())) {
  // Same seed, data and batch order; 3 epochs with the shared Trainer and Adam.
  sae::data::PlantedConfig pc;
  pc.num_samples = 2000;
  pc.input_dim = 64;
  pc.num_features = 96;
  pc.k_true = 4;
  pc.seed = 7;
  const auto data = sae::data::make_planted<float>(pc);
  sae::TopKConfig c{64, 192, 4, sae::Selection::value, false, 11};
  CpuModel cpu(c);
  GpuModel gpu(c, cpu.parameters());
  const sae::TrainConfig tc{3, 128, 5, true};
  auto cpu_trainer = sae::make_trainer<CpuModel>(tc, sae::Adam<float>(sae::AdamConfig{1e-3}));
  auto gpu_trainer = sae::make_trainer<GpuModel>(tc, sae::Adam<float, sae::cuda>(sae::AdamConfig{1e-3}));
  const auto hc = cpu_trainer.fit(cpu, data.x, nullptr);
  const auto hg = gpu_trainer.fit(gpu, data.x, nullptr);
  BOOST_TEST(hg.history.back().train_loss == hc.history.back().train_loss, boost::test_tools::tolerance(1e-2));
  const float dw = max_abs_diff(gpu.parameters().w_dec, cpu.parameters().w_dec);
  const float de = max_abs_diff(gpu.parameters().w_enc, cpu.parameters().w_enc);
  BOOST_TEST_MESSAGE("after 3 epochs: max |w_dec diff| " << dw << ", max |w_enc diff| " << de);
  BOOST_TEST(dw < 1e-3f);
  BOOST_TEST(de < 1e-3f);
  for (index_t j = 0; j < c.num_latents; ++j)
    BOOST_TEST(std::abs(gpu.parameters().w_dec.row(j).norm() - 1.0f) < 1e-5f);
  const auto ev = sae::metrics::evaluate(gpu, data.x);
  BOOST_TEST(ev.explained_variance == sae::metrics::evaluate(cpu, data.x).explained_variance,
             boost::test_tools::tolerance(1e-3));
}

BOOST_AUTO_TEST_CASE(gemm_modes_trade_accuracy_as_documented, *boost::unit_test::precondition(HasGpu())) {
  sae::TopKConfig c{256, 512, 20, sae::Selection::value, false, 3};
  CpuModel cpu(c);
  const auto x = random_matrix(64, 256, 8);
  const auto reference = cpu.forward(x);
  for (auto mode : {sae::EncoderPrecision::fp32, sae::EncoderPrecision::tf32, sae::EncoderPrecision::bf16}) {
    auto gc = c;
    gc.encoder_precision = mode;
    GpuModel gpu(gc, cpu.parameters());
    const float err = max_abs_diff(gpu.forward(x), reference);
    BOOST_TEST_MESSAGE("encoder precision " << sae::name(mode) << ": max |x_hat diff| vs CPU fp32 " << err);
    BOOST_TEST(err < (mode == sae::EncoderPrecision::fp32 ? 1e-4f : 0.5f));
  }
}
