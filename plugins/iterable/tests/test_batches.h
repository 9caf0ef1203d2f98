// Helpers that build RecordBatches for the Iterable plugin's tests.
#ifndef EXPORTD_PLUGINS_ITERABLE_TESTS_TEST_BATCHES_H_
#define EXPORTD_PLUGINS_ITERABLE_TESTS_TEST_BATCHES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "exportd/sdk/record.h"

namespace exportd::iterable::testing {

// Short names for the SDK's typed Value constructors.
inline sdk::Value Str(std::string s) { return sdk::Value::String(std::move(s)); }
inline sdk::Value Int(std::int64_t i) { return sdk::Value::Int(i); }
inline sdk::Value Dbl(double d) { return sdk::Value::Double(d); }
inline sdk::Value Bool(bool b) { return sdk::Value::Bool(b); }
inline sdk::Value Time(std::int64_t micros) { return sdk::Value::Timestamp(micros); }
inline sdk::Value Null(sdk::FieldType type = sdk::FieldType::kString) {
  return sdk::Value::Null(type);
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

// A batch of (userId, email, plan) records; an empty email is null.
inline sdk::RecordBatch UserIdBatch(
    const std::vector<std::pair<std::string, std::string>>& user_ids_and_emails) {
  sdk::RecordBatch batch;
  batch.fields = {{"userId", sdk::FieldType::kString},
                  {"email", sdk::FieldType::kString},
                  {"plan", sdk::FieldType::kString}};
  for (size_t i = 0; i < user_ids_and_emails.size(); ++i) {
    const auto& [user_id, email] = user_ids_and_emails[i];
    batch.profile_ids.push_back("p" + std::to_string(i));
    batch.values.push_back(Str(user_id));
    batch.values.push_back(email.empty() ? Null() : Str(email));
    batch.values.push_back(Str("plan" + std::to_string(i)));
  }
  return batch;
}

}  // namespace exportd::iterable::testing

#endif  // EXPORTD_PLUGINS_ITERABLE_TESTS_TEST_BATCHES_H_
