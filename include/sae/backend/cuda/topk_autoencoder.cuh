// TopKAutoencoder<float, sae::cuda>: the same model, its parameters and Adam state in device
// memory. It fits the CPU model's interface — the Trainer, Adam, callbacks, metrics and
// checkpoints take it unchanged: batches arrive as host matrices and are uploaded, and
// parameters() downloads a host copy on demand. Adam steps run on the device (Adam::step
// delegates to device_adam_step), with the decoder renormalisation fused into its pass.
#pragma once

#include <sae/backend/cuda/device_matrix.cuh>
#include <sae/backend/cuda/kernels.cuh>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/optim/adam.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

namespace sae {

namespace cuda_backend {
struct Gradients {
  DeviceMatrix<float> w_enc, b_enc, w_dec;  // dense; rows of latents no sample selected stay zero
};

// Device buffers reused across steps.
struct Workspace {
  DeviceMatrix<float> x, pre, x_hat, g;
  DeviceBuffer<__nv_bfloat16> x16, w16;
  DeviceBuffer<int> idx, keys, keys_sorted, order, order_sorted, unique, counts, offsets, num_runs;
  DeviceBuffer<float> val, dcode;
  DeviceBuffer<unsigned char> cub_temp;
  DeviceBuffer<double> partial;
  std::vector<double> partial_host;
};

inline int grid_for(std::size_t n, int threads, int max_blocks = 4096) {
  return static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>((n + threads - 1) / threads, max_blocks)));
}
constexpr int kLossBlocks = 256;  // fixed, so the loss is summed in the same order every time
}  // namespace cuda_backend

template <class Scalar>
class TopKAutoencoder<Scalar, cuda> : public TopKCheckpointing {
  static_assert(std::is_same_v<Scalar, float>, "the CUDA backend trains float models");

 public:
  using scalar_type = float;
  using backend_type = cuda;
  using Parameters = AutoencoderParameters<float>;
  using Gradients = cuda_backend::Gradients;
  using Workspace = cuda_backend::Workspace;

  // config.encoder_precision picks the encoder GEMM's arithmetic: fp32, tf32 or bf16.
  explicit TopKAutoencoder(const TopKConfig& config)
      : TopKAutoencoder(config,
                        detail::init_parameters<float>(config.input_dim, config.num_latents, config.decoder_bias, config.seed)) {}

  TopKAutoencoder(const TopKConfig& config, Parameters params)
      : config_(config), ctx_(std::make_shared<cuda_backend::Context>(config.encoder_precision)) {
    config_.validate("TopKAutoencoder<float, cuda>");
    detail::require(!config_.decoder_bias, "TopKAutoencoder<float, cuda>",
                    "the decoder bias is not implemented on the CUDA backend (the reports' model has none)");
    detail::require(config_.k <= cuda_backend::kernels::kTopkMaxK, "TopKAutoencoder<float, cuda>",
                    "k must be <= " + std::to_string(cuda_backend::kernels::kTopkMaxK) + " on the CUDA backend, got " +
                        std::to_string(config_.k));
    detail::check_parameter_shapes(params, config_.input_dim, config_.num_latents, false, "TopKAutoencoder<float, cuda>");
    w_enc_.upload(params.w_enc, *ctx_);
    b_enc_.upload(params.b_enc, *ctx_);
    w_dec_.upload(params.w_dec, *ctx_);
    host_ = std::move(params);
    ctx_->synchronize();  // the host copy may be freed by the caller after return
  }

  const TopKConfig& config() const { return config_; }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  index_t k() const { return config_.k; }
  const cuda_backend::Context& context() const { return *ctx_; }

  // A host copy of the parameters, downloaded when the device copy has changed since.
  const Parameters& parameters() const {
    if (host_stale_) {
      w_enc_.download(host_.w_enc, *ctx_);
      b_enc_.download(host_.b_enc, *ctx_);
      w_dec_.download(host_.w_dec, *ctx_);
      host_stale_ = false;
    }
    return host_;
  }

  SparseCodes<float> encode(const Matrix<float>& x) const {
    Workspace ws;
    ws.x.upload(x, *ctx_);
    encode_device(ws);
    SparseCodes<float> codes;
    codes.resize(x.rows(), config_.k, config_.num_latents);
    ws.idx.download(codes.indices.data(), codes.indices.size(), *ctx_);
    ws.val.download(codes.values.data(), codes.values.size(), *ctx_);
    return codes;
  }

