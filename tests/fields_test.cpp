// Field lists (core/fields.hpp) and the JSON they give every config (io/config_json.hpp): exact
// 64-bit integers, strict reading that names the key, unknown keys refused, older files still read.
#define BOOST_TEST_MODULE fields
#include "test_helpers.hpp"

#include <sae/data/data_options.hpp>
#include <sae/io/config_json.hpp>
#include <sae/io/json.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/optim/sgd.hpp>
#include <sae/train/sweep.hpp>

#include <cstdint>
#include <limits>
#include <string>

using sae::io::Json;

BOOST_AUTO_TEST_CASE(json_integers_are_exact_to_64_bits) {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  BOOST_TEST(Json::parse("18446744073709551615").as_uint64() == max);
  BOOST_TEST(Json(max).dump() == "18446744073709551615");
  BOOST_TEST(Json::parse("9007199254740993").as_int() == 9007199254740993LL);  // 2^53 + 1: a double would round it
  BOOST_TEST(Json::parse("-9223372036854775808").as_int() == std::numeric_limits<long long>::min());
  BOOST_TEST(Json::parse("18446744073709551616").is_number());  // past 64 bits: a double, not an integer
  BOOST_TEST(!Json::parse("18446744073709551616").is_integer());
  BOOST_TEST(Json::parse("2.5").as_number() == 2.5);
  BOOST_TEST(Json::parse("1e3").as_int() == 1000);  // an integral double is still an integer value
  sae::test::require_throws_with<sae::error>([] { Json::parse("18446744073709551615").as_int(); }, {"out of range"});
  sae::test::require_throws_with<sae::error>([] { Json::parse("-1").as_uint64(); }, {"non-negative"});
  BOOST_TEST(Json(-0.0).dump() == "0");
}

BOOST_AUTO_TEST_CASE(field_text_is_parsed_strictly) {
  const sae::FieldInfo any = sae::field("x", "");
  BOOST_TEST(sae::parse_field_text<double>("1e-3", any) == 1e-3);
  for (const char* bad : {"1e-3x", "1,2", "", " 1", "nan", "inf"})
    sae::test::require_throws_with<sae::invalid_argument>([&] { sae::parse_field_text<double>(bad, any); }, {"expected a number"});
  BOOST_TEST(sae::parse_field_text<std::uint64_t>("18446744073709551615", any) == std::numeric_limits<std::uint64_t>::max());
  for (const char* bad : {"18446744073709551616", "-1", "+1", "1.0", "0x10"})
    sae::test::require_throws_with<sae::invalid_argument>([&] { sae::parse_field_text<std::uint64_t>(bad, any); },
                                                          {"non-negative integer below 2^64"});
  auto positive = sae::field("k", "").at_least(1);
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::parse_field_text<sae::index_t>("0", positive); },
                                                        {"expected an integer >= 1, got 0"});
  const auto lr = sae::field("lr", "").above(0).at_most(1e6);
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::parse_field_text<double>("0", lr); },
                                                        {"expected a number in (0, 1e+06], got 0"});
  BOOST_TEST((sae::parse_field_text<sae::Selection>("magnitude", any) == sae::Selection::magnitude));
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::parse_field_text<sae::LrDecay>("cos", any); },
                                                        {"expected 'none', 'linear' or 'cosine', got 'cos'"});
  const auto groups = sae::parse_field_text<std::vector<sae::index_t>>("4,8,20", positive);
  BOOST_TEST((groups == std::vector<sae::index_t>{4, 8, 20}));
  for (const char* bad : {"4,,8", "4,8,", "4,0"})
    sae::test::require_throws_with<sae::invalid_argument>(
        [&] { sae::parse_field_text<std::vector<sae::index_t>>(bad, positive); }, {"comma-separated list of integers >= 1"});
}

// The reports' TopK config is written exactly as the hand-written writer did (checkpoints and the
// fingerprints of earlier results stay as they were); the options against dead latents appear only when on.
BOOST_AUTO_TEST_CASE(topk_json_is_unchanged_for_the_reports_model) {
  BOOST_TEST(sae::to_json(sae::TopKConfig{384, 2048, 20}).dump(-1) ==
             R"({"input_dim":384,"num_latents":2048,"k":20,"selection":"value","decoder_bias":false,"seed":0})");
  sae::TopKConfig c{8, 24, 3};
  c.aux_k = 4, c.dead_window = 500, c.tied_init = true;
  BOOST_TEST(sae::to_json(c).dump(-1) ==
             R"({"input_dim":8,"num_latents":24,"k":3,"selection":"value","decoder_bias":false,"seed":0,"tied_init":true,)"
             R"("aux_k":4,"aux_alpha":0.03125,"dead_window":500})");
  c.encoder_precision = sae::EncoderPrecision::bf16;  // a compute choice: not part of the model's JSON
  BOOST_TEST(sae::to_json(c).find("encoder_precision") == nullptr);
  BOOST_TEST(sae::io::fields_to_json(c, {true}).at("encoder_precision").as_string() == "bf16");
}

