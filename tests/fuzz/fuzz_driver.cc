// Runs a fuzz target (a LLVMFuzzerTestOneInput function) without libFuzzer:
// every file of the seed corpora first, then a fixed number of deterministic
// mutations of them. This is how the targets run in the test suite, with any
// compiler; `-DEXPORTD_FUZZ=ON` with clang builds them as real libFuzzer
// binaries instead (see README.md beside this file).
//
//   member_chunk_fuzz [--runs N] [--seed S] CORPUS_DIR...
//
// A target reports a broken invariant by aborting; the driver then prints the
// input that did it (hex) before the process dies.
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const std::string* current = nullptr;

void PrintCurrentInput(int) {
  if (current != nullptr) {
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned char c : *current) hex += {kHex[c >> 4], kHex[c & 15]};
    std::fprintf(stderr, "fuzz: the input that failed (%zu bytes, hex): %s\n", current->size(),
                 hex.c_str());
  }
  std::signal(SIGABRT, SIG_DFL);
  std::abort();
}

void Run(const std::string& input) {
  current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  current = nullptr;
}

// One random edit of the kinds libFuzzer makes most: flip a bit, set a byte,
// insert or erase bytes, copy a piece of the input or of another seed.
void Mutate(std::string& s, const std::vector<std::string>& seeds, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  switch (rng() % 7) {
    case 0:
      if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1 << (rng() % 8));
      break;
    case 1:
      if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
      break;
    case 2: {
      static const char kInteresting[] = {
          0,   1,   0x7f, static_cast<char>(0x80), static_cast<char>(0xff), '"', ',', '\n',
          '{', '[', '*'};
      s.insert(s.begin() + static_cast<long>(pick(s.size() + 1)),
               kInteresting[pick(sizeof(kInteresting))]);
      break;
    }
    case 3:
      if (!s.empty()) {
        size_t at = pick(s.size());
        s.erase(at, 1 + pick(std::min<size_t>(16, s.size() - at)));
      }
      break;
    case 4:
      if (!s.empty()) {
        size_t at = pick(s.size());
        std::string piece = s.substr(at, 1 + pick(16));
        s.insert(pick(s.size() + 1), piece);
      }
      break;
    case 5: {
      const std::string& other = seeds[pick(seeds.size())];
      if (!other.empty()) {
        size_t at = pick(other.size());
        s.insert(pick(s.size() + 1), other.substr(at, 1 + pick(64)));
      }
      break;
    }
    default:
      s.resize(pick(s.size() + 1));
  }
}

}  // namespace

int main(int argc, char** argv) {
  long runs = 20000;
  unsigned long long seed = 1;
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) {
      runs = std::atol(argv[++i]);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::error_code error;
      for (const auto& entry : std::filesystem::directory_iterator(arg, error)) {
        std::ifstream in(entry.path(), std::ios::binary);
        seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      if (error) {
        std::cerr << "fuzz: cannot read corpus directory '" << arg << "': " << error.message()
                  << "\n";
        return 2;
      }
    }
  }
  std::signal(SIGABRT, PrintCurrentInput);
  if (seeds.empty()) seeds.emplace_back();
  for (const std::string& input : seeds) Run(input);
  std::mt19937_64 rng(seed);
  for (long i = 0; i < runs; ++i) {
    std::string input = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) Mutate(input, seeds, rng);
    Run(input);
  }
  std::cout << "fuzz: " << seeds.size() << " seeds and " << runs
            << " mutations ran; every invariant held\n";
  return 0;
}
