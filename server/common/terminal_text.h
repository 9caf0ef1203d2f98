// Text from outside (a destination's answer, a name, a value, a file) made safe to print on a
// terminal or in a log line: nothing in it can end the line, move the cursor, change colours or
// reorder what follows. exportd escapes such text in its log lines and run messages, exportctl in
// every table and plain line it prints.
//
//   std::cerr << "exportd: run " << id << ": " << EscapeForTerminal(answer) << "\n";
//   // answer "bad\nexportd: run x: ok" prints as one line: bad\nexportd: run x: ok
//
// What is escaped, and how:
//   - C0 controls and DEL: \n, \r, \t by name, the others as \x00 .. \x1f, \x7f (ESC: \x1b);
//   - C1 controls U+0080 .. U+009F (e.g. CSI U+009B, NEL U+0085): \u0080 .. \u009f;
//   - bidirectional overrides, embeddings and isolates U+202A .. U+202E, U+2066 .. U+2069, and
//     the line and paragraph separators U+2028, U+2029: \u202a .. \u2069;
//   - each byte that is not part of well-formed UTF-8 (a stray continuation byte, an overlong
//     form, a surrogate, above U+10FFFF, a cut-off sequence): \x80 .. \xff.
// Everything else, printable UTF-8 included (accents, CJK, emoji), is kept as it is. Hex digits
// are lower case.
//
// Backslashes are kept as they are, so escaping is idempotent: escaped text escapes to itself.
// Outside text is often escaped more than once on its way (a run message exportd escaped, then
// printed by exportctl; an error that quotes an escaped name), and it must not come out as
// "\\n". The price is that a literal backslash-n in a value looks like an escaped line break;
// that can make a reader see a control character that was not there, never hide one that was.
// Text without backslashes reads back exactly: "\n" "\r" "\t" "\xHH" "\uHHHH" are the escapes
// above.
#ifndef EXPORTD_SERVER_COMMON_TERMINAL_TEXT_H_
#define EXPORTD_SERVER_COMMON_TERMINAL_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace exportd {

// `text` with the characters above escaped; any bytes are accepted. The result is well-formed
// UTF-8 and holds no control character.
std::string EscapeForTerminal(absl::string_view text);

// `word` as one word for a POSIX shell, for the commands hints tell a user to
// run: as it is when it holds only characters no shell treats specially
// (letters, digits, `_@%+=:,./-`), else in single quotes, each `'` written
// `'\''`. "" gives ''. Compose with EscapeForTerminal when printing.
//   ShellQuote("VIP Customers") == "'VIP Customers'"
std::string ShellQuote(absl::string_view word);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_TERMINAL_TEXT_H_
