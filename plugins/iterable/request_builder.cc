#include "request_builder.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "email.h"

namespace exportd::iterable {
namespace {

constexpr std::string_view kEmail = "email";
constexpr std::string_view kUserId = "userId";

constexpr char kHex[] = "0123456789abcdef";
constexpr char kReplacementChar[] = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t len;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // Overlong.
    if (b0 == 0xED) hi = 0x9F;  // Surrogates.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // Overlong.
    if (b0 == 0xF4) hi = 0x8F;  // Above U+10FFFF.
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return len;
}

void Append2(int v, std::string* out) {
  out->push_back(static_cast<char>('0' + v / 10));
  out->push_back(static_cast<char>('0' + v % 10));
}

std::string Abbreviate(std::string_view s) {
  constexpr size_t kMax = 100;
  if (s.size() <= kMax) return std::string(s);
  return std::string(s.substr(0, kMax)) + "...";
}

}  // namespace

const char* FieldTypeName(sdk::FieldType type) {
  switch (type) {
    case sdk::FieldType::kString:
      return "text";
    case sdk::FieldType::kInt:
      return "an integer";
    case sdk::FieldType::kDouble:
      return "a number";
    case sdk::FieldType::kBool:
      return "a boolean";
    case sdk::FieldType::kTimestamp:
      return "a timestamp";
  }
  return "a value";
}

std::vector<std::string> SentDataFields(const sdk::RecordBatch& batch, std::size_t row) {
  std::vector<std::string> out;
  for (std::size_t c = 0; c < batch.fields.size(); ++c) {
    const std::string& name = batch.fields[c].name;
    if (name == kEmail || name == kUserId || IsReservedField(name)) continue;
    if (!batch.at(row, c).is_null) out.push_back(name);
  }
  return out;
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t run_start = 0;
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out->append(s.data() + run_start, i - run_start);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (c < 0x20) {
          const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out->append(esc, sizeof(esc));
        } else {
          out->append(kReplacementChar);  // Invalid UTF-8 byte.
        }
    }
    ++i;
    run_start = i;
  }
  out->append(s.data() + run_start, n - run_start);
  out->push_back('"');
}

void AppendJsonInt(std::int64_t value, std::string* out) {
  char buf[24];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, result.ptr);
}

void AppendJsonDouble(double value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, result.ptr);
}

std::string FormatIterableTimestamp(std::int64_t micros) {
  std::string out;
  AppendIterableTimestamp(micros, &out);
  return out;
}

void AppendIterableTimestamp(std::int64_t micros, std::string* out) {
  // Floor division, so times before 1970 land on the right second.
  std::int64_t seconds = micros / 1'000'000;
  if (micros % 1'000'000 < 0) --seconds;
  std::int64_t days = seconds / 86400;
  std::int64_t second_of_day = seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    --days;
  }
  // Values of one batch share few days: remember the last date per thread.
  thread_local std::int64_t cached_days = std::numeric_limits<std::int64_t>::min();
  thread_local std::string cached_date;
  if (days != cached_days) {
    // Howard Hinnant's civil_from_days.
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const std::int64_t doe = z - era * 146097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    cached_date.clear();
    if (year >= 0 && year <= 9999) {
      const int y = static_cast<int>(year);
      Append2(y / 100, &cached_date);
      Append2(y % 100, &cached_date);
    } else {
      AppendJsonInt(year, &cached_date);
    }
    cached_date.push_back('-');
    Append2(month, &cached_date);
    cached_date.push_back('-');
    Append2(day, &cached_date);
    cached_days = days;
  }
  const int sod = static_cast<int>(second_of_day);
  const int h = sod / 3600;
  const int m = sod / 60 % 60;
  const int sec = sod % 60;
  const char time[16] = {' ',
                         static_cast<char>('0' + h / 10),
                         static_cast<char>('0' + h % 10),
                         ':',
                         static_cast<char>('0' + m / 10),
                         static_cast<char>('0' + m % 10),
                         ':',
                         static_cast<char>('0' + sec / 10),
                         static_cast<char>('0' + sec % 10),
                         ' ',
                         '+',
                         '0',
                         '0',
                         ':',
                         '0',
                         '0'};
  out->append(cached_date);
  out->append(time, sizeof(time));
}