  Matrix<float> decode(const SparseCodes<float>& codes) const {
    detail::require(codes.num_latents == config_.num_latents, "decode()",
                    "codes have " + std::to_string(codes.num_latents) + " latents, model has " +
                        std::to_string(config_.num_latents));
    Workspace ws;
    ws.idx.upload(codes.indices.data(), codes.indices.size(), *ctx_);
    ws.val.upload(codes.values.data(), codes.values.size(), *ctx_);
    ws.x_hat.resize(codes.rows, config_.input_dim);
    decode_device(ws, codes.rows, codes.k);
    Matrix<float> x_hat;
    ws.x_hat.download(x_hat, *ctx_);
    return x_hat;
  }

  Matrix<float> forward(const Matrix<float>& x) const {
    Workspace ws;
    ws.x.upload(x, *ctx_);
    encode_device(ws);
    ws.x_hat.resize(x.rows(), config_.input_dim);
    decode_device(ws, x.rows(), config_.k);
    Matrix<float> x_hat;
    ws.x_hat.download(x_hat, *ctx_);
    return x_hat;
  }

  // Forward and backward for one host batch; the loss is the MSE. Gradients stay on the device.
  StepLoss loss_and_gradient(const Matrix<float>& x, Gradients& grad, Workspace& ws) const {
    namespace kn = cuda_backend::kernels;
    const auto& ctx = *ctx_;
    const index_t rows = x.rows(), d = config_.input_dim, f = config_.num_latents, k = config_.k;
    ws.x.upload(x, ctx);
    encode_device(ws);
    ws.x_hat.resize(rows, d);
    decode_device(ws, rows, k);
    const double n = static_cast<double>(rows) * static_cast<double>(d);
    ws.g.resize(rows, d);
    ws.partial.resize(cuda_backend::kLossBlocks);
    kn::residual_kernel<<<cuda_backend::kLossBlocks, kn::kReduceThreads, 0, ctx.stream()>>>(
        ws.x_hat.data(), ws.x.data(), static_cast<size_t>(rows * d), static_cast<float>(2.0 / n), ws.g.data(),
        ws.partial.data());
    SAE_CUDA_CHECK_LAUNCH();

    const int entries = static_cast<int>(rows * k);
    ws.dcode.resize(static_cast<std::size_t>(entries));
    kn::dcode_kernel<<<cuda_backend::grid_for(static_cast<std::size_t>(entries) * 32, 256, 1 << 30), 256, 0,
                       ctx.stream()>>>(ws.idx.data(), ws.val.data(), entries, static_cast<int>(k), ws.g.data(),
                                       w_dec_.data(), static_cast<int>(d), ws.dcode.data());
    SAE_CUDA_CHECK_LAUNCH();
    group_by_latent(ws, entries);

    for (auto* m : {&grad.w_enc, &grad.w_dec}) m->resize(f, d);
    grad.b_enc.resize(f, 1);
    grad.w_enc.zero(ctx);
    grad.w_dec.zero(ctx);
    grad.b_enc.zero(ctx);
    kn::weight_grad_kernel<<<entries, 256, 0, ctx.stream()>>>(
        ws.unique.data(), ws.offsets.data(), ws.counts.data(), ws.num_runs.data(), ws.order_sorted.data(), ws.val.data(),
        ws.dcode.data(), static_cast<int>(k), static_cast<int>(f), ws.g.data(), ws.x.data(), static_cast<int>(d),
        grad.w_dec.data(), grad.w_enc.data(), grad.b_enc.data());
    SAE_CUDA_CHECK_LAUNCH();

    ws.partial_host.resize(cuda_backend::kLossBlocks);
    ws.partial.download(ws.partial_host.data(), ws.partial_host.size(), ctx);  // also waits for the step
    double sse = 0;
    for (double p : ws.partial_host) sse += p;
    const auto mse = static_cast<double>(static_cast<float>(sse / n));
    return {mse, mse};
  }

