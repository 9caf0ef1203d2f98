// The engine's compact encoding of a member's mapped values. The same bytes
// serve as the input of the change-detection hash and as the delivered state
// kept for removing the member later.
#ifndef EXPORTD_SERVER_SYNC_RECORD_CODEC_H_
#define EXPORTD_SERVER_SYNC_RECORD_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "exportd/sdk/record.h"
#include "exportd/v1/common.pb.h"
#include "server/store/member_chunk.h"

namespace exportd::sync {

// Appends one profile value, converted to the SDK's representation, to `out`.
void EncodeValue(const store::ValueView& value, std::string& out);
// Decodes `count` values from `bytes` into `out` (appended).
absl::Status DecodeValues(absl::string_view bytes, size_t count,
                          const std::vector<sdk::BatchField>& fields,
                          std::vector<sdk::Value>& out);
// Converts one profile value to the SDK's representation.
void ToSdkValue(const store::ValueView& value, sdk::FieldType type, sdk::Value& out);
// A 64-bit hash that never changes across builds (stored on disk).
std::uint64_t StableHash64(absl::string_view data);
// 64-bit hash of encoded values.
std::uint64_t HashValues(absl::string_view encoded);
sdk::FieldType ToSdkType(v1::FieldType type);

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_RECORD_CODEC_H_
