// A URL query string (`segment=VIP&field=Age%3Aint&field=Since:timestamp`),
// decoded: '+' is a space, %XX a byte. Names may repeat.
#ifndef EXPORTD_SERVER_HTTP_QUERY_H_
#define EXPORTD_SERVER_HTTP_QUERY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace exportd::http {

class QueryParameters {
 public:
  void Add(std::string name, std::string value) {
    pairs_.emplace_back(std::move(name), std::move(value));
  }
  // The first value of `name`; empty when absent.
  std::string Get(absl::string_view name) const;
  // Every value of `name`, in order.
  std::vector<std::string> GetAll(absl::string_view name) const;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

QueryParameters ParseQuery(absl::string_view query);

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_QUERY_H_
