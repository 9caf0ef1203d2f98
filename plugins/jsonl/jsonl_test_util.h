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
#include "gtest/gtest.h"

namespace exportd::jsonl::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "exportd_jsonl_XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline sdk::Value Str(std::string s) {
  sdk::Value v;
  v.type = sdk::FieldType::kString;
  v.is_null = false;
  v.s = std::move(s);
  return v;
}
inline sdk::Value Int(std::int64_t i) {
  sdk::Value v;
  v.type = sdk::FieldType::kInt;
  v.is_null = false;
  v.i = i;
  return v;
}
inline sdk::Value Null(sdk::FieldType type) {
  sdk::Value v;
  v.type = type;
  return v;
}

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
