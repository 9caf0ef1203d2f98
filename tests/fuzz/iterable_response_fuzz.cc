// Fuzzes the parsers of Iterable's answers (JSON or not, from the network):
// nothing throws or crashes, and what they return keeps its promises.
#include <cctype>
#include <string>
#include <string_view>

#include "response_parser.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  using namespace exportd::iterable;

  Envelope envelope = ParseEnvelope(body);
  if (!envelope.is_json) FUZZ_CHECK(envelope.code.empty() && envelope.msg.empty());

  std::string described = DescribeErrorAnswer(429, body);
  FUZZ_CHECK(described.rfind("HTTP 429", 0) == 0) << described;
  if (!envelope.is_json) {
    // Text that is not an envelope is quoted on one line, 200 characters at most.
    FUZZ_CHECK(described.size() <= std::string("HTTP 429: ").size() + 200) << described;
    FUZZ_CHECK(described.find('\n') == std::string::npos) << described;
  }

  if (auto id = InvalidListIdIn(body)) {
    FUZZ_CHECK(body.find("error.lists.invalidListId") != std::string_view::npos);
  }

  auto lists = ParseLists(body);
  if (!lists.ok()) {
    FUZZ_CHECK(lists.status().code() == absl::StatusCode::kInternal) << lists.status();
  }
  ParseCreatedListId(body).IgnoreError();

  ListUpdateResult result = ParseListUpdateResponse(body);
  if (!result.is_json) FUZZ_CHECK(result.failures.empty());
  for (const IdentityFailure& failure : result.failures) {
    // Emails come back normalized: no surrounding blanks, no capitals.
    const std::string& email = failure.identity;
    if (!failure.user_id) {
      for (char c : email) FUZZ_CHECK(!(c >= 'A' && c <= 'Z')) << email;
    }
    if (!failure.user_id && !email.empty()) {
      FUZZ_CHECK(!std::isspace(static_cast<unsigned char>(email.front())) &&
                 !std::isspace(static_cast<unsigned char>(email.back())))
          << "'" << email << "'";
    }
    FUZZ_CHECK(!failure.reason_code.empty() && !failure.source.empty());
    FUZZ_CHECK(!ExplainFailure(failure.reason_code).empty());
  }
  return 0;
}
