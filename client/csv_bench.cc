// Measures exportctl's CSV import: parsing alone, and parsing + streaming to
// an in-process fake SegmentService over gRPC (what `segment upload` does).
// Not a test; run it by hand:  exportctl_csv_bench [ROWS]   (default 1,000,000)
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "client/csv_reader.h"
#include "client/exportctl.h"
#include "client/testing/fake_exportd.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU seconds of the whole process (all threads): on a shared, loaded machine
// wall time says more about the neighbours than about the code.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::atol(argv[1]) : 1000000;
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("exportctl-bench-" + std::to_string(::getpid()) + ".csv");
  {
    std::ofstream out(path, std::ios::binary);
    out << "Email,FirstName,LastName,Age,Score,Vip,SignedUp\n";
    for (long i = 0; i < rows; ++i) {
      out << "user" << i << "@example.com,First" << i << ",\"Last, " << i << "\"," << (i % 90)
          << "," << (i % 1000) / 10.0 << "," << (i % 2 == 0 ? "true" : "false")
          << ",2024-05-01T12:00:00Z\n";
    }
  }
  const auto size = std::filesystem::file_size(path);
  std::printf("%ld rows, %.1f MB\n", rows, size / 1e6);

  exportd::client::CsvImportOptions options;
  options.field_types = {{"Age", exportd::v1::FIELD_TYPE_INT},
                         {"Score", exportd::v1::FIELD_TYPE_DOUBLE},
                         {"Vip", exportd::v1::FIELD_TYPE_BOOL},
                         {"SignedUp", exportd::v1::FIELD_TYPE_TIMESTAMP}};
  {
    auto start = std::chrono::steady_clock::now();
    double cpu = CpuSeconds();
    std::ifstream in(path, std::ios::binary);
    auto reader = exportd::client::MemberCsvReader::Open(in, path.string(), options);
    exportd::v1::UploadMembersRequest::Chunk chunk;
    long total = 0;
    while (true) {
      auto n = (*reader)->ReadChunk(5000, 2 << 20, &chunk);
      if (!n.ok() || *n == 0) break;
      total += *n;
    }
    double s = Seconds(start);
    cpu = CpuSeconds() - cpu;
    std::printf("parse only:      %ld rows in %.2fs wall = %.0f rows/s; %.2fs CPU = %.0f rows/CPU-s\n",
                total, s, total / s, cpu, total / cpu);
  }
  {
    exportd::client::fakes::FakeExportd server;
    std::ostringstream out, err;
    std::istringstream in;
    // The token from the environment: --token would print a warning.
    const exportd::cli::EnvLookup env = [](const std::string& name) {
      return name == "EXPORTD_TOKEN" ? std::optional<std::string>("x") : std::nullopt;
    };
    exportd::client::RunExportctl(
        {"exportctl", "--server", server.address(), "segment", "create", "--name", "bench"}, out,
        err, in, env);
    auto start = std::chrono::steady_clock::now();
    double cpu = CpuSeconds();
    int code = exportd::client::RunExportctl(
        {"exportctl", "--server", server.address(), "segment", "upload", "bench", "--from-csv",
         path.string(), "--field", "Age:int", "--field", "Score:double", "--field", "Vip:bool",
         "--field", "SignedUp:timestamp"},
        out, err, in, env);
    double s = Seconds(start);
    cpu = CpuSeconds() - cpu;
    std::printf(
        "parse + stream:  exit %d, %ld rows in %.2fs wall = %.0f rows/s; %.2fs CPU (client and "
        "fake server) = %.0f rows/CPU-s\n%s%s",
        code, rows, s, rows / s, cpu, rows / cpu, out.str().c_str(), err.str().c_str());
  }
  std::filesystem::remove(path);
  return 0;
}
