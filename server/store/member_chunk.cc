#include "server/store/member_chunk.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace exportd::store {
namespace {

enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

// A cursor over protobuf wire-format bytes. Every read fails (returns false)
// rather than run past the end.
class Wire {
 public:
  explicit Wire(absl::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool done() const { return p_ == end_; }
  const char* position() const { return p_; }

  bool Varint(std::uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      std::uint64_t byte = static_cast<unsigned char>(*p_++);
      value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;  // More than ten bytes.
  }

  // A tag: field number (never 0) and wire type. As in protobuf, a tag has
  // at most five bytes and only its low 32 bits count.
  bool Tag(std::uint32_t& field, std::uint32_t& wire_type) {
    std::uint32_t tag = 0;
    for (int i = 0;; ++i) {
      if (i == 5 || p_ == end_) return false;
      std::uint32_t byte = static_cast<unsigned char>(*p_++);
      tag |= (byte & 0x7f) << (7 * i);
      if ((byte & 0x80) == 0) break;
    }
    field = tag >> 3;
    wire_type = static_cast<std::uint32_t>(tag & 7);
    return field != 0;
  }

  bool Length(absl::string_view& out) {
    std::uint64_t size;
    if (!Varint(size) || size > static_cast<std::uint64_t>(end_ - p_)) return false;
    out = absl::string_view(p_, static_cast<size_t>(size));
    p_ += size;
    return true;
  }

  bool Fixed64(std::uint64_t& value) {
    if (end_ - p_ < 8) return false;
    std::memcpy(&value, p_, 8);  // Little-endian on every platform we build for.
    p_ += 8;
    return true;
  }

  // Skips the value of a field that is not read.
  bool Skip(std::uint32_t wire_type) {
    std::uint64_t ignored;
    absl::string_view bytes;
    switch (wire_type) {
      case kVarint:
        return Varint(ignored);
      case kFixed64:
        return Fixed64(ignored);
      case kLength:
        return Length(bytes);
      case kFixed32:
        if (end_ - p_ < 4) return false;
        p_ += 4;
        return true;
      default:
        return false;  // Groups (3, 4) and the unused types 6, 7.
    }
  }

 private:
  const char* p_;
  const char* end_;
};

constexpr char kMalformed[] = "is malformed (truncated, or a protobuf group)";
constexpr char kNotUtf8[] = "is not valid UTF-8";

// Reads one Value; null, or what is wrong with it.
const char* ParseValue(absl::string_view bytes, ValueView& value) {
  value = ValueView();
  Wire in(bytes);
  while (!in.done()) {
    std::uint32_t field, type;
    if (!in.Tag(field, type)) return kMalformed;
    std::uint64_t n;
    if (field == v1::Value::kStringValueFieldNumber && type == kLength) {
      absl::string_view s;
      if (!in.Length(s)) return kMalformed;
      if (!IsValidUtf8(s)) return kNotUtf8;
      value = ValueView();
      value.kind = v1::Value::kStringValue;
      value.string_value = s;
    } else if ((field == v1::Value::kIntValueFieldNumber ||
                field == v1::Value::kTimestampMicrosFieldNumber) &&
               type == kVarint) {
      if (!in.Varint(n)) return kMalformed;
      value = ValueView();
      value.kind = field == v1::Value::kIntValueFieldNumber ? v1::Value::kIntValue
                                                            : v1::Value::kTimestampMicros;
      value.int_value = static_cast<std::int64_t>(n);
    } else if (field == v1::Value::kDoubleValueFieldNumber && type == kFixed64) {
      if (!in.Fixed64(n)) return kMalformed;
      value = ValueView();
      value.kind = v1::Value::kDoubleValue;
      std::memcpy(&value.double_value, &n, 8);
    } else if (field == v1::Value::kBoolValueFieldNumber && type == kVarint) {
      if (!in.Varint(n)) return kMalformed;
      value = ValueView();
      value.kind = v1::Value::kBoolValue;
      value.bool_value = n != 0;
    } else if (!in.Skip(type)) {
      return kMalformed;
    }
  }
  return nullptr;
}

// Reads one MemberRow; OK, or DATA_LOSS saying what is wrong with it. Only
// value `only_value` is parsed when it is not negative; else only the values
// `mask` marks, when it is set.
absl::Status ParseRow(absl::string_view bytes, int only_value, const std::vector<bool>* mask,
                      bool check_profile_id, RowView& row) {
  row.profile_id = absl::string_view();
  row.values.clear();
  Wire in(bytes);
  while (!in.done()) {
    std::uint32_t field, type;
    if (!in.Tag(field, type)) return absl::DataLossError(absl::StrCat("the row ", kMalformed));
    if (field == 1 && type == kLength) {  // profile_id
      if (!in.Length(row.profile_id)) {
        return absl::DataLossError(absl::StrCat("the profile id ", kMalformed));
      }
      if (check_profile_id && !IsValidUtf8(row.profile_id)) {
        return absl::DataLossError(absl::StrCat("the profile id ", kNotUtf8));
      }
    } else if (field == 2 && type == kLength) {  // values
      absl::string_view value;
      if (!in.Length(value)) {
        return absl::DataLossError(absl::StrCat("value ", row.values.size() + 1, " ", kMalformed));
      }
      row.values.emplace_back();
      const size_t index = row.values.size() - 1;
      if (only_value >= 0 ? index != static_cast<size_t>(only_value)
                          : mask != nullptr && (index >= mask->size() || !(*mask)[index])) {
        continue;
      }
      if (const char* wrong = ParseValue(value, row.values.back())) {
        return absl::DataLossError(absl::StrCat("value ", row.values.size(), " ", wrong));
      }
    } else if (!in.Skip(type)) {
      return absl::DataLossError(absl::StrCat("the row ", kMalformed));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ChunkReader::Next(RowView& row, int only_value, ProfileId profile_id) {
  Wanted wanted;
  wanted.only_value = only_value;
  wanted.check_profile_id = profile_id == ProfileId::kCheck;
  return Next(row, wanted);
}

bool ChunkReader::Next(RowView& row, const std::vector<bool>& mask) {
  Wanted wanted;
  wanted.mask = &mask;
  return Next(row, wanted);
}

bool ChunkReader::Next(RowView& row, const Wanted& wanted) {
  if (!status_.ok()) return false;
  Wire in(in_);
  while (!in.done()) {
    const char* field_start = in.position();
    std::uint32_t field, type;
    absl::string_view bytes;
    if (!in.Tag(field, type) ||
        (field == 1 && type == kLength ? !in.Length(bytes) : !in.Skip(type))) {
      status_ = absl::DataLossError(absl::StrCat("the chunk ", kMalformed));
      return false;
    }
    if (field != 1 || type != kLength) continue;  // Unknown field.
    // Resume after this row next time.
    in_.remove_prefix(static_cast<size_t>(bytes.data() + bytes.size() - in_.data()));
    status_ = ParseRow(bytes, wanted.only_value, wanted.mask, wanted.check_profile_id, row);
    if (!status_.ok()) return false;
    last_row_offset_ = static_cast<size_t>(field_start - begin_);
    last_row_ = bytes;
    ++rows_read_;
    return true;
  }
  in_ = absl::string_view();
  return false;
}

bool ChunkReader::Reparse(RowView& row, const std::vector<bool>& wanted) {
  if (!status_.ok()) return false;
  // The profile id was checked when the row was read.
  status_ = ParseRow(last_row_, -1, &wanted, /*check_profile_id=*/false, row);
  return status_.ok();
}

bool IsValidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* end = p + text.size();
  while (p != end) {
    // ASCII, eight bytes at a time.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      if (word & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p == end) break;
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    std::uint32_t min, code;
    if ((c & 0xe0) == 0xc0) {
      extra = 1, min = 0x80, code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, min = 0x800, code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, min = 0x10000, code = c & 0x07;
    } else {
      return false;  // A continuation byte first, or 0xf8..0xff.
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
    p += extra + 1;
  }
  return true;
}

std::optional<absl::string_view> ChunkOfUploadRequest(absl::string_view message) {
  Wire in(message);
  std::uint32_t field, type;
  absl::string_view chunk;
  if (!in.Tag(field, type) || field != 2 || type != kLength || !in.Length(chunk) || !in.done()) {
    return std::nullopt;
  }
  return chunk;
}

}  // namespace exportd::store