void AppendJsonValue(const sdk::Value& value, std::string* out) {
  if (value.is_null) {
    out->append("null");
    return;
  }
  switch (value.type) {
    case sdk::FieldType::kString:
      AppendJsonString(value.s, out);
      return;
    case sdk::FieldType::kInt:
      AppendJsonInt(value.i, out);
      return;
    case sdk::FieldType::kDouble:
      AppendJsonDouble(value.d, out);
      return;
    case sdk::FieldType::kBool:
      out->append(value.i != 0 ? "true" : "false");
      return;
    case sdk::FieldType::kTimestamp:
      out->push_back('"');
      AppendIterableTimestamp(value.i, out);
      out->push_back('"');
      return;
  }
  out->append("null");
}

const std::vector<std::string>& ReservedFieldNames() {
  static const auto* const kNames = new std::vector<std::string>{"emailListIds",
                                                                 "userListIds",
                                                                 "signupDate",
                                                                 "signupSource",
                                                                 "profileUpdatedAt",
                                                                 "itblInternal",
                                                                 "itblDS",
                                                                 "itblUserId",
                                                                 "subscribedMessageTypeIds",
                                                                 "unsubscribedChannelIds",
                                                                 "unsubscribedMessageTypeIds"};
  return *kNames;
}

bool IsReservedField(std::string_view name) {
  for (const std::string& reserved : ReservedFieldNames()) {
    if (reserved == name) return true;
  }
  return false;
}

