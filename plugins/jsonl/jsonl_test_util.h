// Helpers for the jsonl tests: a temp directory and batch builders.
#ifndef EXPORTD_PLUGINS_JSONL_JSONL_TEST_UTIL_H_
#define EXPORTD_PLUGINS_JSONL_JSONL_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "exportd/sdk/record.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace exportd::jsonl::testing {

using ::exportd::sdk::testing::TempDir;

// Short names for the SDK's typed Value constructors.
inline sdk::Value Str(std::string s) { return sdk::Value::String(std::move(s)); }
inline sdk::Value Int(std::int64_t i) { return sdk::Value::Int(i); }
inline sdk::Value Null(sdk::FieldType type) { return sdk::Value::Null(type); }

// A batch of (id, email, age) records.
inline sdk::RecordBatch EmailAgeBatch(const std::vector<std::string>& ids) {
  sdk::RecordBatch b;
  b.fields = {{"email", sdk::FieldType::kString}, {"age", sdk::FieldType::kInt}};
  int n = 0;
  for (const std::string& id : ids) {
    b.profile_ids.push_back(id);
    b.values.push_back(Str(id + "@example.com"));
    b.values.push_back(Int(20 + n++));
  }
  return b;
}

inline std::vector<std::string> ReadLines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace exportd::jsonl::testing

#endif  // EXPORTD_PLUGINS_JSONL_JSONL_TEST_UTIL_H_