  // Adam on the device: called by Adam::step with its bias-corrected scalars.
  void device_adam_step(const AdamConfig& c, float step_size, float inv_sqrt_bc2, const Gradients& g) {
    namespace kn = cuda_backend::kernels;
    const auto& ctx = *ctx_;
    const kn::AdamScalars a{static_cast<float>(c.beta1), static_cast<float>(c.beta2), static_cast<float>(c.eps), step_size,
                            inv_sqrt_bc2};
    if (m_.empty())
      for (const auto* p : {&w_enc_, &b_enc_, &w_dec_}) {
        m_.emplace_back(p->rows(), p->cols());
        v_.emplace_back(p->rows(), p->cols());
        m_.back().zero(ctx);
        v_.back().zero(ctx);
      }
    const auto plain = [&](DeviceMatrixF& p, DeviceMatrixF& m, DeviceMatrixF& v, const DeviceMatrixF& gr) {
      const auto n = static_cast<std::size_t>(p.size());
      kn::adam_kernel<<<cuda_backend::grid_for(n, 256), 256, 0, ctx.stream()>>>(p.data(), m.data(), v.data(), gr.data(), n, a);
      SAE_CUDA_CHECK_LAUNCH();
    };
    plain(w_enc_, m_[0], v_[0], g.w_enc);
    plain(b_enc_, m_[1], v_[1], g.b_enc);
    kn::unit_rows_kernel<<<static_cast<int>(w_dec_.rows()), kn::kReduceThreads, 0, ctx.stream()>>>(
        w_dec_.data(), m_[2].data(), v_[2].data(), g.w_dec.data(), static_cast<int>(w_dec_.cols()), true, a);
    SAE_CUDA_CHECK_LAUNCH();
    decoder_normalized_ = true;
    host_stale_ = true;
  }

  // The trainer renormalises after every optimizer step; the device Adam step already did.
  void normalize_decoder() {
    if (std::exchange(decoder_normalized_, false)) return;
    namespace kn = cuda_backend::kernels;
    kn::unit_rows_kernel<<<static_cast<int>(w_dec_.rows()), kn::kReduceThreads, 0, ctx_->stream()>>>(
        w_dec_.data(), nullptr, nullptr, nullptr, static_cast<int>(w_dec_.cols()), false, {});
    SAE_CUDA_CHECK_LAUNCH();
    host_stale_ = true;
  }

 private:
  using DeviceMatrixF = cuda_backend::DeviceMatrix<float>;

