#include "exportd/sdk/testing/destination_conformance.h"
#include "hello_destination.h"

namespace {

namespace sdk = ::exportd::sdk;

class HelloTraits : public sdk::testing::ConformanceTraitsBase {
 public:
  absl::StatusOr<std::shared_ptr<sdk::Destination>> MakeDestination() {
    auto destination = hello::CreateHelloDestination();
    if (!destination.ok()) return destination.status();
    return std::shared_ptr<sdk::Destination>(*std::move(destination));
  }
  sdk::Settings ValidSettings() { return {{"token", "hello-secret-token"}}; }
  sdk::RecordBatch ValidBatch() { return Batch({"p1", "p2"}, /*null_row=*/-1); }
  sdk::testing::RejectionCase BatchWithRejectedRecord() { return {Batch({"p1", "p2"}, 1), {1}}; }

 private:
  static sdk::RecordBatch Batch(std::vector<std::string> ids, int null_row) {
    sdk::RecordBatch batch;
    batch.fields = {{"greeting", sdk::FieldType::kString}};
    batch.profile_ids = ids;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      sdk::Value v;
      v.is_null = static_cast<int>(i) == null_row;
      v.s = "hi " + ids[i];
      batch.values.push_back(v);
    }
    return batch;
  }
};

}  // namespace

EXPORTD_DESTINATION_CONFORMANCE_TEST(Hello, HelloTraits)
