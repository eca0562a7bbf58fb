#define BOOST_TEST_MODULE topk
#include "test_helpers.hpp"

#include <sae/backend/cpu/topk.hpp>
#include <sae/core/rng.hpp>

#include <algorithm>
#include <limits>
#include <numeric>

using sae::index_t;

namespace {
// Reference: full stable sort of (key desc, index asc).
template <class T>
std::vector<int> reference_topk(const T* row, index_t f, index_t k, bool magnitude) {
  std::vector<int> idx(static_cast<std::size_t>(f));
  std::iota(idx.begin(), idx.end(), 0);
  const auto key = [&](int j) { return magnitude ? std::abs(row[j]) : row[j]; };
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return key(a) > key(b); });
  idx.resize(static_cast<std::size_t>(k));
  return idx;
}
}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(topk_matches_full_sort_with_ties, T, sae::test::float_types) {
  sae::Rng rng(3);
  for (index_t f : {1, 7, 64, 300}) {
    // Values from a small set, so ties are everywhere.
    sae::Matrix<T> pre(9, f);
    for (index_t i = 0; i < pre.size(); ++i) pre.data()[i] = static_cast<T>(static_cast<int>(rng.uniform_int(9)) - 4);
    for (index_t k : {index_t{1}, std::min<index_t>(3, f), f / 2 + 1, f}) {
      for (bool magnitude : {false, true}) {
        BOOST_TEST_CONTEXT("F=" << f << " K=" << k << " magnitude=" << magnitude) {
          sae::SparseCodes<T> codes;
          sae::ops::topk_rows(sae::cpu{}, pre, k, magnitude ? sae::Selection::magnitude : sae::Selection::value, codes);
          BOOST_TEST(codes.k == k);
          for (index_t i = 0; i < pre.rows(); ++i) {
            const auto ref = reference_topk(pre.row(i).data(), f, k, magnitude);
            for (index_t s = 0; s < k; ++s) {
              BOOST_TEST(codes.row_indices(i)[s] == ref[static_cast<std::size_t>(s)]);
              BOOST_TEST(codes.row_values(i)[s] == std::max(pre(i, ref[static_cast<std::size_t>(s)]), T(0)));
            }
          }
        }
      }
    }
  }
}

// Wide rows, where float rows take the group-maximum filter: normals rounded to 1/8 (many ties),
// a row of equal values, and a NaN row (the filter finds too few keys and falls back).
BOOST_AUTO_TEST_CASE(topk_wide_rows_match_full_sort) {
  for (index_t f : {256, 1000, 2048}) {
    sae::Matrix<float> pre = sae::test::random_matrix<float>(20, f, static_cast<std::uint64_t>(f));
    pre = (pre.array() * 8.0f).round() / 8.0f;
    pre.row(3).setConstant(0.25f);
    pre(4, 7) = std::numeric_limits<float>::quiet_NaN();
    for (index_t k : {1, 5, 20, 100}) {
      for (bool magnitude : {false, true}) {
        BOOST_TEST_CONTEXT("F=" << f << " K=" << k << " magnitude=" << magnitude) {
          sae::SparseCodes<float> codes;
          sae::ops::topk_rows(sae::cpu{}, pre, k, magnitude ? sae::Selection::magnitude : sae::Selection::value, codes);
          for (index_t i = 0; i < pre.rows(); ++i) {
            if (i == 4) continue;  // NaN compares false either way: only check it does not crash
            const auto ref = reference_topk(pre.row(i).data(), f, k, magnitude);
            for (index_t s = 0; s < k; ++s) BOOST_TEST(codes.row_indices(i)[s] == ref[static_cast<std::size_t>(s)]);
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(topk_hand_case_and_bad_k) {
  sae::Matrix<float> pre(1, 6);
  pre << 0.5f, -3.0f, 2.0f, 2.0f, -0.1f, 1.0f;
  sae::SparseCodes<float> codes;
  sae::ops::topk_rows(sae::cpu{}, pre, 3, sae::Selection::value, codes);
  BOOST_TEST(std::vector<int>(codes.indices.begin(), codes.indices.end()) == std::vector<int>({2, 3, 5}),
             boost::test_tools::per_element());
  sae::ops::topk_rows(sae::cpu{}, pre, 2, sae::Selection::magnitude, codes);
  BOOST_TEST(std::vector<int>(codes.indices.begin(), codes.indices.end()) == std::vector<int>({1, 2}),
             boost::test_tools::per_element());
  BOOST_TEST(codes.values[0] == 0.0f);  // -3 is selected by magnitude, then ReLU zeroes it
  BOOST_TEST(codes.values[1] == 2.0f);
  BOOST_CHECK_THROW(sae::ops::topk_rows(sae::cpu{}, pre, 0, sae::Selection::value, codes), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::ops::topk_rows(sae::cpu{}, pre, 7, sae::Selection::value, codes), sae::invalid_argument);
}
