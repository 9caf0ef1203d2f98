#include "server/api/export_validation.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/limits.h"

namespace exportd::api {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

v1::Segment SegmentWithFields(const std::string& name, int fields) {
  v1::Segment segment;
  segment.set_name(name);
  for (int i = 0; i < fields; ++i) segment.add_schema()->set_name(absl::StrCat("f", i));
  return segment;
}

v1::Export ExportMapping(int mappings) {
  v1::Export e;
  e.set_name("wide");
  e.add_segments("S");
  for (int i = 0; i < mappings; ++i) {
    auto* m = e.add_mappings();
    m->set_destination_field(absl::StrCat("d", i));
    m->set_profile_field(absl::StrCat("f", i));
  }
  return e;
}

TEST(CheckExportShapeTest, CountsAreLimited) {
  v1::Export e = ExportMapping(kMaxMappingsPerExport);
  EXPECT_TRUE(CheckExportShape(e).ok());
  e = ExportMapping(kMaxMappingsPerExport + 1);
  absl::Status status = CheckExportShape(e);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "export 'wide': it has 1001 mappings; the limit is 1000 mappings per export");

  e = ExportMapping(1);
  for (int i = 1; i < kMaxSegmentsPerExport; ++i) e.add_segments(absl::StrCat("S", i));
  EXPECT_TRUE(CheckExportShape(e).ok());
  e.add_segments("one too many");
  status = CheckExportShape(e);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("export 'wide': it lists 101 segments; the limit is 100 segments per "
                        "export"));
}

TEST(CheckExportShapeTest, DestinationFieldsAreMappedOnce) {
  v1::Export e = ExportMapping(3);
  e.mutable_mappings(2)->set_destination_field("d0");
  absl::Status status = CheckExportShape(e);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "export 'wide': destination field 'd0' is mapped twice (mappings 1 and 3); keep one "
            "of them");
}

TEST(CheckExportShapeTest, MappingFieldsAreValidNames) {
  v1::Export e = ExportMapping(2);
  e.mutable_mappings(1)->set_destination_field("email\xe2\x80\xae");
  absl::Status status = CheckExportShape(e);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("export 'wide': mapping 2 destination_field 'email\\u202e' contains "
                        "U+202E (a bidirectional control character) at character 6"));
  e = ExportMapping(2);
  e.mutable_mappings(0)->set_profile_field("Em\nail");
  status = CheckExportShape(e);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("mapping 1 profile_field 'Em\\nail' contains U+000A"));
  e.mutable_mappings(0)->set_profile_field(std::string(kMaxNameCharacters + 1, 'x'));
  EXPECT_THAT(std::string(CheckExportShape(e).message()),
              HasSubstr("mapping 1 profile_field is 257 characters long; at most 256"));
}

TEST(CheckMappedProfileFieldsTest, ListsTheSegmentsFieldsAndCutsTheList) {
  v1::Export e = ExportMapping(1);
  e.mutable_mappings(0)->set_profile_field("Mail");
  absl::Status status = CheckMappedProfileFields(e, {SegmentWithFields("VIP", 2)});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "export 'wide': mapping 'd0' names profile field 'Mail', which segment 'VIP' does "
            "not have (fields: f0, f1)");

  status = CheckMappedProfileFields(e, {SegmentWithFields("Wide", 1000)});
  EXPECT_THAT(std::string(status.message()),
              EndsWith("(fields: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, "
                       "f15, f16, f17, f18, f19, \xe2\x80\xa6 and 980 more)"));
  status = CheckMappedProfileFields(e, {SegmentWithFields("Empty", 0)});
  EXPECT_THAT(std::string(status.message()), EndsWith("(fields: none)"));
  // Exactly the listed number: no "more".
  status = CheckMappedProfileFields(e, {SegmentWithFields("Twenty", kMaxNamesListed)});
  EXPECT_THAT(std::string(status.message()), EndsWith("f18, f19)"));
}

TEST(CheckMappedProfileFieldsTest, EveryMappingAgainstEverySegment) {
  v1::Export e = ExportMapping(kMaxMappingsPerExport);
  std::vector<v1::Segment> segments = {SegmentWithFields("A", kMaxSchemaFields),
                                       SegmentWithFields("B", kMaxSchemaFields)};
  EXPECT_TRUE(CheckMappedProfileFields(e, segments).ok());
  segments[1].mutable_schema()->RemoveLast();
  absl::Status status = CheckMappedProfileFields(e, segments);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("mapping 'd999' names profile field 'f999', which "
                        "segment 'B' does not have"));
}

}  // namespace
}  // namespace exportd::api
