// Shared test utilities: fixture paths, scratch directories, and error-message checks.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>

#include <boost/mpl/list.hpp>
#if defined(SAE_BOOST_TEST_HEADER_ONLY)
#include <boost/test/included/unit_test.hpp>
#else
#include <boost/test/unit_test.hpp>
#endif

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace sae::test {

using float_types = boost::mpl::list<float, double>;

inline std::filesystem::path fixture(const std::string& name) { return std::filesystem::path(SAE_TEST_DATA_DIR) / name; }

// A [rows, cols] matrix of seeded standard normals.
template <class Scalar = double>
sae::Matrix<Scalar> random_matrix(index_t rows, index_t cols, std::uint64_t seed) {
  sae::Rng rng(seed);
  sae::Matrix<Scalar> m(rows, cols);
  for (index_t i = 0; i < m.size(); ++i) m.data()[i] = static_cast<Scalar>(rng.normal());
  return m;
}

// Checks the analytic gradient of every parameter of a double-precision autoencoder (TopK or
// Matryoshka) against central differences of its loss on x, element by element.
template <class Model>
void check_gradients_by_central_differences(Model& model, const sae::Matrix<double>& x, bool decoder_bias) {
  typename Model::Gradients g, unused;
  typename Model::Workspace ws;
  model.loss_and_gradient(x, g, ws);
  const auto check = [&](auto& param, const Eigen::MatrixXd& analytic, const char* name) {
    const double h = 1e-6;
    double worst = 0;
    for (index_t i = 0; i < param.size(); ++i) {
      const double saved = param.data()[i];
      param.data()[i] = saved + h;
      const double up = model.loss_and_gradient(x, unused, ws).loss;
      param.data()[i] = saved - h;
      const double down = model.loss_and_gradient(x, unused, ws).loss;
      param.data()[i] = saved;
      const double numeric = (up - down) / (2 * h), a = analytic.data()[i];
      worst = std::max(worst, std::abs(numeric - a) / std::max(1e-4, std::abs(numeric) + std::abs(a)));
    }
    BOOST_TEST_MESSAGE(name << ": worst relative error " << worst);
    BOOST_TEST(worst < 1e-6, name << " gradient is off: worst relative error " << worst);
  };
  // Column-major dense copies, matching each parameter's row-major storage order via transpose.
  auto& p = model.parameters();
  const Eigen::MatrixXd gw_enc = g.w_enc.to_dense().transpose(), gw_dec = g.w_dec.to_dense().transpose();
  check(p.w_enc, gw_enc, "w_enc");
  check(p.w_dec, gw_dec, "w_dec");
  check(p.b_enc, Eigen::MatrixXd(g.b_enc), "b_enc");
  if (decoder_bias) check(p.b_dec, Eigen::MatrixXd(g.b_dec), "b_dec");
}

// Bitwise equality of two Eigen objects of possibly different shapes.
template <class A, class B>
bool same(const A& a, const B& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

// A fresh directory under the system temp dir, removed when the object goes away.
// A whole file's bytes ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("sae-test-" + tag + "-" + std::to_string(static_cast<long>(::getpid())));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

// Runs f, requires it to throw E, and requires the message to contain every given fragment.
template <class E, class F>
void require_throws_with(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& frag : fragments)
      BOOST_TEST(what.find(frag) != std::string::npos, "message '" << what << "' lacks '" << frag << "'");
    return;
  } catch (const std::exception& e) {
    BOOST_FAIL("threw the wrong exception type: " << e.what());
  }
  BOOST_FAIL("expected an exception");
}

}  // namespace sae::test
