// Records that exportd hands to a destination, and the outcome a destination
// reports for each of them.
//
// A RecordBatch is row-major: `fields` names the destination fields (the
// export's mapping, in order), and each record has one Value per field.
//
//   for (size_t r = 0; r < batch.size(); ++r) {
//     const exportd::sdk::Value& email = batch.at(r, email_column);
//     if (email.is_null) { ... reject ... }
//   }
#ifndef EXPORTD_SDK_RECORD_H_
#define EXPORTD_SDK_RECORD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace exportd::sdk {

// The type of a profile field, declared by the segment's schema.
enum class FieldType { kString, kInt, kDouble, kBool, kTimestamp };

// One field value of one record.
struct Value {
  FieldType type = FieldType::kString;
  bool is_null = true;
  // kString: the text. Unused otherwise.
  std::string s;
  // kInt: the number; kBool: 0 or 1; kTimestamp: microseconds since the Unix
  // epoch, UTC.
  std::int64_t i = 0;
  // kDouble: the number.
  double d = 0;

  // Typed constructors, e.g. `Value::String("a@example.com")`, `Value::Null(kInt)`.
  static Value String(std::string text) {
    Value v = Present(FieldType::kString);
    v.s = std::move(text);
    return v;
  }
  static Value Int(std::int64_t number) { return Integral(FieldType::kInt, number); }
  static Value Double(double number) {
    Value v = Present(FieldType::kDouble);
    v.d = number;
    return v;
  }
  static Value Bool(bool flag) { return Integral(FieldType::kBool, flag ? 1 : 0); }
  static Value Timestamp(std::int64_t micros) { return Integral(FieldType::kTimestamp, micros); }
  static Value Null(FieldType type = FieldType::kString) {
    Value v;
    v.type = type;
    return v;
  }

 private:
  static Value Present(FieldType type) {
    Value v;
    v.type = type;
    v.is_null = false;
    return v;
  }
  static Value Integral(FieldType type, std::int64_t number) {
    Value v = Present(type);
    v.i = number;
    return v;
  }
};

// A destination field in a batch: its name at the destination and the type of
// the profile field mapped onto it.
struct BatchField {
  std::string name;
  FieldType type = FieldType::kString;
};

struct RecordBatch {
  std::vector<BatchField> fields;
  // One per record: the profile id (stable across runs).
  std::vector<std::string> profile_ids;
  // Row-major: values[row * fields.size() + column].
  std::vector<Value> values;

  std::size_t size() const { return profile_ids.size(); }
  const Value& at(std::size_t row, std::size_t column) const {
    return values[row * fields.size() + column];
  }
  // Index of the field named `name`, or -1.
  int FieldIndex(const std::string& name) const {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (fields[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }
};

// The reason_code of a record the destination refuses because it erased the
// person on their request (a privacy deletion: Iterable's "forgotten" users).
// exportd does not send that member again while its identifier stays the
// same, and never sends a removal for it.
inline constexpr char kReasonForgotten[] = "forgotten";

// What happened to one record.
enum class OutcomeKind {
  kDelivered,  // The destination accepted it.
  kRejected,   // The destination (or the plugin) refused it; retrying as is won't help.
  kRetryable,  // Not delivered for a transient reason; the engine retries later.
};

struct RecordOutcome {
  OutcomeKind kind = OutcomeKind::kDelivered;
  // Machine-readable reason, e.g. "invalid_email", "conflict", "BadParams".
  std::string reason_code;
  // The destination field at fault, if any (e.g. "email").
  std::string field;
  // Human-readable explanation; never contains a secret.
  std::string message;

  static RecordOutcome Delivered() { return {}; }
  static RecordOutcome Rejected(std::string code, std::string field, std::string message) {
    return {OutcomeKind::kRejected, std::move(code), std::move(field), std::move(message)};
  }
  static RecordOutcome Retryable(std::string code, std::string message) {
    return {OutcomeKind::kRetryable, std::move(code), {}, std::move(message)};
  }
};

}  // namespace exportd::sdk

#endif  // EXPORTD_SDK_RECORD_H_