template <class Config>
void check_round_trip(const Config& c) {
  const Json j = sae::io::fields_to_json(c);
  const Config back = sae::io::config_from_json<Config>(Json::parse(j.dump()), "cfg.json");
  BOOST_TEST(sae::io::fields_to_json(back).dump(-1) == j.dump(-1));
}

BOOST_AUTO_TEST_CASE(every_config_round_trips_with_exact_seeds) {
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max() - 2;  // not a double
  sae::TopKConfig topk{8, 24, 3, sae::Selection::magnitude, true, big};
  topk.aux_k = 2, topk.aux_alpha = 0.5, topk.dead_window = 100, topk.resample_every = 300, topk.median_decoder_bias = true;
  check_round_trip(topk);
  BOOST_TEST(sae::topk_config_from_json(sae::to_json(topk), "t").seed == big);
  sae::BatchTopKConfig b;
  b.input_dim = 8, b.num_latents = 24, b.k = 3, b.seed = big, b.threshold_beta = 0.5;
  check_round_trip(b);
  sae::JumpReluConfig jr;
  jr.input_dim = 8, jr.num_latents = 24, jr.initial_l0 = 5, jr.sparsity_coefficient = 0.25, jr.seed = big;
  check_round_trip(jr);
  sae::MatryoshkaConfig m;
  m.input_dim = 8, m.num_latents = 24, m.k = 3, m.group_sizes = {4, 20}, m.seed = big;
  check_round_trip(m);
  BOOST_TEST((sae::io::config_from_json<sae::MatryoshkaConfig>(sae::io::fields_to_json(m), "m").group_sizes ==
              std::vector<sae::index_t>{4, 20}));
  sae::TrainConfig t;
  t.seed = big, t.schedule.warmup_steps = 10, t.schedule.decay = sae::LrDecay::cosine;
  check_round_trip(t);
  check_round_trip(sae::SgdConfig{0.5, 0.25, 0.125});
}

BOOST_AUTO_TEST_CASE(reading_names_the_key_and_refuses_unknown_ones) {
  Json j = sae::to_json(sae::TopKConfig{8, 24, 3});
  j["aux_kk"] = 4;
  sae::test::require_throws_with<sae::io_error>([&] { sae::topk_config_from_json(j, "cfg.json"); },
                                                {"cfg.json", "aux_kk: unknown key", "aux_k"});
  j = sae::to_json(sae::TopKConfig{8, 24, 3});
  j["k"] = "3";
  sae::test::require_throws_with<sae::io_error>([&] { sae::topk_config_from_json(j, "cfg.json"); },
                                                {"k: expected an integer >= 1, got '3'"});
  j["k"] = 30;  // past num_latents: the cross-field check
  sae::test::require_throws_with<sae::io_error>([&] { sae::topk_config_from_json(j, "cfg.json"); }, {"k must be in [1, num_latents=24]"});
  Json missing = Json::object();
  missing["input_dim"] = 8;
  sae::test::require_throws_with<sae::io_error>([&] { sae::topk_config_from_json(missing, "cfg.json"); },
                                                {"num_latents: missing (required)"});
  Json t = sae::io::fields_to_json(sae::TrainConfig{});
  t["lr_schedule"] = Json::object();
  t["lr_schedule"]["final_fraction"] = 2;
  sae::test::require_throws_with<sae::io_error>([&] { sae::io::config_from_json<sae::TrainConfig>(t, "run.json"); },
                                                {"run.json", "lr_schedule.final_fraction: expected a number in [0, 1], got 2"});
  // A field a config does not have, nested: named with its path.
  t["lr_schedule"] = Json::object();
  t["lr_schedule"]["warmup"] = 2;
  sae::test::require_throws_with<sae::io_error>([&] { sae::io::config_from_json<sae::TrainConfig>(t, "run.json"); },
                                                {"lr_schedule.warmup: unknown key"});
}

// Integers are exact to 2^63 now, so cross-field checks must not overflow: group sizes near 2^63
// are refused, not summed (UBSan would flag the overflow in the sanitizer build).
BOOST_AUTO_TEST_CASE(huge_integers_are_refused_without_overflow) {
  sae::MatryoshkaConfig m;
  m.input_dim = 8, m.num_latents = 16, m.k = 2;
  Json j = sae::io::fields_to_json(m);
  j["group_sizes"] = Json::parse("[9223372036854775807, 9223372036854775807]");
  sae::test::require_throws_with<sae::io_error>([&] { sae::io::config_from_json<sae::MatryoshkaConfig>(j, "m.json"); },
                                                {"m.json", "group sizes sum to more than num_latents (16)"});
}

