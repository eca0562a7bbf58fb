// Encoder-GEMM shapes ([256, 2048] x [2048, F]) with Eigen's own GEMM and with the linked BLAS
// sgemm, in one process, to choose the SAE_USE_BLAS default. Prints GFLOP/s for each.
#include <sae/config.hpp>
#include <sae/core/types.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

int main() {
  using Clock = std::chrono::steady_clock;
  const int b = 256, d = 2048, reps = 30;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("bench_gemm: threads=%d OPENBLAS_CORETYPE=%s\n", sae::max_threads(), coretype ? coretype : "(unset)");
  std::printf("%6s %12s %12s %8s\n", "F", "Eigen GF/s", "BLAS GF/s", "ratio");
  for (int f : {512, 1024, 2048}) {
    const sae::Matrix<float> x = sae::Matrix<float>::Random(b, d), w = sae::Matrix<float>::Random(f, d);
    sae::Matrix<float> out(b, f);
    const double flops = 2.0 * b * d * f * reps;
    out.noalias() = x * w.transpose();  // warm-up
    auto t = Clock::now();
    for (int r = 0; r < reps; ++r) out.noalias() = x * w.transpose();
    const double eigen_s = std::chrono::duration<double>(Clock::now() - t).count();
    // Row-major out[b, f] = x[b, d] w[f, d]^T is column-major out^T[f, b] = w^T... i.e. C = W^T(col) * X.
    const float one = 1, zero = 0;
    sgemm_("T", "N", &f, &b, &d, &one, w.data(), &d, x.data(), &d, &zero, out.data(), &f);
    t = Clock::now();
    for (int r = 0; r < reps; ++r)
      sgemm_("T", "N", &f, &b, &d, &one, w.data(), &d, x.data(), &d, &zero, out.data(), &f);
    const double blas_s = std::chrono::duration<double>(Clock::now() - t).count();
    std::printf("%6d %12.1f %12.1f %8.2f\n", f, flops / eigen_s / 1e9, flops / blas_s / 1e9, eigen_s / blas_s);
  }
  return 0;
}
