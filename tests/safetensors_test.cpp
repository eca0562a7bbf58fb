// The safetensors reader against files the reference Python implementation wrote (and copies
// corrupted one way each, tests/data/make_safetensors_fixtures.py), and the writer round-tripped.
#define BOOST_TEST_MODULE safetensors
#include "test_helpers.hpp"

#include <sae/core/bfloat16.hpp>
#include <sae/core/half.hpp>
#include <sae/io/safetensors.hpp>

#include <cstring>
#include <fstream>

using sae::index_t;
using sae::test::require_throws_with;

namespace {
std::filesystem::path fixture(const std::string& name) { return sae::test::fixture("safetensors/" + name); }
double ramp(std::size_t i) { return 0.25 * static_cast<double>(i) - 3; }
}  // namespace

BOOST_AUTO_TEST_CASE(reads_files_the_reference_implementation_wrote) {
  const sae::io::SafetensorsFile f(fixture("f32.safetensors"));
  BOOST_TEST(f.tensors().size() == 2u);
  BOOST_TEST(f.metadata().at("format") == "pt");
  BOOST_TEST(f.metadata().at("note") == "fixture");
  const auto w = f.matrix<float>("w", 3, 4);
  for (index_t i = 0; i < 12; ++i) BOOST_TEST(w.data()[i] == ramp(static_cast<std::size_t>(i)));
  const auto b = f.vector<double>("b", 4);
  for (index_t i = 0; i < 4; ++i) BOOST_TEST(b[i] == ramp(static_cast<std::size_t>(i)));

  const sae::io::SafetensorsFile m(fixture("mixed.safetensors"));
  const auto h = m.matrix<float>("h", 2, 3);  // F16: the ramp is exact in half precision
  for (index_t i = 0; i < 6; ++i) BOOST_TEST(h.data()[i] == ramp(static_cast<std::size_t>(i)));
  const auto d = m.values<double>(m.tensor("d"));
  for (std::size_t i = 0; i < d.size(); ++i) BOOST_TEST(d[i] == ramp(i));
  BOOST_TEST(m.tensor("steps").dtype == "I64");  // listed, but not a float tensor
  require_throws_with<sae::io_error>([&] { m.values<float>(m.tensor("steps")); },
                                     {"mixed.safetensors", "'steps'", "I64", "only F16, BF16, F32 and F64"});
  require_throws_with<sae::io_error>([&] { m.tensor("W_enc"); }, {"mixed.safetensors", "no tensor 'W_enc'", "h", "steps"});
  require_throws_with<sae::io_error>([&] { m.matrix<float>("h", 3, 2); }, {"'h' has shape [2, 3], expected [3, 2]"});

  const sae::io::SafetensorsFile bf(fixture("bf16.safetensors"));
  const auto x = bf.matrix<float>("x", 2, 2);
  for (index_t i = 0; i < 4; ++i) BOOST_TEST(x.data()[i] == ramp(static_cast<std::size_t>(i)));
  const sae::io::SafetensorsFile e(fixture("empty_tensor.safetensors"));
  BOOST_TEST(e.tensor("nothing").num_elements() == 0);
}

