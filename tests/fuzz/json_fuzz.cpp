// libFuzzer target: the JSON parser and writer, and the samples.jsonl reader built on them.
// Parsing must succeed or throw sae::io_error; whatever parses must dump to valid JSON that
// parses back to the same dump (so text copied from inputs can never corrupt an output file).
#include "fuzz_common.hpp"

#include <sae/data/samples.hpp>
#include <sae/io/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const sae::io::Json j = sae::io::Json::parse(text, "fuzz");
    for (int indent : {-1, 2}) {
      const std::string once = j.dump(indent);
      if (sae::io::Json::parse(once, "dump").dump(indent) != once) __builtin_trap();
    }
  } catch (const sae::io_error&) {
  }
  // Any string, even invalid UTF-8, must be written as JSON that parses back.
  const std::string as_string = sae::io::Json(text).dump();
  if (!sae::io::Json::parse(as_string, "string").is_string()) __builtin_trap();
  const auto path = sae_fuzz::scratch("samples.jsonl");
  sae_fuzz::write_file(path, text.data(), text.size());
  try {
    sae::data::load_samples(path.string());
  } catch (const sae::error&) {
  }
  return 0;
}
