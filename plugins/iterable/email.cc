#include "email.h"

namespace exportd::iterable {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsLocalChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;  // Controls, space, DEL, non-ASCII.
  switch (c) {
    case '(':
    case ')':
    case ',':
    case ':':
    case ';':
    case '<':
    case '>':
    case '@':
    case '[':
    case '\\':
    case ']':
    case '"':
      return false;
    default:
      return true;
  }
}

bool IsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

}  // namespace

void NormalizeEmailInto(std::string_view raw, std::string* out) {
  size_t begin = 0;
  size_t end = raw.size();
  while (begin < end && IsSpace(raw[begin])) ++begin;
  while (end > begin && IsSpace(raw[end - 1])) --end;
  out->assign(raw.data() + begin, end - begin);
  for (char& c : *out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

std::string NormalizeEmail(std::string_view raw) {
  std::string out;
  NormalizeEmailInto(raw, &out);
  return out;
}

bool IsValidEmail(std::string_view email) {
  if (email.empty() || email.size() > 254) return false;
  const size_t at = email.find('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  const std::string_view local = email.substr(0, at);
  const std::string_view domain = email.substr(at + 1);

  if (local.front() == '.' || local.back() == '.') return false;
  char previous = 0;
  for (char c : local) {
    if (!IsLocalChar(c)) return false;
    if (c == '.' && previous == '.') return false;
    previous = c;
  }

  if (domain.empty() || domain.size() > 253) return false;
  size_t labels = 0;
  size_t label_start = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i < domain.size() && domain[i] != '.') {
      if (!IsLabelChar(domain[i])) return false;
      continue;
    }
    const std::string_view label = domain.substr(label_start, i - label_start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    ++labels;
    label_start = i + 1;
  }
  if (labels < 2) return false;

  const std::string_view tld = domain.substr(domain.rfind('.') + 1);
  if (tld.size() < 2) return false;
  for (char c : tld) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

std::string UserIdProblem(std::string_view user_id) {
  constexpr size_t kMaxUserIdLength = 52;
  if (user_id.empty()) return "the userId is empty";
  if (user_id.size() > kMaxUserIdLength) {
    return "the userId has " + std::to_string(user_id.size()) + " characters, more than " +
           std::to_string(kMaxUserIdLength);
  }
  for (char c : user_id) {
    if (c < 0x20 || c > 0x7e) return "the userId holds a character that is not printable ASCII";
  }
  if (user_id.front() == ' ' || user_id.back() == ' ') {
    return "the userId starts or ends with a space";
  }
  return std::string();
}

}  // namespace exportd::iterable
