// Helpers that build RecordBatches for the Iterable plugin's tests.
#ifndef EXPORTD_PLUGINS_ITERABLE_TESTS_TEST_BATCHES_H_
#define EXPORTD_PLUGINS_ITERABLE_TESTS_TEST_BATCHES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "exportd/sdk/record.h"

namespace exportd::iterable::testing {

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
inline sdk::Value Dbl(double d) {
  sdk::Value v;
  v.type = sdk::FieldType::kDouble;
  v.is_null = false;
  v.d = d;
  return v;
}
inline sdk::Value Bool(bool b) {
  sdk::Value v;
  v.type = sdk::FieldType::kBool;
  v.is_null = false;
  v.i = b ? 1 : 0;
  return v;
}
inline sdk::Value Time(std::int64_t micros) {
  sdk::Value v;
  v.type = sdk::FieldType::kTimestamp;
  v.is_null = false;
  v.i = micros;
  return v;
}
inline sdk::Value Null(sdk::FieldType type = sdk::FieldType::kString) {
  sdk::Value v;
  v.type = type;
  v.is_null = true;
  return v;
}

// A batch with only an email field.
inline sdk::RecordBatch EmailBatch(const std::vector<std::string>& emails) {
  sdk::RecordBatch batch;
  batch.fields = {{"email", sdk::FieldType::kString}};
  for (size_t i = 0; i < emails.size(); ++i) {
    batch.profile_ids.push_back("p" + std::to_string(i));
    batch.values.push_back(Str(emails[i]));
  }
  return batch;
}

// `n` records user<i>@example.com with firstName, score, vip and signedUp.
inline sdk::RecordBatch PeopleBatch(size_t n, size_t first = 0) {
  sdk::RecordBatch batch;
  batch.fields = {{"email", sdk::FieldType::kString},
                  {"firstName", sdk::FieldType::kString},
                  {"score", sdk::FieldType::kDouble},
                  {"vip", sdk::FieldType::kBool},
                  {"signedUp", sdk::FieldType::kTimestamp}};
  for (size_t i = first; i < first + n; ++i) {
    batch.profile_ids.push_back("p" + std::to_string(i));
    batch.values.push_back(Str("user" + std::to_string(i) + "@example.com"));
    batch.values.push_back(Str("Name \"" + std::to_string(i) + "\""));
    batch.values.push_back(Dbl(static_cast<double>(i) + 0.5));
    batch.values.push_back(Bool(i % 2 == 0));
    batch.values.push_back(Time(1'700'000'000'000'000 + static_cast<std::int64_t>(i)));
  }
  return batch;
}

}  // namespace exportd::iterable::testing

#endif  // EXPORTD_PLUGINS_ITERABLE_TESTS_TEST_BATCHES_H_
