// Deleting an export's destination audiences (Iterable lists) together with
// the export (`exportctl export delete NAME --delete-audiences`).
//
// Only audiences one of the export's runs created (SegmentProgress::
// audience_created) are deleted, and of those only the ones no other export
// delivers to (its audience state names the same audience): a list that
// existed before, or that another export shares, stays, and the answer says
// why. The destination deletes with Connection::DeleteAudience; one that
// cannot (UNIMPLEMENTED) makes the whole request FAILED_PRECONDITION before
// anything is deleted.
//
//   EXPORTD_ASSIGN_OR_RETURN(AudienceDeletion done,
//                            DeleteExportAudiences(store, secrets, registry, e, ctx));
//   EXPORTD_RETURN_IF_ERROR(store.DeleteExport(e.id()));  // then the export
#ifndef EXPORTD_SERVER_ENGINE_AUDIENCE_DELETION_H_
#define EXPORTD_SERVER_ENGINE_AUDIENCE_DELETION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "exportd/sdk/destination.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/segment.pb.h"
#include "server/auth/auth.h"
#include "server/crypto/secret_box.h"
#include "server/destinations/registry.h"
#include "server/store/store.h"

namespace exportd::engine {

struct AudienceDeletion {
  // "VIP (10000000001)", in the order deleted.
  std::vector<std::string> deleted;
  // "Shared (10000000002): export 'b' uses it too", "Old (7): not created by
  // export 'a' (it existed before)", or what the destination said when it
  // keeps one (Iterable: "List is in use").
  std::vector<std::string> kept;
};

// Deletes the audiences export `e` created and no other export uses, at the
// destination of `e`'s connection. The export itself is left to the caller
// (delete it after an OK answer). FAILED_PRECONDITION, with nothing deleted,
// when `e` has a run in progress, has audiences but no connection (detached),
// or its destination cannot delete audiences. Another failure of the
// destination (unreachable, credentials refused) stops at once; the message
// names what was deleted before it.
absl::StatusOr<AudienceDeletion> DeleteExportAudiences(
    store::Store& store, const crypto::SecretBox& secrets,
    const destinations::DestinationRegistry& registry, const v1::Export& e, sdk::RunContext& ctx);

// `exportctl segment delete NAME --delete-audiences`: the audiences of
// `segment` that exports' runs created (each export's as above: only those no
// other export uses). PERMISSION_DENIED, with nothing deleted, when one of
// those exports is on a connection `who` may not use; FAILED_PRECONDITION as
// above. The segment itself is left to the caller.
absl::StatusOr<AudienceDeletion> DeleteSegmentAudiences(
    store::Store& store, const crypto::SecretBox& secrets,
    const destinations::DestinationRegistry& registry, const v1::Segment& segment,
    const auth::Principal& who, sdk::RunContext& ctx);

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_AUDIENCE_DELETION_H_
