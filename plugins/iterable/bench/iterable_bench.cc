// Throughput of the Iterable plugin's hot path: a separate program, not a
// timed test.
//
//   iterable_bench [records=1000000]
//
// 1. JSON building: BuildListRequests over engine-sized batches of 1,000
//    records with five fields (string, string with quotes, double, bool,
//    timestamp).
// 2. End to end, when built with the sandbox: Upsert of the same records into
//    an in-process iterable-sandbox from 4 engine threads (the sandbox shares
//    the CPU, so this is a floor, not Iterable's speed).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "iterable_connection.h"
#include "request_builder.h"
#include "tests/test_batches.h"
#ifdef EXPORTD_ITERABLE_BENCH_SANDBOX
#include "exportd/sdk/testing/test_run_context.h"
#include "tests/sandbox/sandbox.h"
#endif

namespace {

using exportd::iterable::testing::PeopleBatch;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace exportd::iterable;
  const size_t records = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  constexpr size_t kBatch = 1000;
  const size_t batches = std::max<size_t>(1, records / kBatch);
  std::vector<exportd::sdk::RecordBatch> pool;
  for (size_t i = 0; i < 16; ++i) pool.push_back(PeopleBatch(kBatch, i * kBatch));

  ListRequestOptions options;
  options.list_id = 10'000'000'001;
  size_t bytes = 0;
  const auto start = Clock::now();
  for (size_t b = 0; b < batches; ++b) {
    auto built = BuildListRequests(pool[b % pool.size()], options);
    if (!built.ok()) return 1;
    for (const ListRequest& r : built->requests) bytes += r.body.size();
  }
  const double build_seconds = Seconds(start);
  std::printf("json build: %zu records, %.1f MB in %.3f s: %.0f records/s, %.0f MB/s\n",
              batches * kBatch, bytes / 1e6, build_seconds, batches * kBatch / build_seconds,
              bytes / 1e6 / build_seconds);
  std::fflush(stdout);

#ifdef EXPORTD_ITERABLE_BENCH_SANDBOX
  exportd::sandbox::Options sandbox_options;
  auto sandbox = exportd::sandbox::Sandbox::Create(sandbox_options);
  if (!sandbox.ok()) return 1;
  ConnectionOptions connection_options;
  connection_options.api_key = exportd::sandbox::kDefaultApiKey;
  connection_options.base_url = (*sandbox)->base_url();
  auto connection = IterableConnection::Create(connection_options);
  if (!connection.ok()) return 1;
  exportd::sdk::testing::TestRunContext ctx;
  auto list = (*connection)->EnsureAudience("bench", "", ctx);
  if (!list.ok()) return 1;
  std::atomic<size_t> next{0};
  std::atomic<size_t> delivered{0};
  const auto e2e_start = Clock::now();
  std::vector<std::thread> engine;
  for (int t = 0; t < connection_options.parallel_requests; ++t) {
    engine.emplace_back([&] {
      for (size_t b = next++; b < batches; b = next++) {
        auto outcomes = (*connection)->Upsert(*list, pool[b % pool.size()], ctx);
        if (!outcomes.ok()) continue;
        for (const auto& o : *outcomes)
          delivered += o.kind == exportd::sdk::OutcomeKind::kDelivered;
      }
    });
  }
  for (auto& t : engine) t.join();
  const double e2e_seconds = Seconds(e2e_start);
  std::printf("upsert via in-process sandbox: %zu delivered in %.3f s: %.0f records/s\n",
              delivered.load(), e2e_seconds, delivered.load() / e2e_seconds);
#endif
  return 0;
}
