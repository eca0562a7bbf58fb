#define BOOST_TEST_MODULE encoder_gemm
#include "test_helpers.hpp"

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/core/bfloat16.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

using sae::index_t;

namespace {

// pre = x w^T + b in double from the inputs as given, and the scale sum_d |x_d w_d| + |b| each
// element's rounding error is measured against.
template <class Scalar>
void naive_product(const sae::Matrix<Scalar>& x, const sae::Matrix<Scalar>& w, const sae::Vector<Scalar>& b,
                   Eigen::MatrixXd& exact, Eigen::MatrixXd& scale) {
  exact.resize(x.rows(), w.rows());
  scale.resize(x.rows(), w.rows());
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t j = 0; j < w.rows(); ++j) {
      double sum = static_cast<double>(b[j]), mag = std::abs(static_cast<double>(b[j]));
      for (index_t d = 0; d < x.cols(); ++d) {
        sum += static_cast<double>(x(i, d)) * static_cast<double>(w(j, d));
        mag += std::abs(static_cast<double>(x(i, d)) * static_cast<double>(w(j, d)));
      }
      exact(i, j) = sum;
      scale(i, j) = mag;
    }
}

sae::Matrix<float> rounded_to_bf16(const sae::Matrix<float>& m) {
  sae::Matrix<float> r(m.rows(), m.cols());
  for (index_t i = 0; i < m.size(); ++i) r.data()[i] = sae::bf16_to_float(sae::float_to_bf16(m.data()[i]));
  return r;
}

// Worst |got - exact| / scale over all elements.
template <class Scalar>
double worst_error(const sae::Matrix<Scalar>& got, const Eigen::MatrixXd& exact, const Eigen::MatrixXd& scale) {
  double worst = 0;
  for (index_t i = 0; i < exact.rows(); ++i)
    for (index_t j = 0; j < exact.cols(); ++j)
      worst = std::max(worst, std::abs(static_cast<double>(got(i, j)) - exact(i, j)) / scale(i, j));
  return worst;
}

// Shapes around every blocking edge of every ISA's kernel: 3-, 6- and 8-row tiles, 64-row blocks,
// 48-latent panels of 12-, 16- or 48-latent tiles, 4/8/16-word vectors, 256- and 1024-word depth
// blocks, a partial last panel, odd D for bf16 pairs.
struct Shape {
  index_t rows, latents, dim;
};
const Shape kShapes[] = {{1, 1, 1},   {3, 5, 7},    {8, 48, 16},   {13, 50, 37},   {64, 96, 33},
                         {71, 47, 2}, {9, 145, 1030}, {130, 49, 2051}, {256, 100, 64}, {7, 97, 515}};

}  // namespace

