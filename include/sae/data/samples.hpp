// The text behind each activation row: `samples.jsonl` as written by tools/extract_activations.py
// (question, answer, cot_steps, final_answer), or raw GSM8K lines (question, answer), whose CoT
// steps and final answer are then parsed here.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/data/cot_steps.hpp>
#include <sae/io/jsonl.hpp>

#include <string>
#include <vector>

namespace sae::data {

struct Sample {
  std::string question;
  std::string answer;
  std::vector<CotStep> cot_steps;
  std::string final_answer;
};

inline std::vector<Sample> load_samples(const std::string& path) {
  std::vector<Sample> samples;
  const auto rows = io::read_jsonl(path);
  samples.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    try {
      Sample s;
      s.question = rows[i].at("question").as_string();
      s.answer = rows[i].at("answer").as_string();
      s.cot_steps = parse_cot_steps(s.answer);  // the annotations are the source of truth
      s.final_answer = parse_final_answer(s.answer);
      samples.push_back(std::move(s));
    } catch (const io_error&) {
      throw;
    } catch (const error& e) {
      throw io_error(path, "record " + std::to_string(i + 1) + ": " + e.what());
    }
  }
  return samples;
}

// The examples pair row i of the activations with sample i, so the counts must agree.
inline void require_matching_rows(const std::vector<Sample>& samples, index_t rows, const std::string& samples_path,
                                  const std::string& activations_path) {
  if (static_cast<index_t>(samples.size()) != rows)
    throw io_error(samples_path, "has " + std::to_string(samples.size()) + " samples but " + activations_path +
                                     " has " + std::to_string(rows) + " rows; they must describe the same problems");
}

// The samples behind the given rows (e.g. a split's validation rows), in that order: data rows and
// samples are paired by row index, whatever the split.
inline std::vector<Sample> samples_of_rows(const std::vector<Sample>& samples, const std::vector<index_t>& rows) {
  std::vector<Sample> out;
  out.reserve(rows.size());
  for (index_t r : rows) {
    sae::detail::require(r >= 0 && r < static_cast<index_t>(samples.size()), "samples_of_rows()",
                         "row " + std::to_string(r) + " has no sample (there are " + std::to_string(samples.size()) + ")");
    out.push_back(samples[static_cast<std::size_t>(r)]);
  }
  return out;
}

}  // namespace sae::data
