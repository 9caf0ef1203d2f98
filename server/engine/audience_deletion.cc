#include "server/engine/audience_deletion.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/auth/auth.h"
#include "server/common/run_states.h"
#include "server/common/status_macros.h"
#include "server/destinations/connection_resolver.h"

namespace exportd::engine {
namespace {

// The audiences the export's runs created (of segment `only_segment_id`
// when not empty): id -> the segment's name.
absl::StatusOr<std::map<std::string, std::string>> CreatedAudiences(
    store::Store& store, const v1::Export& e, const std::string& only_segment_id = "") {
  std::map<std::string, std::string> created;
  store::PageRequest page{1000, ""};
  while (true) {
    std::string next;
    EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Run> runs, store.ListRuns(e.id(), page, &next));
    for (const v1::Run& run : runs) {
      if (!IsFinal(run.state())) {
        return absl::FailedPreconditionError(
            absl::StrCat("export '", e.name(), "' has a run in progress (", run.id(),
                         "); cancel it with 'exportctl run cancel ", run.id(),
                         "' or let it end, then delete the export with its audiences"));
      }
      for (const v1::SegmentProgress& p : run.segments()) {
        if (p.audience_created() && !p.audience_id().empty() &&
            (only_segment_id.empty() || p.segment_id() == only_segment_id)) {
          created.emplace(p.audience_id(), p.segment_name());
        }
      }
    }
    if (next.empty()) return created;
    page.after = next;
  }
}

// The other exports that deliver to each of `audiences`: id -> export names.
absl::StatusOr<std::map<std::string, std::vector<std::string>>> SharedWith(
    store::Store& store, const v1::Export& e, const std::map<std::string, std::string>& audiences) {
  std::map<std::string, std::vector<std::string>> shared;
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, store.ListExports());
  for (const v1::Export& other : exports) {
    if (other.id() == e.id()) continue;
    for (const std::string& segment_id : other.segments()) {
      absl::StatusOr<store::AudienceState> state = store.GetAudienceState(other.id(), segment_id);
      if (absl::IsNotFound(state.status())) continue;
      EXPORTD_RETURN_IF_ERROR(state.status());
      if (audiences.count(state->audience_id) > 0) {
        shared[state->audience_id].push_back(other.name());
      }
    }
  }
  return shared;
}

std::string Named(const std::string& name, const std::string& id) {
  return absl::StrCat(name, " (", id, ")");
}