BOOST_AUTO_TEST_CASE(every_malformed_file_is_refused_naming_file_and_problem) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases{
      {"bad_header_length.safetensors", {"header length 1000000000000 exceeds 100 MB"}},
      {"huge_header_length.safetensors", {"exceeds 100 MB"}},
      {"truncated_header.safetensors", {"truncated: header length"}},
      {"not_json.safetensors", {"not_json.safetensors"}},
      {"header_not_object.safetensors", {"header must be a JSON object"}},
      {"overlap.safetensors", {"tensor 'b' starts at byte 8", "overlaps"}},
      {"gap.safetensors", {"tensor 'b' starts at byte 24", "a gap"}},
      {"out_of_bounds.safetensors", {"'b' data_offsets [16, 64] lie outside the 24 data bytes"}},
      {"shape_mismatch.safetensors", {"'b' has 8 bytes for shape [3] of F32 (12 expected)"}},
      {"unknown_dtype.safetensors", {"unknown dtype 'F12'"}},
      {"negative_shape.safetensors", {"shape entry must be a non-negative integer"}},
      {"extra_field.safetensors", {"unknown field 'x'"}},
      {"huge_offset.safetensors", {"'b' data_offsets must be a non-negative integer"}},  // found by fuzzing
      {"zero_extent_overflow.safetensors", {"'b' shape is too large"}},  // the .npy fuzzer's find, here too
      {"metadata_not_string.safetensors", {"__metadata__ value of 'epochs' must be a string"}},
      {"trailing_bytes.safetensors", {"cover 24 of the 28 data bytes"}},
      {"truncated_data.safetensors", {"lie outside the 16 data bytes"}},
      {"duplicate_name.safetensors", {"duplicate key 'a' in one object"}},  // refused by the JSON parser
      {"too_short.safetensors", {"truncated .safetensors file"}},
  };
  for (const auto& [name, fragments] : cases) {
    BOOST_TEST_CONTEXT(name) {
      auto expected = fragments;
      expected.push_back(name);
      require_throws_with<sae::io_error>([&] { sae::io::SafetensorsFile f(fixture(name)); }, expected);
    }
  }
  require_throws_with<sae::io_error>([] { sae::io::SafetensorsFile f(fixture("missing.safetensors")); },
                                     {"missing.safetensors"});
}

BOOST_AUTO_TEST_CASE(written_files_round_trip_in_every_dtype) {
  sae::test::ScratchDir dir("safetensors");
  const sae::Matrix<float> w = sae::test::random_matrix<float>(5, 3, 2);
  const sae::Vector<float> b = sae::test::random_matrix<float>(5, 1, 3).col(0);
  for (auto dtype : {sae::io::FloatDType::f32, sae::io::FloatDType::f16, sae::io::FloatDType::bf16}) {
    BOOST_TEST_CONTEXT(sae::io::safetensors_name(dtype)) {
      const auto p = dir / "out.safetensors";
      sae::io::save_safetensors(p, {sae::io::tensor_to_write("w", w, dtype), sae::io::tensor_to_write("b", b, dtype, true)},
                                {{"format", "pt"}});
      const sae::io::SafetensorsFile f(p);
      BOOST_TEST(f.tensor("w").dtype == sae::io::safetensors_name(dtype));
      BOOST_TEST((f.tensor("b").shape == std::vector<index_t>{5}));
      BOOST_TEST(f.metadata().at("format") == "pt");
      const auto w2 = f.matrix<float>("w", 5, 3);
      const auto b2 = f.vector<float>("b", 5);
      for (index_t i = 0; i < w.size(); ++i) {
        const float v = w.data()[i];
        const float expected = dtype == sae::io::FloatDType::f32   ? v
                               : dtype == sae::io::FloatDType::f16 ? sae::half_to_float(sae::float_to_half(v))
                                                                   : sae::bf16_to_float(sae::float_to_bf16(v));
        BOOST_TEST(w2.data()[i] == expected);
      }
      BOOST_TEST((dtype != sae::io::FloatDType::f32 || sae::test::same(b2, b)));
      // The header is padded to 8 bytes, so the data starts aligned (as the reference writer does).
      std::ifstream in(p, std::ios::binary);
      unsigned char len[8];
      in.read(reinterpret_cast<char*>(len), 8);
      BOOST_TEST(len[0] % 8 == 0);
    }
  }
  sae::test::require_throws_with<sae::invalid_argument>(
      [&] {
        sae::io::save_safetensors(dir / "bad.safetensors",
                                  {sae::io::tensor_to_write("w", w, sae::io::FloatDType::f32),
                                   sae::io::tensor_to_write("w", b, sae::io::FloatDType::f32, true)});
      },
      {"'w' is used twice"});
  BOOST_TEST(!std::filesystem::exists(dir / "bad.safetensors"));
}
