// The batcher on its own: batches close at the record or the byte limit.
#include "server/sync/batcher.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::sync {
namespace {

using ::testing::ElementsAre;

class BatcherTest : public ::testing::Test {
 protected:
  Batcher Make(int max_records, std::int64_t max_bytes) {
    return Batcher(max_records, max_bytes, {{"email", sdk::FieldType::kString}},
                   [this](PendingBatch batch) {
                     sizes_.push_back(batch.records.size());
                     removals_.push_back(batch.removal);
                     fields_ = batch.records.fields.size();
                     return accept_;
                   });
  }
  bool Add(Batcher& b, const std::string& id, std::int64_t bytes) {
    b.current().records.profile_ids.push_back(id);
    b.current().records.values.push_back(sdk::Value::String(id + "@example.com"));
    return b.RecordAdded(bytes);
  }
  std::vector<size_t> sizes_;
  std::vector<bool> removals_;
  size_t fields_ = 0;
  bool accept_ = true;
};

TEST_F(BatcherTest, ABatchClosesAtTheRecordLimit) {
  Batcher b = Make(3, 1'000'000);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(Add(b, "p" + std::to_string(i), 10));
  EXPECT_THAT(sizes_, ElementsAre(3, 3));
  EXPECT_TRUE(b.Flush());
  EXPECT_THAT(sizes_, ElementsAre(3, 3, 1));
  EXPECT_EQ(fields_, 1u);
}

TEST_F(BatcherTest, ABatchClosesAtTheByteLimit) {
  Batcher b = Make(1000, 100);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Add(b, "p" + std::to_string(i), 40));
  // 40, 80, 120 >= 100: the third record closes the batch.
  EXPECT_THAT(sizes_, ElementsAre(3));
}

TEST_F(BatcherTest, FlushingNothingSendsNothingAndRemovalsStayRemovals) {
  Batcher b = Make(2, 1000);
  EXPECT_TRUE(b.Flush());
  EXPECT_TRUE(sizes_.empty());
  b.Reset(/*removal=*/true);
  Add(b, "a", 1);
  Add(b, "b", 1);
  Add(b, "c", 1);
  b.Flush();
  EXPECT_THAT(removals_, ElementsAre(true, true));
}

TEST_F(BatcherTest, AStoppedSyncIsReported) {
  Batcher b = Make(1, 1000);
  accept_ = false;
  EXPECT_FALSE(Add(b, "a", 1));
}

}  // namespace
}  // namespace exportd::sync
