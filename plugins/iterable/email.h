// Email normalization and validation, as Iterable stores emails: trimmed and
// lowercase, validated by format and top-level domain; and userId validation.
//
//   std::string email = NormalizeEmail("  Ann@Example.COM ");  // "ann@example.com"
//   if (!IsValidEmail(email)) { ... reject locally, never send ... }
#ifndef EXPORTD_PLUGINS_ITERABLE_EMAIL_H_
#define EXPORTD_PLUGINS_ITERABLE_EMAIL_H_

#include <string>
#include <string_view>

namespace exportd::iterable {

// Trims ASCII whitespace on both ends and lowercases ASCII letters.
std::string NormalizeEmail(std::string_view raw);

// Same as NormalizeEmail, into `*out` (reuses its capacity on the hot path).
void NormalizeEmailInto(std::string_view raw, std::string* out);

// True when `email` (already normalized) looks deliverable to Iterable:
// `local@domain`, at most 254 characters, a local part of 1..64 printable
// ASCII characters without spaces or specials ("(),:;<>@[\]), no leading,
// trailing or doubled dot; a domain of dot-separated labels of [a-z0-9-]
// (not starting or ending with '-'), at least two labels, and a top-level
// domain of at least two letters.
bool IsValidEmail(std::string_view email);

// Why `user_id` is not a userId Iterable accepts (at most 52 characters,
// printable ASCII, no leading or trailing space), or empty when it is one.
// Never trims: " u1" is refused rather than sent as another user's id.
std::string UserIdProblem(std::string_view user_id);

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_EMAIL_H_
