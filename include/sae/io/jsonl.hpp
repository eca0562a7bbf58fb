// JSON Lines: one JSON value per line (blank lines skipped). Errors name the file and line.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/input_file.hpp>
#include <sae/io/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace sae::io {

inline std::vector<Json> read_jsonl(const std::string& path) {
  require_readable_file(path, "JSON Lines file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(path, "cannot open");
  std::vector<Json> rows;
  std::string line;
  for (long lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rows.push_back(Json::parse(line, path + ":" + std::to_string(lineno)));
  }
  return rows;
}

}  // namespace sae::io
