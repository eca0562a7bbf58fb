// Encoder-GEMM shapes ([256, 2048] x [2048, F] + bias) with Eigen's own GEMM, the linked BLAS sgemm
// and our kernels, in one process: fp32 on W_enc packed beforehand (as training runs it: the
// optimizer repacks W_enc in its own pass) and with the packing timed too, and, where AVX512-BF16
// is compiled in, bf16 with packing. Prints GFLOP/s of each, best of 3 rounds of 30 products, and
// the best fp32 rate: compare_torch.py takes that as the machine's GEMM rate for its FLOP bound.
#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/config.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

namespace {
// GFLOP/s of `product`, best of 3 rounds of `reps` calls after a warm-up call.
template <class F>
double rate(double flops_per_call, F&& product) {
  const int reps = 30;
  product();
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const auto t = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) product();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
  }
  return flops_per_call * reps / best / 1e9;
}
}  // namespace

int main() {
  const int b = 256, d = 2048;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("bench_gemm: threads=%d OPENBLAS_CORETYPE=%s\n", sae::max_threads(), coretype ? coretype : "(unset)");
  std::printf("bench_gemm: our kernel uses %ld-float vectors\n", static_cast<long>(sae::ops::detail::kLanes));
  std::printf("%6s %11s %11s %11s %11s %11s %11s\n", "F", "Eigen GF/s", "BLAS GF/s", "ours fp32", "+packing",
              "bf16+pack", "best fp32");
  for (int f : {512, 1024, 2048}) {
    const sae::Matrix<float> x = sae::Matrix<float>::Random(b, d), w = sae::Matrix<float>::Random(f, d);
    const sae::Vector<float> bias = sae::Vector<float>::Random(f);
    sae::Matrix<float> out(b, f);
    sae::ops::EncoderGemmScratch scratch;
    const double flops = 2.0 * b * d * f;
    const double eigen = rate(flops, [&] {
      out.noalias() = x * w.transpose();
      out.rowwise() += bias.transpose();
    });
    // Row-major out[b, f] = x[b, d] w[f, d]^T is column-major out^T[f, b] = W^T(col) * X.
    const float one = 1, zero = 0;
    const double blas = rate(flops, [&] {
      sgemm_("T", "N", &f, &b, &d, &one, w.data(), &d, x.data(), &d, &zero, out.data(), &f);
      out.rowwise() += bias.transpose();
    });
    sae::ops::PackedEncoder packed;
    sae::ops::shape_packed_encoder(packed, f, d, sae::EncoderPrecision::fp32);
    sae::ops::pack_encoder_rows(w, 0, f, packed);
    packed.fresh = true;
    const double ours = rate(flops, [&] {
      sae::ops::encoder_preactivations(sae::cpu{}, x, w, bias, out, sae::EncoderPrecision::fp32, scratch, &packed);
    });
    const double ours_packing = rate(flops, [&] {
      sae::ops::encoder_preactivations(sae::cpu{}, x, w, bias, out, sae::EncoderPrecision::fp32, scratch);
    });
    double ours_bf16 = 0;
    if (sae::bf16_encoder_available)
      ours_bf16 = rate(flops, [&] {
        sae::ops::encoder_preactivations(sae::cpu{}, x, w, bias, out, sae::EncoderPrecision::bf16, scratch);
      });
    std::printf("%6d %11.1f %11.1f %11.1f %11.1f %11.1f %11.1f\n", f, eigen, blas, ours, ours_packing, ours_bf16,
                std::max({eigen, blas, ours}));
  }
  return 0;
}
