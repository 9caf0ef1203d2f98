// A batch on its way to the destination, with what is needed to commit it:
// built by the Batcher, sent by the Dispatcher, turned into a store commit by
// the Committer.
#ifndef EXPORTD_SERVER_SYNC_PENDING_BATCH_H_
#define EXPORTD_SERVER_SYNC_PENDING_BATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "exportd/sdk/record.h"

namespace exportd::sync {

struct PendingBatch {
  bool removal = false;
  sdk::RecordBatch records;
  std::vector<std::string> encoded;
  std::vector<std::uint64_t> id_hashes;
  std::vector<std::uint64_t> hashes;
  // Per record, the digest of the snapshot row it was mapped from (0:
  // none, e.g. removals), kept in its delivered row (store::DeliveredRow).
  std::vector<std::uint64_t> row_hashes;
  std::vector<bool> is_update;
  // Per record: the member's delivered row already records the rejection a
  // rejection of this record would be (kRejected with these hashes, or
  // kUpdateRejected for an update), so that only the run's mark is written
  // (store::BatchCommit::rejected_again).
  std::vector<bool> rejection_recorded;
  // The hashes of the canonical identifiers sent (upserts to destinations
  // with an identifier field; empty otherwise).
  std::vector<std::uint64_t> ident_hashes;
  // Per record, what a rejection's message adds (empty: nothing, for all).
  std::vector<std::string> notes;
  std::int64_t bytes = 0;
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_PENDING_BATCH_H_
