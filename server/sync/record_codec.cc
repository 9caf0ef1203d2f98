#include "server/sync/record_codec.h"

#include <cstring>

namespace exportd::sync {
namespace {

// Tags; a null value is just its tag.
enum Tag : char { kNull = 0, kString = 1, kInt = 2, kDouble = 3, kBool = 4, kTimestamp = 5 };

void PutU64(std::uint64_t v, std::string& out) {
  char buf[8];
  std::memcpy(buf, &v, 8);
  out.append(buf, 8);
}

bool GetU64(absl::string_view& in, std::uint64_t& v) {
  if (in.size() < 8) return false;
  std::memcpy(&v, in.data(), 8);
  in.remove_prefix(8);
  return true;
}

}  // namespace

sdk::FieldType ToSdkType(v1::FieldType type) {
  switch (type) {
    case v1::FIELD_TYPE_INT: return sdk::FieldType::kInt;
    case v1::FIELD_TYPE_DOUBLE: return sdk::FieldType::kDouble;
    case v1::FIELD_TYPE_BOOL: return sdk::FieldType::kBool;
    case v1::FIELD_TYPE_TIMESTAMP: return sdk::FieldType::kTimestamp;
    default: return sdk::FieldType::kString;
  }
}

void EncodeValue(const store::ValueView& value, std::string& out) {
  switch (value.kind) {
    case v1::Value::kStringValue:
      out.push_back(kString);
      PutU64(value.string_value.size(), out);
      out.append(value.string_value.data(), value.string_value.size());
      break;
    case v1::Value::kIntValue:
      out.push_back(kInt);
      PutU64(static_cast<std::uint64_t>(value.int_value), out);
      break;
    case v1::Value::kDoubleValue: {
      out.push_back(kDouble);
      std::uint64_t bits;
      std::memcpy(&bits, &value.double_value, 8);
      PutU64(bits, out);
      break;
    }
    case v1::Value::kBoolValue:
      out.push_back(kBool);
      out.push_back(value.bool_value ? 1 : 0);
      break;
    case v1::Value::kTimestampMicros:
      out.push_back(kTimestamp);
      PutU64(static_cast<std::uint64_t>(value.int_value), out);
      break;
    default:
      out.push_back(kNull);
  }
}

void ToSdkValue(const store::ValueView& value, sdk::FieldType type, sdk::Value& out) {
  out.type = type;
  out.is_null = false;
  switch (value.kind) {
    case v1::Value::kStringValue:
      out.s.assign(value.string_value.data(), value.string_value.size());
      break;
    case v1::Value::kIntValue:
    case v1::Value::kTimestampMicros: out.i = value.int_value; break;
    case v1::Value::kDoubleValue: out.d = value.double_value; break;
    case v1::Value::kBoolValue: out.i = value.bool_value ? 1 : 0; break;
    default: out.is_null = true;
  }
}

absl::Status DecodeValues(absl::string_view bytes, size_t count,
                          const std::vector<sdk::BatchField>& fields,
                          std::vector<sdk::Value>& out) {
  for (size_t i = 0; i < count; ++i) {
    sdk::Value v;
    if (bytes.empty()) {
      // Encoded under an older mapping with fewer fields: the rest is null.
      v.type = i < fields.size() ? fields[i].type : sdk::FieldType::kString;
      out.push_back(std::move(v));
      continue;
    }
    v.type = i < fields.size() ? fields[i].type : sdk::FieldType::kString;
    v.is_null = false;
    char tag = bytes[0];
    bytes.remove_prefix(1);
    std::uint64_t n = 0;
    switch (tag) {
      case kNull: v.is_null = true; break;
      case kString:
        if (!GetU64(bytes, n) || bytes.size() < n) return absl::DataLossError("bad string");
        v.s.assign(bytes.data(), n);
        bytes.remove_prefix(n);
        break;
      case kInt:
      case kTimestamp:
        if (!GetU64(bytes, n)) return absl::DataLossError("bad number");
        v.i = static_cast<std::int64_t>(n);
        break;
      case kDouble:
        if (!GetU64(bytes, n)) return absl::DataLossError("bad double");
        std::memcpy(&v.d, &n, 8);
        break;
      case kBool:
        if (bytes.empty()) return absl::DataLossError("bad bool");
        v.i = bytes[0] ? 1 : 0;
        bytes.remove_prefix(1);
        break;
      default:
        return absl::DataLossError("unknown value tag in delivered state");
    }
    out.push_back(std::move(v));
  }
  return absl::OkStatus();
}

// MurmurHash64A (public domain, Austin Appleby): fast and fixed, so hashes
// stored in the delivered state stay valid across builds and machines.
std::uint64_t StableHash64(absl::string_view data) {
  constexpr std::uint64_t kMul = 0xc6a4a7935bd1e995ULL;
  constexpr int kShift = 47;
  std::uint64_t h = 0x9747b28c5bd1e995ULL ^ (data.size() * kMul);
  const char* p = data.data();
  const char* end = p + (data.size() & ~static_cast<size_t>(7));
  for (; p != end; p += 8) {
    std::uint64_t k;
    std::memcpy(&k, p, 8);
    k *= kMul;
    k ^= k >> kShift;
    k *= kMul;
    h ^= k;
    h *= kMul;
  }
  switch (data.size() & 7) {
    case 7: h ^= std::uint64_t(static_cast<unsigned char>(p[6])) << 48; [[fallthrough]];
    case 6: h ^= std::uint64_t(static_cast<unsigned char>(p[5])) << 40; [[fallthrough]];
    case 5: h ^= std::uint64_t(static_cast<unsigned char>(p[4])) << 32; [[fallthrough]];
    case 4: h ^= std::uint64_t(static_cast<unsigned char>(p[3])) << 24; [[fallthrough]];
    case 3: h ^= std::uint64_t(static_cast<unsigned char>(p[2])) << 16; [[fallthrough]];
    case 2: h ^= std::uint64_t(static_cast<unsigned char>(p[1])) << 8; [[fallthrough]];
    case 1:
      h ^= std::uint64_t(static_cast<unsigned char>(p[0]));
      h *= kMul;
  }
  h ^= h >> kShift;
  h *= kMul;
  h ^= h >> kShift;
  return h;
}

std::uint64_t HashValues(absl::string_view encoded) { return StableHash64(encoded); }

}  // namespace exportd::sync