// Deletes `created` (of export `e`) at its connection's destination, but for
// those another export uses; adds to `out`.
absl::Status DeleteCreated(store::Store& store, const crypto::SecretBox& secrets,
                           const destinations::DestinationRegistry& registry, const v1::Export& e,
                           const std::map<std::string, std::string>& created,
                           sdk::RunContext& ctx, AudienceDeletion& out) {
  if (created.empty()) return absl::OkStatus();
  EXPORTD_ASSIGN_OR_RETURN(auto shared, SharedWith(store, e, created));
  if (e.connection_id().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "export '", e.name(), "' is detached from its connection, so its audiences (",
        created.size(), ") cannot be reached; attach it with 'exportctl export update ", e.name(),
        " --connection NAME' first, or delete without --delete-audiences"));
  }
  EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored, store.GetConnection(e.connection_id()));
  EXPORTD_ASSIGN_OR_RETURN(destinations::ResolvedConnection resolved,
                           destinations::ResolveConnection(stored, secrets, registry));
  EXPORTD_ASSIGN_OR_RETURN(std::unique_ptr<sdk::Connection> connection,
                           resolved.destination->Connect(resolved.settings));
  const std::string& destination = resolved.destination->manifest().display_name;
  for (const auto& [id, name] : created) {
    auto it = shared.find(id);
    if (it != shared.end()) {
      out.kept.push_back(absl::StrCat(Named(name, id), ": ",
                                      it->second.size() == 1 ? "export '" : "exports '",
                                      absl::StrJoin(it->second, "', '"), "' ",
                                      it->second.size() == 1 ? "uses" : "use", " it too"));
      continue;
    }
    sdk::Audience audience;
    audience.id = id;
    audience.name = name;
    absl::Status deleted = connection->DeleteAudience(audience, ctx);
    if (absl::IsUnimplemented(deleted)) {
      // The destination's answer to every audience: nothing was deleted.
      return absl::FailedPreconditionError(absl::StrCat(
          "destination '", destination, "' of connection '", stored.connection.display_name(),
          "' cannot delete its audiences (", deleted.message(), "); delete without "
          "--delete-audiences and remove them at the destination"));
    }
    if (absl::IsFailedPrecondition(deleted)) {
      out.kept.push_back(absl::StrCat(Named(name, id), ": ", deleted.message()));
      continue;
    }
    if (!deleted.ok()) {
      return absl::Status(
          deleted.code(),
          absl::StrCat("deleting the audiences of export '", e.name(), "' stopped at ",
                       Named(name, id), ": ", deleted.message(),
                       out.deleted.empty()
                           ? std::string("; nothing was deleted")
                           : absl::StrCat("; deleted before: ", absl::StrJoin(out.deleted, ", ")),
                       ". Nothing else was deleted; try again"));
    }
    out.deleted.push_back(Named(name, id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AudienceDeletion> DeleteExportAudiences(
    store::Store& store, const crypto::SecretBox& secrets,
    const destinations::DestinationRegistry& registry, const v1::Export& e, sdk::RunContext& ctx) {
  EXPORTD_ASSIGN_OR_RETURN(auto created, CreatedAudiences(store, e));
  AudienceDeletion out;
  // The audiences the export delivers to that it found rather than created.
  for (int i = 0; i < e.segments_size(); ++i) {
    absl::StatusOr<store::AudienceState> state = store.GetAudienceState(e.id(), e.segments(i));
    if (absl::IsNotFound(state.status())) continue;
    EXPORTD_RETURN_IF_ERROR(state.status());
    if (state->audience_id.empty() || created.count(state->audience_id) > 0) continue;
    out.kept.push_back(absl::StrCat(
        Named(i < e.segment_names_size() ? e.segment_names(i) : e.segments(i), state->audience_id),
        ": not created by export '", e.name(), "' (it existed before)"));
  }
  EXPORTD_RETURN_IF_ERROR(DeleteCreated(store, secrets, registry, e, created, ctx, out));
  return out;
}

absl::StatusOr<AudienceDeletion> DeleteSegmentAudiences(
    store::Store& store, const crypto::SecretBox& secrets,
    const destinations::DestinationRegistry& registry, const v1::Segment& segment,
    const auth::Principal& who, sdk::RunContext& ctx) {
  // Every export's audiences of the segment first, and who may reach them:
  // when one cannot go, nothing is deleted.
  std::vector<std::pair<v1::Export, std::map<std::string, std::string>>> todo;
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, store.ListExports());
  for (const v1::Export& e : exports) {
    EXPORTD_ASSIGN_OR_RETURN(auto created, CreatedAudiences(store, e, segment.id()));
    if (created.empty()) continue;
    absl::StatusOr<store::StoredConnection> c =
        e.connection_id().empty() ? absl::NotFoundError("detached")
                                  : store.GetConnection(e.connection_id());
    if (!auth::MayUseConnection(who, c.ok() ? &c->connection : nullptr)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "export '", e.name(), "' sent segment '", segment.name(),
          "' over a connection you may not use, so you cannot delete its audiences; an admin "
          "can, or delete the segment without --delete-audiences"));
    }
    todo.emplace_back(e, std::move(created));
  }
  AudienceDeletion out;
  for (const auto& [e, created] : todo) {
    EXPORTD_RETURN_IF_ERROR(DeleteCreated(store, secrets, registry, e, created, ctx, out));
  }
  return out;
}

}  // namespace exportd::engine
