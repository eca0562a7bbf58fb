// Reusing finished results across runs, safely: a result file (a JSON object with a
// "fingerprint" member) is reused only when its fingerprint equals this run's and its contents
// match its name. A committed result made with other settings stops the run with the
// differences named, since reusing it would report old results under new settings.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sae::io {

// The file in a companion folder naming the result it belongs to.
inline constexpr const char* kCompanionFingerprint = "fingerprint.json";

// Marks `folder` (e.g. an SAE's weights, staged beside its result) as belonging to the result
// with `fingerprint`, so that a later run reuses the two only together.
inline void write_companion_fingerprint(const std::filesystem::path& folder, const Json& fingerprint) {
  write_text_atomically(folder / kCompanionFingerprint, fingerprint.dump() + "\n");
}

namespace detail {
// Whether `folder` holds the fingerprint `expected` (an unreadable or missing one does not).
inline bool companion_matches(const std::filesystem::path& folder, const Json& expected) {
  try {
    return fingerprint_differences(read_json_file((folder / kCompanionFingerprint).string()), expected).empty();
  } catch (const error&) {
    return false;
  }
}
}  // namespace detail

// Returns the first reusable copy of `relative` (see RunDirectory::previous, then `<folder>/relative`
// for each of `also_in`, e.g. the folders of a sharded run's shards) and adopts it into the run, or
// nothing when there is none. `name_mismatch(json)` says what in the contents contradicts the
// file's name ("" when nothing). Throws io_error, naming the file, for a committed copy that is
// unreadable, mislabelled or made with another fingerprint; other copies that do not match are
// passed over. `companions` (folders relative to the run folder, e.g. the SAE's weights) must sit
// beside a copy, each holding the same fingerprint (write_companion_fingerprint), for it to be
// reused, and are adopted with it; a companion left by a run with other settings does not count.
// When a copy is passed over only for a missing or foreign companion, `*lacking` says which.
inline std::optional<Json> reusable_result(const RunDirectory& run, const std::filesystem::path& relative,
                                           const Json& fingerprint,
                                           const std::function<std::string(const Json&)>& name_mismatch,
                                           const std::vector<std::filesystem::path>& also_in = {},
                                           const std::vector<std::filesystem::path>& companions = {},
                                           std::string* lacking = nullptr) {
  const std::string advice = "; pass --force to retrain it, or choose another output directory";
  auto candidates = run.previous(relative);
  std::error_code ec;
  for (const auto& folder : also_in)
    if (std::filesystem::is_regular_file(folder / relative, ec)) candidates.push_back(folder / relative);
  for (const auto& file : candidates) {
    const bool committed = file == run.out() / relative;
    Json j;
    try {
      j = read_json_file(file.string());
      if (!j.is_object()) throw io_error(file.string(), "not a JSON object");
    } catch (const error& e) {
      if (!committed) continue;
      throw io_error(file.string(), std::string("is not a readable result (") + e.what() + ")" + advice);
    }
    const Json* stored = nullptr;
    for (const auto& [k, v] : j.as_object())
      if (k == "fingerprint") stored = &v;
    if (!stored) {
      if (!committed) continue;
      throw io_error(file.string(), "has no fingerprint (made by an older version?), so what produced it is unknown" + advice);
    }
    std::string wrong;
    try {
      wrong = name_mismatch(j);
    } catch (const error& e) {
      wrong = e.what();
    }
    if (!wrong.empty()) {
      if (!committed) continue;
      throw io_error(file.string(), "its contents do not match its name (" + wrong + ")" + advice);
    }
    const auto diffs = fingerprint_differences(*stored, fingerprint);
    if (!diffs.empty()) {
      if (!committed) continue;
      throw io_error(file.string(), "was made with other settings: " + describe_differences(diffs) + advice);
    }
    std::filesystem::path folder = file;  // the run (or staging) folder the copy sits in
    for (auto part = relative.begin(); part != relative.end(); ++part) folder = folder.parent_path();
    const auto missing = std::find_if(companions.begin(), companions.end(), [&](const std::filesystem::path& c) {
      return !detail::companion_matches(folder / c, *stored);
    });
    if (missing != companions.end()) {
      if (lacking) *lacking = missing->generic_string();
      continue;
    }
    run.adopt(file, relative);
    for (const auto& c : companions) run.adopt(folder / c, c);
    return j;
  }
  return std::nullopt;
}

}  // namespace sae::io
