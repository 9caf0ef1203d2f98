#include "server/common/time_zone.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "exportd/sdk/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd {
namespace {

using ::testing::HasSubstr;

// The message LoadIanaTimeZone gives for `name`, or "OK".
std::string LoadError(absl::string_view name) {
  absl::StatusOr<absl::TimeZone> zone = LoadIanaTimeZone(name);
  if (zone.ok()) return "OK";
  EXPECT_EQ(zone.status().code(), absl::StatusCode::kInvalidArgument) << zone.status();
  return std::string(zone.status().message());
}

TEST(LoadIanaTimeZoneTest, LoadsIanaNames) {
  for (const char* name : {"UTC", "Etc/UTC", "Etc/GMT+5", "Europe/Berlin",
                           "America/Argentina/Buenos_Aires", "America/Port-au-Prince"}) {
    absl::StatusOr<absl::TimeZone> zone = LoadIanaTimeZone(name);
    ASSERT_TRUE(zone.ok()) << name << ": " << zone.status() << " (is tzdata installed?)";
    EXPECT_EQ(zone->name(), name);
  }
}

TEST(LoadIanaTimeZoneTest, UnknownNameSaysWhereZonesComeFrom) {
  EXPECT_EQ(LoadError("Mars/Olympus"),
            "unknown time zone \"Mars/Olympus\"; use an IANA name such as \"Europe/Berlin\" or "
            "\"UTC\" (time zone data comes from the tzdata package, /usr/share/zoneinfo)");
}

TEST(LoadIanaTimeZoneTest, RefusesEveryFormThatIsNotAnIanaName) {
  struct Case {
    std::string name;
    std::string why;
  };
  const Case cases[] = {
      {"", "it is empty"},
      {"/etc/passwd", "it is an absolute path"},
      {"/usr/share/zoneinfo/Europe/Berlin", "it is an absolute path"},
      {"../../etc/passwd", "it contains \"..\" (a relative path)"},
      {"Europe/../../../etc/passwd", "it contains \"..\""},
      {"Europe/..", "it contains \"..\""},
      {"./Europe/Berlin", "it contains \".\" (a relative path)"},
      {std::string("Europe/Berlin\0/x", 16), "it contains a NUL byte"},
      {"Europe\\Berlin", "it contains a backslash"},
      {"Europe//Berlin", "it has an empty part"},
      {"Europe/", "it has an empty part"},
      {"Europe/Berlin ", "it contains ' '"},
      {"file:Europe/Berlin", "it contains ':'"},
      {"Europe/Ber*", "it contains '*'"},
      {"Europe/Berlin\n", "it contains '\\n'"},
      {"Europe/Z\xc3\xbcrich", "it contains '\\xc3'"},
      {"Europe/-Berlin", "part \"-Berlin\" does not start with a letter"},
      {"9/Berlin", "part \"9\" does not start with a letter"},
      {"localtime", "it is neither \"UTC\" nor of the form Area/Location"},
      {"GMT", "it is neither \"UTC\" nor of the form Area/Location"},
      {"zone.tab", "it contains '.'"},
      {"Europe/" + std::string(70, 'x'), "it is 77 characters long; at most 64 are allowed"},
  };
  for (const Case& c : cases) {
    const std::string message = LoadError(c.name);
    EXPECT_THAT(message, HasSubstr(c.why)) << c.name;
    EXPECT_THAT(message, HasSubstr("is not an IANA name")) << c.name;
    EXPECT_THAT(message, HasSubstr("use an IANA name such as \"Europe/Berlin\"")) << c.name;
  }
  // The name is shown escaped: the NUL does not cut the message.
  EXPECT_THAT(LoadError(std::string("Europe/Berlin\0/x", 16)),
              HasSubstr("time zone \"Europe/Berlin\\x00/x\""));
}

// A FIFO would block absl::LoadTimeZone's open() forever: the name check
// refuses every way of reaching one before anything is opened.
TEST(LoadIanaTimeZoneTest, NeverOpensAFifo) {
  sdk::testing::TempDir dir;
  const std::string zoneinfo = (dir.path() / "zoneinfo").string();
  ASSERT_EQ(mkdir(zoneinfo.c_str(), 0700), 0);
  const std::string fifo = (dir.path() / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // absl looks names up under $TZDIR.
  ASSERT_EQ(setenv("TZDIR", zoneinfo.c_str(), 1), 0);
  EXPECT_THAT(LoadError(fifo), HasSubstr("it is an absolute path"));
  EXPECT_THAT(LoadError("../fifo"), HasSubstr("it contains \"..\""));
  unsetenv("TZDIR");
}

TEST(CheckIanaTimeZoneNameTest, ChecksTheFormOnly) {
  EXPECT_TRUE(CheckIanaTimeZoneName("Mars/Olympus").ok());
  EXPECT_EQ(CheckIanaTimeZoneName("../x").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace exportd
