// Test helpers: a strict reader of the Prometheus text exposition format
// (what /metrics answers) and a plain HTTP GET on loopback.
//
//   absl::StatusOr<Exposition> e = ParseExposition(metrics.Text());
//   double sent = e->Value("exportd_records_total",
//                          {{"export", "vip"}, {"outcome", "delivered"}});
#ifndef EXPORTD_SERVER_OBSERVABILITY_TESTING_EXPOSITION_H_
#define EXPORTD_SERVER_OBSERVABILITY_TESTING_EXPOSITION_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace exportd::observability::testing {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family name -> counter, gauge, histogram...
  std::vector<Sample> samples;
  // The sum of the samples named `name` whose labels include `labels`.
  double Value(const std::string& name,
               const std::map<std::string, std::string>& labels = {}) const {
    double sum = 0;
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) sum += s.value;
    }
    return sum;
  }
  bool Has(const std::string& name) const {
    for (const Sample& s : samples) {
      if (s.name == name) return true;
    }
    return false;
  }
};

inline bool ValidMetricName(absl::string_view n) {
  if (n.empty() || absl::ascii_isdigit(n[0])) return false;
  for (char c : n) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != ':') return false;
  }
  return true;
}

// Parses the text format version 0.0.4: # HELP / # TYPE lines, then samples
// `name{label="value",...} value`. Every sample must belong to a declared
// family (histograms: _bucket, _sum, _count).
inline absl::StatusOr<Exposition> ParseExposition(const std::string& text) {
  Exposition e;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", why, ": ", line));
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() < 3) return bad("short comment");
      if (parts[1] == "TYPE") {
        if (parts.size() != 4 || !ValidMetricName(parts[2])) return bad("bad TYPE");
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (kTypes.count(parts[3]) == 0) return bad("unknown type");
        if (!e.types.emplace(parts[2], parts[3]).second) return bad("family declared twice");
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = std::string(line.substr(0, i));
    if (!ValidMetricName(s.name)) return bad("bad metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == absl::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          return bad("bad label");
        }
        std::string key(line.substr(i, eq - i));
        if (!ValidMetricName(key)) return bad("bad label name");
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return bad("unterminated label value");
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return bad("unterminated labels");
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return bad("no value");
    std::string value = std::string(absl::StripAsciiWhitespace(line.substr(i + 1)));
    value = value.substr(0, value.find(' '));  // An optional timestamp follows.
    char* end = nullptr;
    s.value = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0') {
      if (value != "+Inf" && value != "-Inf" && value != "NaN") return bad("bad value");
    }
    std::string family = s.name;
    if (e.types.count(family) == 0) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (absl::EndsWith(family, suffix)) {
          std::string base = family.substr(0, family.size() - std::strlen(suffix));
          if (e.types.count(base) != 0) family = base;
        }
      }
    }
    if (e.types.count(family) == 0) return bad("sample of an undeclared family");
    e.samples.push_back(std::move(s));
  }
  return e;
}

// GET http://127.0.0.1:<port><path>; the body of a 200 answer.
inline absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  std::string request = absl::StrCat("GET ", path,
                                     " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("short write");
  }
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = answer.find("\r\n\r\n");
  if (body == std::string::npos) return absl::DataLossError("no HTTP header end");
  if (!absl::StartsWith(answer, "HTTP/1.1 200") && !absl::StartsWith(answer, "HTTP/1.0 200")) {
    return absl::FailedPreconditionError(answer.substr(0, answer.find('\r')));
  }
  return answer.substr(body + 4);
}

}  // namespace exportd::observability::testing

#endif  // EXPORTD_SERVER_OBSERVABILITY_TESTING_EXPOSITION_H_