namespace {

// Reads one record's email (normalized) or userId into `*out`. Returns the
// rejection when the value cannot be sent; `*out` empty and no rejection
// means the record holds none (null or empty).
std::optional<sdk::RecordOutcome> ReadIdentity(const sdk::Value& raw, bool user_id,
                                               std::string* out) {
  out->clear();
  const std::string field(user_id ? kUserId : kEmail);
  if (raw.is_null) return std::nullopt;
  if (user_id && raw.type == sdk::FieldType::kInt) {
    out->append(std::to_string(raw.i));
    return std::nullopt;
  }
  if (raw.type != sdk::FieldType::kString) {
    return sdk::RecordOutcome::Rejected(
        user_id ? "invalid_user_id" : "invalid_email", field,
        "the " + field + " field holds " + FieldTypeName(raw.type) + ", not text");
  }
  if (user_id) {
    if (raw.s.empty()) return std::nullopt;
    const std::string problem = UserIdProblem(raw.s);
    if (!problem.empty()) {
      return sdk::RecordOutcome::Rejected("invalid_user_id", field,
                                          "'" + Abbreviate(raw.s) + "': " + problem);
    }
    out->append(raw.s);
    return std::nullopt;
  }
  NormalizeEmailInto(raw.s, out);
  if (!out->empty() && !IsValidEmail(*out)) {
    std::optional<sdk::RecordOutcome> rejected = sdk::RecordOutcome::Rejected(
        "invalid_email", field, "'" + Abbreviate(*out) + "' is not a valid email address");
    out->clear();
    return rejected;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<ListRequests> BuildListRequests(const sdk::RecordBatch& batch,
                                               const ListRequestOptions& options) {
  if (options.max_subscribers < 1 || options.max_body_bytes < 1) {
    return absl::InvalidArgumentError("batch_size and max_body_bytes must be positive");
  }
  if (options.key_field != kEmail && options.key_field != kUserId) {
    return absl::InvalidArgumentError("the key field must be 'email' or 'userId', not '" +
                                      options.key_field + "'");
  }
  const bool key_is_user_id = options.key_field == kUserId;
  const int key_column = batch.FieldIndex(options.key_field);
  if (key_column < 0) {
    return absl::InvalidArgumentError(
        "the batch has no '" + options.key_field + "' field: map the profile field holding the " +
        (key_is_user_id ? "userId" : "email address") + " onto '" + options.key_field + "'");
  }
  if (batch.values.size() != batch.size() * batch.fields.size()) {
    return absl::InvalidArgumentError("malformed batch: " + std::to_string(batch.values.size()) +
                                      " values for " + std::to_string(batch.size()) +
                                      " records of " + std::to_string(batch.fields.size()) +
                                      " fields");
  }
  const bool subscribe = options.operation == ListOperation::kSubscribe;
  // The other identity field, sent along on subscribe.
  const int other_column =
      subscribe ? batch.FieldIndex(std::string(key_is_user_id ? kEmail : kUserId)) : -1;
  const int email_column = key_is_user_id ? other_column : key_column;
  const int user_id_column = key_is_user_id ? key_column : other_column;

  // Data fields (subscribe only): every field but the identities and the
  // Iterable-managed ones, with its key pre-rendered.
  struct DataColumn {
    size_t column;
    std::string key;  // "\"name\":"
  };
  std::vector<DataColumn> data_columns;
  if (subscribe) {
    for (size_t c = 0; c < batch.fields.size(); ++c) {
      const std::string& name = batch.fields[c].name;
      if (static_cast<int>(c) == key_column || static_cast<int>(c) == other_column ||
          IsReservedField(name)) {
        continue;
      }
      DataColumn dc{c, {}};
      AppendJsonString(name, &dc.key);
      dc.key.push_back(':');
      data_columns.push_back(std::move(dc));
    }
  }

  std::string prefix = "{\"listId\":";
  AppendJsonInt(options.list_id, &prefix);
  prefix.append(",\"subscribers\":[");
  std::string suffix = "]";
  if (!subscribe) {
    suffix.append(",\"channelUnsubscribe\":false");
  } else if (options.update_existing_users_only) {
    suffix.append(",\"updateExistingUsersOnly\":true");
  }
  suffix.push_back('}');
  const auto limit = static_cast<size_t>(options.max_body_bytes);

  ListRequests result;
  result.outcomes.resize(batch.size());
  ListRequest current;
  auto start_request = [&]() {
    current = ListRequest();
    current.body.reserve(
        std::min<size_t>(limit, 256 * std::min<size_t>(batch.size(), options.max_subscribers)));
    current.body.append(prefix);
  };
  auto finish_request = [&]() {
    current.body.append(suffix);
    result.requests.push_back(std::move(current));
  };
  start_request();

  std::string email;
  std::string user_id;
  std::string object;
  for (size_t row = 0; row < batch.size(); ++row) {
    email.clear();
    user_id.clear();
    std::optional<sdk::RecordOutcome> rejected;
    if (email_column >= 0) rejected = ReadIdentity(batch.at(row, email_column), false, &email);
    if (!rejected && user_id_column >= 0) {
      rejected = ReadIdentity(batch.at(row, user_id_column), true, &user_id);
    }
    if (!rejected && (key_is_user_id ? user_id : email).empty()) {
      const sdk::Value& raw = batch.at(row, key_column);
      rejected = sdk::RecordOutcome::Rejected(
          key_is_user_id ? "missing_user_id" : "missing_email", options.key_field,
          std::string("the record has no ") + (key_is_user_id ? "userId" : "email address") +
              (raw.is_null ? " (null)" : " (empty)"));
    }
    if (rejected) {
      result.outcomes[row] = std::move(*rejected);
      continue;
    }

    // The subscriber's JSON. Valid emails never need escaping; userIds may.
    object.clear();
    object.push_back('{');
    if (!email.empty()) {
      object.append("\"email\":\"");
      object.append(email);
      object.push_back('"');
    }
    if (!user_id.empty()) {
      if (!email.empty()) object.push_back(',');
      object.append("\"userId\":");
      AppendJsonString(user_id, &object);
    }
    if (!data_columns.empty()) {
      object.append(",\"dataFields\":{");
      bool first = true;
      for (const DataColumn& dc : data_columns) {
        if (!first) object.push_back(',');
        first = false;
        object.append(dc.key);
        AppendJsonValue(batch.at(row, dc.column), &object);
      }
      object.push_back('}');
    }
    object.push_back('}');

    if (prefix.size() + object.size() + suffix.size() > limit) {
      result.outcomes[row] = sdk::RecordOutcome::Rejected(
          "record_too_large", "",
          "the record needs " + std::to_string(prefix.size() + object.size() + suffix.size()) +
              " bytes of JSON, more than max_body_bytes (" + std::to_string(limit) + ")");
      continue;
    }
    if (!current.rows.empty() &&
        (current.rows.size() >= static_cast<size_t>(options.max_subscribers) ||
         current.body.size() + 1 + object.size() + suffix.size() > limit)) {
      finish_request();
      start_request();
    }
    if (!current.rows.empty()) current.body.push_back(',');
    current.body.append(object);
    current.rows.push_back(row);
    ListRequest::Spans spans;
    spans.email_offset = static_cast<std::uint32_t>(current.identities.size());
    spans.email_size = static_cast<std::uint32_t>(email.size());
    current.identities.append(email);
    spans.user_id_offset = static_cast<std::uint32_t>(current.identities.size());
    spans.user_id_size = static_cast<std::uint32_t>(user_id.size());
    current.identities.append(user_id);
    current.spans.push_back(spans);
  }
  if (!current.rows.empty()) finish_request();
  return result;
}

}  // namespace exportd::iterable
