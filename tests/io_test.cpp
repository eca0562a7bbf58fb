#define BOOST_TEST_MODULE io
#include "test_helpers.hpp"

#include <sae/core/half.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/jsonl.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/npy_mmap.hpp>
#include <sae/io/utf8.hpp>

#include <cmath>
#include <fstream>

using sae::index_t;
using sae::test::fixture;
using sae::test::require_throws_with;

namespace {
// Every well-formed fixture holds 0.25 * i - 3 at C-order flat index i (make_fixtures.py).
double ramp(index_t i) { return 0.25 * static_cast<double>(i) - 3.0; }

void check_ramp(const std::string& name, std::vector<index_t> shape) {
  BOOST_TEST_CONTEXT(name) {
    const auto a = sae::io::load_npy<double>(fixture(name));
    BOOST_TEST(a.shape == shape, boost::test_tools::per_element());
    index_t n = 1;
    for (index_t d : shape) n *= d;
    BOOST_REQUIRE_EQUAL(a.size(), n);
    for (index_t i = 0; i < n; ++i) BOOST_TEST(a.data[static_cast<std::size_t>(i)] == ramp(i));
    const auto f = sae::io::load_npy<float>(fixture(name));
    for (index_t i = 0; i < n; ++i) BOOST_TEST(f.data[static_cast<std::size_t>(i)] == static_cast<float>(ramp(i)));
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(numpy_written_fixtures_read_correctly) {
  check_ramp("f4_c_2d.npy", {3, 5});
  check_ramp("f4_f_2d.npy", {3, 5});
  check_ramp("f8_be_2d.npy", {4, 3});
  check_ramp("f4_be_3d_f.npy", {2, 3, 4});
  check_ramp("f2_1d.npy", {7});
  check_ramp("f2_be_2d.npy", {2, 3});
  check_ramp("f8_0d.npy", {});
  check_ramp("f4_v2_4d.npy", {3, 2, 2, 4});
  check_ramp("f4_v3_2d.npy", {2, 2});
  check_ramp("f4_empty.npy", {0, 4});
}

BOOST_AUTO_TEST_CASE(header_fields) {
  const auto h = sae::io::read_npy_header(fixture("f4_be_3d_f.npy"));
  BOOST_TEST(h.big_endian);
  BOOST_TEST(h.fortran_order);
  BOOST_TEST(h.descr() == ">f4");
  BOOST_TEST(h.shape_string() == "(2, 3, 4)");
}

BOOST_AUTO_TEST_CASE(matrix_loader_checks_rank) {
  const auto m = sae::io::load_npy_matrix<float>(fixture("f4_f_2d.npy"));
  BOOST_TEST(m.rows() == 3);
  BOOST_TEST(m(2, 4) == static_cast<float>(ramp(14)));
  require_throws_with<sae::io_error>([] { sae::io::load_npy_matrix<float>(fixture("f2_1d.npy")); },
                                     {"f2_1d.npy", "expected a 2-D array"});
}

BOOST_AUTO_TEST_CASE(malformed_files_name_file_and_problem) {
  using sae::io::load_npy;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bad_magic.npy", "bad magic"},
      {"truncated_header.npy", "truncated .npy header"},
      {"truncated_data.npy", "truncated data"},
      {"trailing_data.npy", "size mismatch"},
      {"int32.npy", "dtype '<i4' is not supported"},
      {"complex.npy", "dtype '<c8' is not supported"},
      {"bad_version.npy", "unsupported .npy format version 9"},
      {"bad_shape.npy", "shape holds a non-integer"},
      {"missing_key.npy", "unexpected key 'fortran_order_'"},
      {"nan.npy", "non-finite value (nan) at flat index 5"},
      {"inf.npy", "non-finite value (inf) at flat index 1"},
      {"empty_file.npy", "truncated .npy file"},
      {"no_such_file.npy", "no such .npy file"},
  };
  for (const auto& [name, problem] : cases) {
    BOOST_TEST_CONTEXT(name) {
      require_throws_with<sae::io_error>([&] { load_npy<float>(fixture(name)); }, {name, problem});
      if (name != "nan.npy" && name != "inf.npy" && name != "no_such_file.npy")
        require_throws_with<sae::io_error>([&] { sae::io::NpyMmap view(fixture(name)); }, {name});
    }
  }
  // Found by the fuzzer: a zero extent let the others grow until the strides overflowed.
  require_throws_with<sae::io_error>(
      [] { sae::io::NpyMmap view(std::string(SAE_TEST_DATA_DIR) + "/../fuzz/corpus/npy/zero_extent_overflow.npy"); },
      {"zero_extent_overflow.npy", "shape is too large"});
  // Found by the fuzzer: a v3 header whose 4-byte length field claims ~1.7 GB of a 128-byte file
  // is refused before anything that size is allocated (by both readers).
  sae::test::ScratchDir dir("io-fuzz");
  std::string v3 = std::string("\x93NUMPY\x03\x00", 8) + "True{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  v3.resize(127, ' ');
  v3 += '\n';
  sae::io::write_text_atomically(dir / "v3.npy", v3);
  require_throws_with<sae::io_error>([&] { load_npy<float>(dir / "v3.npy"); }, {"v3.npy", "truncated .npy header", "1702195796"});
  require_throws_with<sae::io_error>([&] { sae::io::NpyMmap view(dir / "v3.npy"); }, {"v3.npy", "truncated .npy header"});
  // Non-finite values load when the caller opts out of the check.
  const auto a = load_npy<float>(fixture("nan.npy"), {/*require_finite=*/false});
  BOOST_TEST(std::isnan(a.data[5]));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(round_trip_every_dtype_order_and_rank, T, sae::test::float_types) {
  sae::test::ScratchDir dir("npy-roundtrip");
  const std::vector<std::vector<index_t>> shapes = {{5}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}, {}};
  for (const auto& shape : shapes) {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    std::vector<T> data(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) data[static_cast<std::size_t>(i)] = static_cast<T>(std::sin(1.7 * i) * 10);
    for (auto dtype : {sae::io::DType::f2, sae::io::DType::f4, sae::io::DType::f8}) {
      for (bool fortran : {false, true}) {
        BOOST_TEST_CONTEXT("rank " << shape.size() << " dtype " << sae::io::dtype_name(dtype) << " F=" << fortran) {
          const auto path = dir / "a.npy";
          sae::io::save_npy(path, data.data(), shape, {dtype, fortran});
          const auto back = sae::io::load_npy<T>(path);
          BOOST_TEST(back.shape == shape, boost::test_tools::per_element());
          BOOST_TEST(sae::io::read_npy_header(path).fortran_order == fortran);
          const double tol = dtype == sae::io::DType::f2 ? 1e-2 : dtype == sae::io::DType::f4 ? 1e-6 : 0.0;
          for (std::size_t i = 0; i < data.size(); ++i)
            BOOST_TEST(std::abs(static_cast<double>(back.data[i]) - static_cast<double>(data[i])) <=
                       tol * std::abs(static_cast<double>(data[i])));
          // The memory-mapped view reads the same elements through its strides.
          sae::io::NpyMmap view(path);
          if (shape.size() == 2) {
            T v;
            view.read(view.offset({2, 3}), 1, 1, &v);
            BOOST_TEST(v == back.data[2 * 4 + 3]);
          }
        }
      }
    }
  }
  // Files start with a 64-byte-aligned header, as NumPy writes them.
  BOOST_TEST(sae::io::read_npy_header(dir / "a.npy").data_offset % 64 == 0u);
}

BOOST_AUTO_TEST_CASE(mmap_reads_fortran_and_big_endian_by_offset) {
  sae::io::NpyMmap view(fixture("f4_be_3d_f.npy"));
  BOOST_TEST(view.rank() == 3);
  float row[4];
  view.read(view.offset({1, 2, 0}), view.strides()[2], 4, row);  // C flat 20..23
  for (int j = 0; j < 4; ++j) BOOST_TEST(row[j] == static_cast<float>(ramp(20 + j)));
  BOOST_CHECK_THROW(view.read(view.offset({1, 2, 3}), 1, 2, row), sae::invalid_argument);
}

BOOST_AUTO_TEST_CASE(half_conversion_known_values_and_exhaustive_round_trip) {
  BOOST_TEST(sae::float_to_half(1.0f) == 0x3c00);
  BOOST_TEST(sae::float_to_half(-2.0f) == 0xc000);
  BOOST_TEST(sae::float_to_half(65504.0f) == 0x7bff);
  BOOST_TEST(sae::float_to_half(65520.0f) == 0x7c00);               // rounds to Inf
  BOOST_TEST(sae::float_to_half(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  BOOST_TEST(sae::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie -> even
  BOOST_TEST(sae::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie -> even (up)
  BOOST_TEST(sae::half_to_float(0x3555) == 0.333251953125f);
  BOOST_TEST(std::isinf(sae::half_to_float(0xfc00)));
  BOOST_TEST(std::isnan(sae::half_to_float(0x7e00)));
  for (unsigned h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    if ((bits & 0x7c00) == 0x7c00 && (bits & 0x3ff)) continue;  // NaN payloads
    if (sae::float_to_half(sae::half_to_float(bits)) != bits) BOOST_FAIL("half round trip fails at " << h);
  }
}

BOOST_AUTO_TEST_CASE(atomic_write_keeps_old_file_on_failure) {
  sae::test::ScratchDir dir("atomic");
  const auto path = dir / "out.txt";
  sae::io::write_text_atomically(path, "first");
  BOOST_CHECK_THROW(sae::io::write_atomically(path,
                                              [](std::ostream& out) {
                                                out << "partial";
                                                throw std::runtime_error("boom");
                                              }),
                    std::runtime_error);
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  BOOST_TEST(text == "first");
  BOOST_TEST(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);  // no temp left
}

BOOST_AUTO_TEST_CASE(json_round_trip_and_errors) {
  sae::io::Json j = sae::io::Json::object();
  j["name"] = "a \"quoted\"\nline\t\\";
  j["n"] = 42;
  j["x"] = 0.125;
  j["flag"] = true;
  j["none"] = nullptr;
  j["list"].push_back(1);
  j["list"].push_back("two");
  for (int indent : {-1, 2}) {
    const auto back = sae::io::Json::parse(j.dump(indent));
    BOOST_TEST(back.at("name").as_string() == "a \"quoted\"\nline\t\\");
    BOOST_TEST(back.at("n").as_int() == 42);
    BOOST_TEST(back.at("x").as_number() == 0.125);
    BOOST_TEST(back.at("flag").as_bool());
    BOOST_TEST(back.at("none").is_null());
    BOOST_TEST(back.at("list").as_array()[1].as_string() == "two");
  }
  BOOST_TEST(sae::io::Json::parse("\"caf\\u00e9 \\ud83d\\ude00\"").as_string() == "caf\xc3\xa9 \xf0\x9f\x98\x80");
  BOOST_TEST(sae::io::Json(std::nan("")).dump() == "null");
  for (double v : {0.1, 1.0 / 3.0, -2.5e-300, 123456789.123456789, 6.02214076e23})  // numbers round-trip exactly
    BOOST_TEST(sae::io::Json::parse(sae::io::Json(v).dump()).as_number() == v);
  BOOST_TEST(sae::io::Json(0.1).dump() == "0.1");
  require_throws_with<sae::io_error>([] { sae::io::Json::parse("{\"a\": 1,}", "cfg.json"); }, {"cfg.json", "offset 8"});
  require_throws_with<sae::io_error>([] { sae::io::Json::parse("[1 2]", "x.json"); }, {"expected ',' or ']'"});
  require_throws_with<sae::io_error>([] { sae::io::Json::parse("{} x", "x.json"); }, {"trailing"});
  BOOST_CHECK_THROW(sae::io::Json::parse("1.5").as_int(), sae::error);
}

BOOST_AUTO_TEST_CASE(json_duplicate_keys_are_refused_by_name) {
  // Readers disagree on which of two equal keys counts (Python's json takes the last), so the
  // parser refuses them, naming the source and the key, at any depth.
  using sae::io::Json;
  require_throws_with<sae::io_error>([] { Json::parse("{\"k\": 1, \"k\": 2}", "cfg.json"); },
                                     {"cfg.json: duplicate key 'k' in one object", "offset 9"});
  require_throws_with<sae::io_error>([] { Json::parse("{\"a\": {\"b\": 1, \"c\": [], \"b\": 1}}", "x.json"); },
                                     {"x.json: duplicate key 'b' in one object"});
  require_throws_with<sae::io_error>([] { Json::parse("[{\"x\": 1}, {\"y\": 2, \"x\": 1, \"y\": 3}]", "x.json"); },
                                     {"duplicate key 'y'"});
  // Equal after unescaping is equal; the key is shown escaped, on one line, as valid UTF-8.
  require_throws_with<sae::io_error>([] { Json::parse("{\"k\": 1, \"\\u006b\": 2}", "x.json"); }, {"duplicate key 'k'"});
  require_throws_with<sae::io_error>([] { Json::parse("{\"a\\nb\": 1, \"a\\nb\": 2}", "x.json"); },
                                     {"duplicate key 'a\\nb'"});
  try {
    Json::parse("{\"\xff\": 1, \"\xff\": 2}", "x.json");
    BOOST_FAIL("a duplicate key was accepted");
  } catch (const sae::io_error& e) {
    BOOST_TEST(sae::io::is_valid_utf8(e.what()));
    BOOST_TEST(std::string(e.what()).find("duplicate key '\xEF\xBF\xBD'") != std::string::npos, e.what());
  }
  // Equal keys in different objects, and keys that differ only in case, are fine.
  const Json ok = Json::parse("{\"a\": {\"k\": 1}, \"b\": {\"k\": 2}, \"K\": 3, \"k\": [{\"k\": 4}, {\"k\": 5}]}");
  BOOST_TEST(ok.at("b").at("k").as_int() == 2);
  BOOST_TEST(ok.at("k").as_array()[1].at("k").as_int() == 5);
  // Files and jsonl lines are named; our writer replaces a key, never repeats it.
  sae::test::ScratchDir dir("io-duplicate");
  sae::io::write_text_atomically(dir / "cfg.json", "{\n  \"d_in\": 4,\n  \"d_in\": 8\n}\n");
  require_throws_with<sae::io_error>([&] { sae::io::read_json_file((dir / "cfg.json").string()); },
                                     {(dir / "cfg.json").string() + ": duplicate key 'd_in' in one object"});
  sae::io::write_text_atomically(dir / "s.jsonl", "{\"q\": 1}\n{\"q\": 1, \"q\": 2}\n");
  require_throws_with<sae::io_error>([&] { sae::io::read_jsonl((dir / "s.jsonl").string()); },
                                     {(dir / "s.jsonl").string() + ":2", "duplicate key 'q'"});
  Json j = Json::object();
  j["k"] = 1;
  j["k"] = 2;
  j["nested"]["k"] = 3;
  j["nested"]["k"] = 4;
  const Json back = Json::parse(j.dump());
  BOOST_TEST(back.at("k").as_int() == 2);
  BOOST_TEST(back.at("nested").at("k").as_int() == 4);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_becomes_replacement_characters) {
  // One U+FFFD per byte that starts no valid sequence; valid text (up to 4-byte sequences) is kept.
  // The JSON writer uses the same rule, so a string's JSON is its valid_utf8 text in quotes.
  const std::string r = "\xEF\xBF\xBD";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated \xE2\x82", "truncated " + r + r},             // '€' missing its last byte
      {"truncated \xF0\x9F\x98 end", "truncated " + r + r + r + " end"},
      {"overlong \xC0\xAF", "overlong " + r + r},               // '/' in two bytes
      {"overlong \xE0\x80\xAF", "overlong " + r + r + r},       // '/' in three
      {"lone \x80 continuation", "lone " + r + " continuation"},
      {"surrogate \xED\xA0\x80", "surrogate " + r + r + r},    // U+D800 encoded
      {"past U+10FFFF \xF4\x90\x80\x80", "past U+10FFFF " + r + r + r + r},
      {"latin-1 caf\xE9", "latin-1 caf" + r},
      {"\xFF\xFE", r + r},
      {"valid caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \x7F", "valid caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \x7F"},
      {"", ""},
  };
  for (const auto& [in, expected] : cases) {
    BOOST_TEST_CONTEXT(in) {
      BOOST_TEST(sae::io::valid_utf8(in) == expected);
      BOOST_TEST(sae::io::is_valid_utf8(expected));
      BOOST_TEST(sae::io::is_valid_utf8(in) == (in == expected));
      BOOST_TEST(sae::io::Json(in).dump() == "\"" + expected + "\"");
    }
  }
}
