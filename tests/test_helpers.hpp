// Shared test utilities: fixture paths, scratch directories, and error-message checks.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>

#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
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

// Bitwise equality of two Eigen objects of possibly different shapes.
template <class A, class B>
bool same(const A& a, const B& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

// A fresh directory under the system temp dir, removed when the object goes away.
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
void require_throws_with(F&& f, std::initializer_list<std::string> fragments) {
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