BOOST_AUTO_TEST_CASE(bf16_rounding_by_hand) {
  BOOST_TEST(sae::float_to_bf16(1.0f) == 0x3f80);
  BOOST_TEST(sae::float_to_bf16(-2.0f) == 0xc000);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  BOOST_TEST(sae::float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
  BOOST_TEST(sae::float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
  BOOST_TEST(sae::float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);  // above half: up
  BOOST_TEST(sae::float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  BOOST_TEST(sae::float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds past the largest bf16
  BOOST_TEST(std::isnan(sae::bf16_to_float(sae::float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  BOOST_TEST(sae::bf16_to_float(0x3fc0) == 1.5f);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(fp32_product_matches_naive_sum, T, sae::test::float_types) {
  for (const Shape& s : kShapes) {
    BOOST_TEST_CONTEXT("rows=" << s.rows << " latents=" << s.latents << " dim=" << s.dim) {
      const auto x = sae::test::random_matrix<T>(s.rows, s.dim, 1);
      const auto w = sae::test::random_matrix<T>(s.latents, s.dim, 2);
      const sae::Vector<T> b = sae::test::random_matrix<T>(s.latents, 1, 3);
      Eigen::MatrixXd exact, scale;
      naive_product(x, w, b, exact, scale);
      sae::Matrix<T> pre;
      sae::ops::encoder_preactivations(sae::cpu{}, x, w, b, pre);
      BOOST_TEST(pre.rows() == s.rows);
      BOOST_TEST(pre.cols() == s.latents);
      // A float sum over D terms is within ~D * 2^-24 of exact relative to sum |terms|.
      const double unit = std::numeric_limits<T>::epsilon();
      BOOST_TEST(worst_error(pre, exact, scale) < (static_cast<double>(s.dim) + 2) * unit);
    }
  }
}

// Our float kernel (every ISA) sums each element on one thread in a fixed order; double goes
// through Eigen's GEMM, which promises no such thing and is not tested for it.
BOOST_AUTO_TEST_CASE(fp32_product_is_bitwise_the_same_at_any_thread_count) {
#if SAE_USE_OPENMP
  const auto x = sae::test::random_matrix<float>(200, 300, 4);
  const auto w = sae::test::random_matrix<float>(150, 300, 5);
  const sae::Vector<float> b = sae::test::random_matrix<float>(150, 1, 6);
  const int saved = omp_get_max_threads();
  sae::Matrix<float> one, two;
  omp_set_num_threads(1);
  sae::ops::encoder_preactivations(sae::cpu{}, x, w, b, one);
  omp_set_num_threads(2);
  sae::ops::encoder_preactivations(sae::cpu{}, x, w, b, two);
  omp_set_num_threads(saved);
  BOOST_TEST(sae::test::same(one, two));
#else
  BOOST_TEST_MESSAGE("built without OpenMP: one thread only, nothing to compare");
#endif
}

// bf16 mode must compute exactly the product of the bf16-rounded inputs, up to float summation.
BOOST_AUTO_TEST_CASE(bf16_product_is_the_product_of_rounded_inputs,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       return boost::test_tools::assertion_result(sae::bf16_encoder_available);
                     })) {
  sae::ops::EncoderGemmScratch scratch;  // reused across shapes, as training reuses it
  for (const Shape& s : kShapes) {
    BOOST_TEST_CONTEXT("rows=" << s.rows << " latents=" << s.latents << " dim=" << s.dim) {
      const auto x = sae::test::random_matrix<float>(s.rows, s.dim, 7);
      const auto w = sae::test::random_matrix<float>(s.latents, s.dim, 8);
      const sae::Vector<float> b = sae::test::random_matrix<float>(s.latents, 1, 9);
      sae::Matrix<float> pre;
      sae::ops::encoder_preactivations(sae::cpu{}, x, w, b, pre, sae::EncoderPrecision::bf16, scratch);
      Eigen::MatrixXd exact, scale;
      naive_product(rounded_to_bf16(x), rounded_to_bf16(w), b, exact, scale);
      BOOST_TEST(worst_error(pre, exact, scale) < (static_cast<double>(s.dim) + 2) * 1.2e-7);
      // ...and differs from the fp32 product by about bf16's rounding (2^-8 relative), no more.
      Eigen::MatrixXd exact_fp32;
      naive_product(x, w, b, exact_fp32, scale);
      const double bf16_error = worst_error(pre, exact_fp32, scale);
      BOOST_TEST(bf16_error < 2 * std::ldexp(1.0, -8));
      if (s.dim >= 16) BOOST_TEST(bf16_error > 1e-5);  // it really is rounded
    }
  }
}

BOOST_AUTO_TEST_CASE(bf16_needs_float_and_support) {
  const auto x = sae::test::random_matrix<double>(4, 8, 1);
  const auto w = sae::test::random_matrix<double>(5, 8, 2);
  const sae::Vector<double> b = sae::Vector<double>::Zero(5);
  sae::Matrix<double> pre;
  sae::ops::EncoderGemmScratch scratch;
  sae::test::require_throws_with<sae::invalid_argument>(
      [&] { sae::ops::encoder_preactivations(sae::cpu{}, x, w, b, pre, sae::EncoderPrecision::bf16, scratch); },
      {"bf16 encoder GEMM needs float"});
}
