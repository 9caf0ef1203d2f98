// FUZZ_CHECK(condition) << "why": aborts the fuzz target (with the message)
// when an invariant does not hold, in every build type.
#ifndef EXPORTD_TESTS_FUZZ_FUZZ_CHECK_H_
#define EXPORTD_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdlib>
#include <iostream>

namespace exportd::fuzz {

// Prints the streamed message and aborts when destroyed.
class Failure {
 public:
  Failure(const char* file, int line, const char* condition) {
    std::cerr << file << ":" << line << ": invariant failed: " << condition << ": ";
  }
  [[noreturn]] ~Failure() {
    std::cerr << std::endl;
    std::abort();
  }
  template <typename T>
  Failure& operator<<(const T& value) {
    std::cerr << value;
    return *this;
  }
};

}  // namespace exportd::fuzz

// A loop, not an if, so that it nests under an if without braces; the
// failure aborts, so it never loops.
#define FUZZ_CHECK(condition) \
  while (!(condition)) ::exportd::fuzz::Failure(__FILE__, __LINE__, #condition)

#endif  // EXPORTD_TESTS_FUZZ_FUZZ_CHECK_H_
