// An export's mappings resolved against a segment's schema: the one place
// that decides which profile field feeds which destination field, and which
// mapping is the destination's identifier. Export validation (when an export
// is saved) and the sync (when it runs) both use it.
//
//   EXPORTD_ASSIGN_OR_RETURN(Mapping m, ResolveMapping(e, segment, "email"));
//   m.columns[i], m.fields[i]   // mapping i: schema column, destination field
//   m.identifier                // index of the identifier mapping, or -1
#ifndef EXPORTD_SERVER_SYNC_MAPPING_H_
#define EXPORTD_SERVER_SYNC_MAPPING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "exportd/sdk/destination.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/segment.pb.h"
#include "server/store/member_chunk.h"

namespace exportd::sync {

// At most this many of a segment's fields are listed in an error, then
// "… and N more".
inline constexpr int kMaxFieldsListed = 20;

struct Mapping {
  // Per mapping, in the export's order: the schema column of its profile
  // field, and the destination field with the profile field's type.
  std::vector<int> columns;
  std::vector<sdk::BatchField> fields;
  // The mapping onto the destination's identifier field (the one
  // Destination::ValidateMapping named for the connection, e.g. Iterable's
  // email or userId), or -1: members are keyed by profile id.
  int identifier = -1;
};

// FAILED_PRECONDITION "mapping 'email' names profile field 'Email', which
// segment 'VIP' does not have (fields: a, b, …)" when a mapped profile field
// is missing. `identifier_field` is the destination field that keys members
// (sdk::MappingCheck::identifier_field); empty: none.
absl::StatusOr<Mapping> ResolveMapping(const v1::Export& e, const v1::Segment& segment,
                                       absl::string_view identifier_field);

// A fingerprint of an export's mappings for `segment` (names and types), as
// exportd kept it before it kept how members are keyed (DeliveryFingerprint):
// still recognised in the store.
std::uint64_t MappingFingerprint(const v1::Export& e, const v1::Segment& segment);

// What a segment's delivered state was computed with, as one 64-bit value
// (store::AudienceState::mapping_fingerprint): the export's mappings for
// `segment` (names and types; the high 32 bits) and how the destination
// keyed members (sdk::MappingCheck::keyed_by, e.g. "userId (project_type
// user_id)"; the low 32 bits). A change of either forces a full resync.
std::uint64_t DeliveryFingerprint(const v1::Export& e, const v1::Segment& segment,
                                  absl::string_view keyed_by);

// What changed since the delivered state's fingerprint `stored` was taken.
struct DeliveryChange {
  bool mapping = false;  // The mappings (names or types) changed.
  // Members were keyed by something else (a setting such as Iterable's
  // project_type, or which mapping is the identifier): the delivered
  // identifiers say nothing about the current ones.
  bool keying = false;
  bool any() const { return mapping || keying; }
};
// Compares `stored` with the current fingerprint. A fingerprint from before
// the keying was kept (MappingFingerprint) that matches the mappings counts
// as unchanged: nothing says how those members were keyed.
DeliveryChange CompareDelivery(std::uint64_t stored, const v1::Export& e,
                               const v1::Segment& segment, absl::string_view keyed_by);

// The stable hash of a canonical identifier; never 0, which means "none".
std::uint64_t IdentHash(absl::string_view canonical);
// The text a destination canonicalizes: strings as they are, integers in
// decimal, nothing for other kinds or null.
std::string IdentifierText(const store::ValueView& v);
std::string IdentifierText(const sdk::Value& v);

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_MAPPING_H_