  // pre = x w_enc^T + b_enc through cuBLAS (column-major view: pre^T[F, B] = w_enc[F, D] x^T[D, B]),
  // then the exact top-k.
  void encode_device(Workspace& ws) const {
    namespace kn = cuda_backend::kernels;
    const auto& ctx = *ctx_;
    const index_t rows = ws.x.rows(), d = config_.input_dim, f = config_.num_latents, k = config_.k;
    detail::require(ws.x.cols() == d, "encode()",
                    "input has " + std::to_string(ws.x.cols()) + " columns, model expects input_dim=" + std::to_string(d));
    ws.pre.resize(rows, f);
    const float one = 1.0f, zero = 0.0f;
    if (ctx.mode() == EncoderPrecision::bf16) {
      ws.x16.resize(static_cast<std::size_t>(rows * d));
      ws.w16.resize(static_cast<std::size_t>(f * d));
      kn::to_bf16_kernel<<<cuda_backend::grid_for(ws.x16.size(), 256), 256, 0, ctx.stream()>>>(ws.x.data(), ws.x16.data(),
                                                                                               ws.x16.size());
      kn::to_bf16_kernel<<<cuda_backend::grid_for(ws.w16.size(), 256), 256, 0, ctx.stream()>>>(w_enc_.data(), ws.w16.data(),
                                                                                               ws.w16.size());
      SAE_CUDA_CHECK_LAUNCH();
      SAE_CUDA_CHECK(cublasGemmEx(ctx.handle(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(f), static_cast<int>(rows),
                                  static_cast<int>(d), &one, ws.w16.data(), CUDA_R_16BF, static_cast<int>(d), ws.x16.data(),
                                  CUDA_R_16BF, static_cast<int>(d), &zero, ws.pre.data(), CUDA_R_32F, static_cast<int>(f),
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
      SAE_CUDA_CHECK(cublasSgemm(ctx.handle(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(f), static_cast<int>(rows),
                                 static_cast<int>(d), &one, w_enc_.data(), static_cast<int>(d), ws.x.data(),
                                 static_cast<int>(d), &zero, ws.pre.data(), static_cast<int>(f)));
    }
    const auto n = static_cast<std::size_t>(rows * f);
    kn::add_bias_kernel<<<cuda_backend::grid_for(n, 256), 256, 0, ctx.stream()>>>(ws.pre.data(), b_enc_.data(),
                                                                                  static_cast<size_t>(rows), static_cast<int>(f));
    SAE_CUDA_CHECK_LAUNCH();
    ws.idx.resize(static_cast<std::size_t>(rows * k));
    ws.val.resize(static_cast<std::size_t>(rows * k));
    if (rows == 0) return;
    if (config_.selection == Selection::magnitude)
      kn::topk_rows_kernel<true><<<static_cast<int>(rows), kn::kTopkThreads, 0, ctx.stream()>>>(
          ws.pre.data(), static_cast<int>(f), static_cast<int>(k), ws.idx.data(), ws.val.data());
    else
      kn::topk_rows_kernel<false><<<static_cast<int>(rows), kn::kTopkThreads, 0, ctx.stream()>>>(
          ws.pre.data(), static_cast<int>(f), static_cast<int>(k), ws.idx.data(), ws.val.data());
    SAE_CUDA_CHECK_LAUNCH();
  }

  void decode_device(Workspace& ws, index_t rows, index_t k) const {
    if (rows == 0) return;
    cuda_backend::kernels::decode_kernel<<<static_cast<int>(rows), 128, 0, ctx_->stream()>>>(
        ws.idx.data(), ws.val.data(), static_cast<int>(k), w_dec_.data(), static_cast<int>(config_.input_dim),
        ws.x_hat.data());
    SAE_CUDA_CHECK_LAUNCH();
  }

  // Active slots sorted by latent (stable, so each latent's samples ascend), then run-length
  // encoded into (latent, offset, count) runs for weight_grad_kernel.
  void group_by_latent(Workspace& ws, int entries) const {
    namespace kn = cuda_backend::kernels;
    const auto& ctx = *ctx_;
    const auto n = static_cast<std::size_t>(entries);
    for (auto* b : {&ws.keys, &ws.keys_sorted, &ws.order, &ws.order_sorted, &ws.unique, &ws.counts, &ws.offsets})
      b->resize(n);
    ws.num_runs.resize(1);
    kn::group_keys_kernel<<<cuda_backend::grid_for(n, 256, 1 << 30), 256, 0, ctx.stream()>>>(
        ws.idx.data(), ws.val.data(), entries, static_cast<int>(config_.num_latents), ws.keys.data(), ws.order.data());
    SAE_CUDA_CHECK_LAUNCH();
    int end_bit = 1;
    while ((index_t{1} << end_bit) <= config_.num_latents) ++end_bit;
    std::size_t sort_bytes = 0, rle_bytes = 0, scan_bytes = 0;
    SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, ws.keys.data(), ws.keys_sorted.data(),
                                                   ws.order.data(), ws.order_sorted.data(), entries, 0, end_bit,
                                                   ctx.stream()));
    SAE_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(nullptr, rle_bytes, ws.keys_sorted.data(), ws.unique.data(),
                                                      ws.counts.data(), ws.num_runs.data(), entries, ctx.stream()));
    SAE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, ws.counts.data(), ws.offsets.data(), entries,
                                                 ctx.stream()));
    ws.cub_temp.resize(std::max({sort_bytes, rle_bytes, scan_bytes}));
    SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(ws.cub_temp.data(), sort_bytes, ws.keys.data(), ws.keys_sorted.data(),
                                                   ws.order.data(), ws.order_sorted.data(), entries, 0, end_bit,
                                                   ctx.stream()));
    SAE_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(ws.cub_temp.data(), rle_bytes, ws.keys_sorted.data(),
                                                      ws.unique.data(), ws.counts.data(), ws.num_runs.data(), entries,
                                                      ctx.stream()));
    // Counts past the last run are never read; the scan over all `entries` is harmless.
    SAE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(ws.cub_temp.data(), scan_bytes, ws.counts.data(), ws.offsets.data(),
                                                 entries, ctx.stream()));
  }

  TopKConfig config_;
  std::shared_ptr<cuda_backend::Context> ctx_;
  DeviceMatrixF w_enc_, b_enc_, w_dec_;
  std::vector<DeviceMatrixF> m_, v_;  // Adam moments, in parameter order
  bool decoder_normalized_ = false;
  mutable Parameters host_;
  mutable bool host_stale_ = false;
};

}  // namespace sae