// Checkpoints written before the field lists stored BatchTopK/JumpReLU/Matryoshka seeds as text.
BOOST_AUTO_TEST_CASE(older_seed_text_still_reads) {
  const Json old = Json::parse(
      R"({"input_dim":8,"num_latents":24,"k":3,"threshold_beta":0.99,"decoder_bias":false,"seed":"18446744073709551615","tied_init":false})");
  BOOST_TEST(sae::io::config_from_json<sae::BatchTopKConfig>(old, "c").seed == std::numeric_limits<std::uint64_t>::max());
}

// Fingerprints stored before the field lists hold seeds as text: the same seed still matches.
BOOST_AUTO_TEST_CASE(older_fingerprints_with_text_seeds_still_match) {
  const Json now = sae::training_fingerprint(sae::TrainConfig{}, sae::AdamConfig{});
  Json stored = now;
  stored["seed"] = "0";
  BOOST_TEST(sae::io::fingerprint_differences(stored, now).empty());
  stored["seed"] = "1";
  BOOST_TEST(sae::io::fingerprint_differences(stored, now).size() == 1u);
}

// The training fingerprint, computed by hand: every field that changes the weights.
BOOST_AUTO_TEST_CASE(training_fingerprint_by_hand) {
  sae::TrainConfig t;
  t.seed = 7;
  sae::AdamConfig a;
  BOOST_TEST(sae::training_fingerprint(t, a).dump(-1) ==
             R"({"epochs":25,"batch_size":256,"shuffle":true,"seed":7,"optimizer":"adam","lr":0.001,"beta1":0.9,)"
             R"("beta2":0.999,"eps":1e-08})");
  t.schedule.warmup_steps = 5;
  a.weight_decay = 0.1;
  const Json f = sae::training_fingerprint(t, a);
  BOOST_TEST(f.at("lr_schedule").dump(-1) == R"({"warmup_steps":5,"decay":"none","final_fraction":0})");
  BOOST_TEST(f.at("weight_decay").as_number() == 0.1);
}


BOOST_AUTO_TEST_CASE(assign_fields_changes_only_the_named_ones) {
  sae::TopKConfig c{16, 64, 4};
  c.seed = 9;
  Json changes = Json::object();
  changes["aux_k"] = 2;
  changes["dead_window"] = 100;
  sae::io::assign_fields(changes, c);
  BOOST_TEST(c.aux_k == 2);
  BOOST_TEST(c.dead_window == 100);
  BOOST_TEST((c.input_dim == 16 && c.num_latents == 64 && c.k == 4 && c.seed == 9u));  // required fields kept
  changes = Json::object();
  changes["bandwidth"] = 0.5;  // a JumpReLU field
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::io::assign_fields(changes, c); },
                                                        {"bandwidth", "unknown key", "aux_k"});
  changes = Json::object();
  changes["k"] = -1;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::io::assign_fields(changes, c); }, {"k", "got -1"});
  BOOST_TEST(c.k == 4);  // a refused change leaves the config as it was
}

// Optional fields (DataOptions' layer, position, val_fraction): unset is JSON null and reads back
// unset; a given value is parsed and range-checked like any other.
BOOST_AUTO_TEST_CASE(optional_fields_are_null_when_unset) {
  sae::data::DataOptions d;
  d.data = "acts.npy", d.layer = 3;
  const Json j = sae::io::fields_to_json(d);
  BOOST_TEST(j.dump(-1) == R"({"data":"acts.npy","layer":3,"position":null,"target_data":"","target_layer":null,"target_position":null,)"
             R"("stream":false,"val_fraction":null})");
  const auto back = sae::io::config_from_json<sae::data::DataOptions>(Json::parse(j.dump()), "cfg.json");
  BOOST_TEST((back.layer == std::optional<sae::index_t>(3)));
  BOOST_TEST(!back.position.has_value());
  BOOST_TEST(!back.val_fraction.has_value());
  BOOST_TEST((back.slice()->layer == 3 && back.slice()->position == 0));
  BOOST_TEST(!sae::data::DataOptions{}.slice().has_value());
  const auto fraction = sae::field("val_fraction", "").above(0).below(1);
  BOOST_TEST(*sae::parse_field_text<std::optional<double>>("0.25", fraction) == 0.25);
  sae::test::require_throws_with<sae::invalid_argument>(
      [&] { sae::parse_field_text<std::optional<double>>("1", fraction); }, {"expected a number in (0, 1), got 1"});
  sae::test::require_throws_with<sae::error>(
      [] { sae::io::config_from_json<sae::data::DataOptions>(Json::parse(R"({"data":"a","layer":-2})"), "cfg.json"); },
      {"cfg.json", "layer", "-2"});
}
