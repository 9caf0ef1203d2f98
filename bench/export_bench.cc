// export_bench: end-to-end figures for exportd exporting a segment to Iterable.
//
// Starts the real `iterable-sandbox` and `exportd` executables as child
// processes (temporary data directory, loopback, ports chosen by port 0),
// uploads a generated segment over gRPC, runs an export to the sandbox, then
// an incremental run after 1% of the members changed, then a run against a
// rate-limited sandbox, and prints the figures against their targets. A
// benchmark, not a test: a missed target is reported, never fatal.
//
//   cmake --build build --target export_bench && build/bin/export_bench
//   build/bin/export_bench --profiles 200000 --write-results
//
// See bench/README.md for what each figure means.
#include <curl/curl.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exportd/v1/connection.grpc.pb.h"
#include "exportd/v1/export.grpc.pb.h"
#include "exportd/v1/run.grpc.pb.h"
#include "exportd/v1/segment.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace {

namespace v1 = exportd::v1;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kApiKey[] = "bench0123456789abcdef0123456789ab";
constexpr int kBatchSize = 1000;  // The Iterable plugin's default batch_size.

// ---------------------------------------------------------------- options

struct Options {
  std::int64_t profiles = 1'000'000;
  std::int64_t throttle_profiles = 100'000;
  int rate = 20;              // Subscribe requests per second in the throttled phase.
  int chunk_rows = 5000;      // Rows per UploadMembersRequest.chunk.
  double changed_percent = 1;
  bool write_results = false;
  bool keep = false;          // Keep the temporary directory (logs, database).
  bool skip_throttle = false;
  // The sandbox keeps digests only (--lean true): default above 10M profiles.
  std::string sandbox_lean = "auto";
  std::string exportd = EXPORT_BENCH_EXPORTD;
  std::string sandbox = EXPORT_BENCH_SANDBOX;
  std::string plugin_dir = EXPORT_BENCH_PLUGIN_DIR;
  std::string results = EXPORT_BENCH_RESULTS;
  std::vector<std::string> exportd_args;  // Extra flags for exportd.
  std::string store;  // --store for exportd; empty: SQLite in the data directory.
  int replicas = 0;   // > 0: the replicas phase, on --store (PostgreSQL).
  int replica_exports = 6;
  std::int64_t replica_profiles = 50'000;
};

constexpr char kUsage[] = R"(export_bench: end-to-end export figures (exportd + iterable-sandbox)

Usage: export_bench [flags]
  --profiles N            segment size for the upload, first and incremental runs (1000000)
  --throttle-profiles N   segment size for the rate-limited run (100000)
  --rate R                the sandbox's subscribe limit in the throttled run, per second (20)
  --changed-percent P     share of members that join, leave or change before run 2 (1)
  --chunk-rows N          rows per upload chunk message (5000)
  --skip-throttle         leave out the rate-limited run
  --sandbox-lean auto|true|false
                          run the sandbox with --lean true (digests per member; auto: above
                          10,000,000 profiles), so that 100M members fit in memory
  --write-results         write the figures and the machine to bench/RESULTS.md
  --results FILE          where --write-results writes (default: the source tree's bench/RESULTS.md)
  --keep                  keep the temporary directory (exportd.log, sandbox logs, database)
  --exportd PATH, --sandbox PATH, --plugin-dir DIR   other binaries than the build's
  --exportd-arg ARG       pass ARG to exportd (repeatable), e.g. --exportd-arg=--run-workers=1
  --store URL             exportd's store: a PostgreSQL connection string (postgresql://...,
                          e.g. from scripts/pg-local.sh; the database's own CPU is not
                          counted in exportd's) or sqlite:PATH (default: SQLite in the data dir)
  --replicas N            after the other phases, start N-1 more exportd on the same --store
                          (PostgreSQL) and run --replica-exports M exports of
                          --replica-profiles K members each at once (6, 50000): throughput by
                          replica count (run it for N = 1, 2, 3)
)";

bool ParseFlags(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    auto take = [&](const char* name) {
      std::string prefix = std::string(name) + "=";
      if (arg == name && i + 1 < argc) {
        value = argv[++i];
        return true;
      }
      if (arg.rfind(prefix, 0) == 0) {
        value = arg.substr(prefix.size());
        return true;
      }
      return false;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--write-results") {
      o.write_results = true;
    } else if (arg == "--keep") {
      o.keep = true;
    } else if (arg == "--skip-throttle") {
      o.skip_throttle = true;
    } else if (take("--sandbox-lean")) {
      if (value != "auto" && value != "true" && value != "false") {
        std::cerr << "export_bench: --sandbox-lean is auto, true or false\n";
        return false;
      }
      o.sandbox_lean = value;
    } else if (take("--profiles")) {
      o.profiles = std::atoll(value.c_str());
    } else if (take("--throttle-profiles")) {
      o.throttle_profiles = std::atoll(value.c_str());
    } else if (take("--rate")) {
      o.rate = std::atoi(value.c_str());
    } else if (take("--changed-percent")) {
      o.changed_percent = std::atof(value.c_str());
    } else if (take("--chunk-rows")) {
      o.chunk_rows = std::atoi(value.c_str());
    } else if (take("--results")) {
      o.results = value;
    } else if (take("--exportd")) {
      o.exportd = value;
    } else if (take("--sandbox")) {
      o.sandbox = value;
    } else if (take("--plugin-dir")) {
      o.plugin_dir = value;
    } else if (take("--exportd-arg")) {
      o.exportd_args.push_back(value);
    } else if (take("--store")) {
      o.store = value;
    } else if (take("--replicas")) {
      o.replicas = std::atoi(value.c_str());
    } else if (take("--replica-exports")) {
      o.replica_exports = std::atoi(value.c_str());
    } else if (take("--replica-profiles")) {
      o.replica_profiles = std::atoll(value.c_str());
    } else {
      std::cerr << "export_bench: unknown flag '" << arg << "'\n\n" << kUsage;
      return false;
    }
  }
  if (o.replicas > 0 && (o.store.rfind("sqlite:", 0) == 0 || o.store.empty())) {
    std::cerr << "export_bench: --replicas needs --store with a PostgreSQL connection string\n";
    return false;
  }
  if (o.profiles < 1000 || o.throttle_profiles < 1000 || o.rate < 1 || o.chunk_rows < 1 ||
      o.changed_percent <= 0 || o.changed_percent > 50) {
    std::cerr << "export_bench: --profiles and --throttle-profiles must be at least 1000, --rate "
                 "and --chunk-rows at least 1, --changed-percent in (0, 50]\n";
    return false;
  }
  return true;
}

[[noreturn]] void Fail(const std::string& what) {
  std::cerr << "export_bench: " << what << std::endl;
  std::exit(1);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Refuses a run that cannot fit `base` (the working directory, which holds
// the SQLite store, and exportd's upload sort, which follows TMPDIR too) at
// its peak, before it spends an hour finding out. The peak is the second
// upload's: the snapshot kept, the new one in the sort's temporary file and
// again in the store, and the delivered state, at most about 850 bytes a
// member (the parts as measured at 10M: 213 a snapshot, 175 delivered; less
// when the sort's file stays in the page cache, as it does at 10M on 24 GB);
// with --store elsewhere, the sort's ~230 (bench/README.md).
void CheckDiskSpace(const std::string& base, const Options& o) {
  constexpr double kPeakBytesPerMember = 850;
  constexpr double kSortBytesPerMember = 230;
  const double per_member = o.store.empty() ? kPeakBytesPerMember : kSortBytesPerMember;
  const double need = static_cast<double>(o.profiles) * per_member;
  std::error_code error;
  const std::filesystem::space_info space = std::filesystem::space(base, error);
  if (error || static_cast<double>(space.available) >= need) return;  // Unknown: the run tells.
  std::ostringstream what;
  what << std::fixed << std::setprecision(1) << "--profiles " << o.profiles << " needs about "
       << need / 1e9 << " GB free in " << base << " at its peak (about "
       << static_cast<int>(per_member)
       << " bytes a member" << (o.store.empty() ? ", with SQLite there" : " for the upload's sort")
       << "; see bench/README.md), and it has " << static_cast<double>(space.available) / 1e9
       << " GB; set TMPDIR to a directory on a larger disk, or use fewer --profiles";
  Fail(what.str());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------- machine

struct Machine {
  int nproc = 0;
  std::string model;
  double mem_gib = 0;
  std::string load_start, load_end;
  std::string kernel;
};

std::string LoadAverage() {
  std::string text = ReadFile("/proc/loadavg");
  std::istringstream in(text);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

Machine DescribeMachine() {
  Machine m;
  m.nproc = static_cast<int>(std::thread::hardware_concurrency());
  std::istringstream cpu(ReadFile("/proc/cpuinfo"));
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      m.model = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::istringstream mem(ReadFile("/proc/meminfo"));
  for (std::string line; std::getline(mem, line);) {
    if (line.rfind("MemTotal:", 0) == 0) {
      m.mem_gib = std::atof(line.substr(9).c_str()) / (1024.0 * 1024.0);
    }
  }
  std::istringstream version(ReadFile("/proc/sys/kernel/osrelease"));
  std::getline(version, m.kernel);
  m.load_start = LoadAverage();
  return m;
}

// ---------------------------------------------------------------- children

// A child process whose stdout and stderr go to one log file.
class Child {
 public:
  Child(std::string name, const std::vector<std::string>& argv, const std::string& log)
      : name_(std::move(name)), log_(log) {
    pid_ = fork();
    if (pid_ < 0) Fail("fork: " + std::string(std::strerror(errno)));
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // No orphans when the bench dies.
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      std::fprintf(stderr, "execv %s: %s\n", args[0], std::strerror(errno));
      _exit(127);
    }
  }
  ~Child() { Stop(); }

  // Waits until the log has a line containing `marker`; returns that line.
  std::string WaitForLine(const std::string& marker, double timeout_seconds) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
    while (Clock::now() < deadline) {
      std::istringstream text(ReadFile(log_));
      for (std::string line; std::getline(text, line);) {
        if (line.find(marker) != std::string::npos) return line;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        Fail(name_ + " exited before it was ready; its log (" + log_ + "):\n" + ReadFile(log_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Fail(name_ + " printed no '" + marker + "' within " + std::to_string(timeout_seconds) +
         " s; its log (" + log_ + "):\n" + ReadFile(log_));
  }

  // The port from a "... listening on HOST:PORT" line.
  int WaitForPort(double timeout_seconds) {
    std::string line = WaitForLine("listening on ", timeout_seconds);
    return std::atoi(line.substr(line.rfind(':') + 1).c_str());
  }

  // /proc/<pid>/status field in kB, e.g. "VmHWM".
  std::int64_t StatusKb(const std::string& field) const {
    std::istringstream text(ReadFile("/proc/" + std::to_string(pid_) + "/status"));
    for (std::string line; std::getline(text, line);) {
      if (line.rfind(field + ":", 0) == 0) return std::atoll(line.substr(field.size() + 1).c_str());
    }
    return -1;
  }

  // User + system CPU seconds so far.
  double CpuSeconds() const {
    std::string stat = ReadFile("/proc/" + std::to_string(pid_) + "/stat");
    size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) return 0;
    std::istringstream in(stat.substr(close_paren + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14 || i == 15) ticks += std::atof(field.c_str());
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  pid_t pid() const { return pid_; }
  const std::string& log() const { return log_; }

 private:
  std::string name_;
  std::string log_;
  pid_t pid_ = -1;
};

std::unique_ptr<Child> StartSandbox(const Options& o, const std::string& dir,
                                    const std::string& name, const std::vector<std::string>& extra,
                                    int* port) {
  std::vector<std::string> argv = {o.sandbox, "--listen", "127.0.0.1:0", "--api-key", kApiKey};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto child = std::make_unique<Child>(name, argv, dir + "/" + name + ".log");
  *port = child->WaitForPort(30);
  return child;
}

// ---------------------------------------------------------------- sandbox admin API

size_t CurlAppend(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

json SandboxGet(int port, const std::string& path) {
  CURL* curl = curl_easy_init();
  std::string body;
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CurlAppend);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK || status != 200) {
    Fail("GET " + url + " failed: " + curl_easy_strerror(code) + ", HTTP " +
         std::to_string(status));
  }
  return json::parse(body);
}

// Counts from /_sandbox/stats.
struct SandboxCounts {
  std::int64_t subscribe_ok = 0, subscribe_429 = 0, subscribe_other = 0;
  std::int64_t unsubscribe_ok = 0, unsubscribe_other = 0;
  std::int64_t subscribe_records = 0, unsubscribe_records = 0;
  std::int64_t total = 0;
};

SandboxCounts ReadStats(int port) {
  json stats = SandboxGet(port, "/_sandbox/stats");
  SandboxCounts c;
  auto count = [&](const char* route, std::int64_t* ok, std::int64_t* limited,
                   std::int64_t* other) {
    if (!stats["requests"].contains(route)) return;
    for (const auto& [outcome, n] : stats["requests"][route].items()) {
      if (outcome == "200") {
        *ok += n.get<std::int64_t>();
      } else if (outcome == "429" && limited != nullptr) {
        *limited += n.get<std::int64_t>();
      } else {
        *other += n.get<std::int64_t>();
      }
    }
  };
  count("POST /api/lists/subscribe", &c.subscribe_ok, &c.subscribe_429, &c.subscribe_other);
  count("POST /api/lists/unsubscribe", &c.unsubscribe_ok, nullptr, &c.unsubscribe_other);
  c.subscribe_records = stats.value("subscribeRecordsReceived", std::int64_t{0});
  c.unsubscribe_records = stats.value("unsubscribeRecordsReceived", std::int64_t{0});
  c.total = stats.value("totalRequests", std::int64_t{0});
  return c;
}

SandboxCounts Minus(const SandboxCounts& a, const SandboxCounts& b) {
  SandboxCounts d;
  d.subscribe_ok = a.subscribe_ok - b.subscribe_ok;
  d.subscribe_429 = a.subscribe_429 - b.subscribe_429;
  d.subscribe_other = a.subscribe_other - b.subscribe_other;
  d.unsubscribe_ok = a.unsubscribe_ok - b.unsubscribe_ok;
  d.unsubscribe_other = a.unsubscribe_other - b.unsubscribe_other;
  d.subscribe_records = a.subscribe_records - b.subscribe_records;
  d.unsubscribe_records = a.unsubscribe_records - b.unsubscribe_records;
  d.total = a.total - b.total;
  return d;
}

// Members of the sandbox list named `name` (-1 when there is none).
std::int64_t ListMemberCount(int port, const std::string& name) {
  json lists = SandboxGet(port, "/_sandbox/lists");
  for (const auto& list : lists) {
    if (list.value("name", "") == name) return list.value("memberCount", std::int64_t{-1});
  }
  return -1;
}

// ---------------------------------------------------------------- the segment

const char* const kFirstNames[] = {"Ann",  "Bob",  "Chloe", "Dev",   "Emma", "Farid", "Grace", "Hugo",
                                   "Ines", "Jon",  "Kai",   "Lena",  "Mia",  "Noah",  "Olga",  "Pia"};
const char* const kLastNames[] = {"Smith", "Jones",  "Garcia", "Muller", "Rossi", "Dubois",
                                  "Kim",   "Nguyen", "Silva",  "Novak",  "Berg",  "Costa",
                                  "Haas",  "Ito",    "Khan",   "Lopez"};
const char* const kCities[] = {"Berlin", "Paris",  "Madrid", "Rome",   "Lisbon", "Vienna",
                               "Prague", "Oslo",   "Dublin", "Warsaw", "Zurich", "Milan",
                               "Lyon",   "Munich", "Porto",  "Seville"};

std::uint64_t Mix(std::uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Which members the second snapshot changes, out of `period` consecutive ones:
// index % period == 1 leaves, == 2 changes a mapped value; joins are new ids.
// Both residues have valid emails (invalid ones are index % 50 == 7).
struct Churn {
  std::int64_t period = 300;
  std::int64_t leaves = 0, changes = 0, joins = 0;
};

Churn PlanChurn(std::int64_t n, double percent) {
  Churn c;
  std::int64_t total = static_cast<std::int64_t>(std::llround(n * percent / 100.0));
  // Thirds: a third leave, a third change, the rest join. Period is a
  // multiple of 50 so the residues never hit invalid-email members.
  c.period = std::max<std::int64_t>(50, (n * 3 / std::max<std::int64_t>(3, total)) / 50 * 50);
  c.leaves = n / c.period + (n % c.period > 1 ? 1 : 0);
  c.changes = n / c.period + (n % c.period > 2 ? 1 : 0);
  c.joins = std::max<std::int64_t>(0, total - c.leaves - c.changes);
  return c;
}

bool InvalidEmail(std::int64_t index) { return index % 50 == 7; }

std::int64_t CountInvalid(std::int64_t n) { return n / 50 + (n % 50 > 7 ? 1 : 0); }

// Fills one row. `bump` changes LoyaltyPoints (a mapped field).
void FillRow(std::int64_t index, bool valid_email, bool bump, v1::MemberRow* row) {
  std::uint64_t h = Mix(static_cast<std::uint64_t>(index));
  char id[32];
  std::snprintf(id, sizeof id, "p%010lld", static_cast<long long>(index));
  row->set_profile_id(id);
  auto* values = row->mutable_values();
  while (values->size() < 8) values->Add();
  const char* first = kFirstNames[h & 15];
  const char* last = kLastNames[(h >> 4) & 15];
  char email[96];
  if (valid_email) {
    std::snprintf(email, sizeof email, "%s.%s.%lld@example.com", first, last,
                  static_cast<long long>(index));
  } else if (index % 100 == 7) {
    std::snprintf(email, sizeof email, "%s.%lld@localhost", first, static_cast<long long>(index));
  } else {
    std::snprintf(email, sizeof email, "%s %lld at example.com", last,
                  static_cast<long long>(index));
  }
  (*values)[0].set_string_value(email);
  (*values)[1].set_string_value(first);
  (*values)[2].set_string_value(last);
  (*values)[3].set_string_value(kCities[(h >> 8) & 15]);
  (*values)[4].set_int_value(static_cast<std::int64_t>((h >> 12) % 100000) + (bump ? 7 : 0));
  (*values)[5].set_double_value(static_cast<double>((h >> 32) % 10000) / 100.0);
  (*values)[6].set_bool_value((h >> 40) % 10 == 0);
  (*values)[7].set_timestamp_micros(1'500'000'000'000'000LL +
                                    static_cast<std::int64_t>((h >> 20) % 300'000'000'000'000ULL));
}

std::vector<v1::SchemaField> Schema() {
  std::vector<std::pair<const char*, v1::FieldType>> fields = {
      {"Email", v1::FIELD_TYPE_STRING},       {"FirstName", v1::FIELD_TYPE_STRING},
      {"LastName", v1::FIELD_TYPE_STRING},    {"City", v1::FIELD_TYPE_STRING},
      {"LoyaltyPoints", v1::FIELD_TYPE_INT},  {"Score", v1::FIELD_TYPE_DOUBLE},
      {"Vip", v1::FIELD_TYPE_BOOL},           {"SignedUpAt", v1::FIELD_TYPE_TIMESTAMP}};
  std::vector<v1::SchemaField> schema;
  for (const auto& [name, type] : fields) {
    v1::SchemaField f;
    f.set_name(name);
    f.set_type(type);
    schema.push_back(f);
  }
  return schema;
}

// ---------------------------------------------------------------- gRPC client

class Client {
 public:
  Client(int port, std::string token) : token_(std::move(token)) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                         grpc::InsecureChannelCredentials(), args);
    segments_ = v1::SegmentService::NewStub(channel_);
    connections_ = v1::ConnectionService::NewStub(channel_);
    exports_ = v1::ExportService::NewStub(channel_);
    runs_ = v1::RunService::NewStub(channel_);
  }

  void Prepare(grpc::ClientContext& ctx) const {
    ctx.AddMetadata("authorization", "Bearer " + token_);
  }

  static void Check(const grpc::Status& status, const std::string& what) {
    if (!status.ok()) {
      Fail(what + " failed: " + std::to_string(status.error_code()) + " " +
           status.error_message());
    }
  }

  void CreateSegment(const std::string& name) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::CreateSegmentRequest req;
    req.set_name(name);
    for (const auto& f : Schema()) *req.add_schema() = f;
    v1::Segment resp;
    Check(segments_->CreateSegment(&ctx, req, &resp), "CreateSegment " + name);
  }

  // Streams `n` rows produced by `fill(i, row)` in chunks; returns the time
  // from the first message to the response (commit included).
  template <typename Fill>
  double Upload(const std::string& segment, std::int64_t n, int chunk_rows, Fill fill,
                double* client_cpu) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::UploadMembersResponse resp;
    auto start = Clock::now();
    double cpu_start = ProcessCpu();
    auto writer = segments_->UploadMembers(&ctx, &resp);
    v1::UploadMembersRequest msg;
    msg.mutable_header()->set_segment(segment);
    if (!writer->Write(msg)) Fail("UploadMembers: the server closed the stream at the header");
    v1::UploadMembersRequest chunk_msg;
    auto* chunk = chunk_msg.mutable_chunk();
    std::int64_t sent = 0;
    while (sent < n) {
      int rows = static_cast<int>(std::min<std::int64_t>(chunk_rows, n - sent));
      auto* repeated = chunk->mutable_rows();
      while (repeated->size() > rows) repeated->RemoveLast();
      while (repeated->size() < rows) repeated->Add();
      for (int r = 0; r < rows; ++r) fill(sent + r, &(*repeated)[r]);
      if (!writer->Write(chunk_msg)) break;
      sent += rows;
    }
    v1::UploadMembersRequest trailer;
    trailer.mutable_trailer()->set_row_count(sent);
    writer->Write(trailer);
    writer->WritesDone();
    Check(writer->Finish(), "UploadMembers " + segment);
    *client_cpu = ProcessCpu() - cpu_start;
    if (resp.rows_received() != n) {
      Fail("UploadMembers " + segment + ": the server received " +
           std::to_string(resp.rows_received()) + " rows of " + std::to_string(n));
    }
    return Seconds(Clock::now() - start);
  }

  void CreateConnection(const std::string& name, int sandbox_port, int requests_per_second) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::CreateConnectionRequest req;
    req.set_display_name(name);
    req.set_destination_type("iterable");
    (*req.mutable_settings())["base_url"] = "http://127.0.0.1:" + std::to_string(sandbox_port);
    (*req.mutable_settings())["batch_size"] = std::to_string(kBatchSize);
    if (requests_per_second > 0) {
      (*req.mutable_settings())["requests_per_second"] = std::to_string(requests_per_second);
    }
    (*req.mutable_secrets())["api_key"] = kApiKey;
    req.set_accept_privacy_terms(true);
    req.set_add_self_as_export_user(true);
    v1::Connection resp;
    Check(connections_->CreateConnection(&ctx, req, &resp), "CreateConnection " + name);
  }

  void CreateExport(const std::string& name, const std::string& connection,
                    const std::string& segment) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::CreateExportRequest req;
    req.set_name(name);
    req.set_connection(connection);
    req.add_segments(segment);
    req.set_mode(v1::EXPORT_MODE_MIRROR);
    std::vector<std::pair<const char*, const char*>> mappings = {
        {"email", "Email"},       {"firstName", "FirstName"},         {"city", "City"},
        {"loyaltyPoints", "LoyaltyPoints"}, {"vip", "Vip"}, {"signedUpAt", "SignedUpAt"}};
    for (const auto& [dest, field] : mappings) {
      auto* m = req.add_mappings();
      m->set_destination_field(dest);
      m->set_profile_field(field);
    }
    v1::Export resp;
    Check(exports_->CreateExport(&ctx, req, &resp), "CreateExport " + name);
  }

  // Runs the export and watches it to its end. Returns the final run and the
  // wall-clock seconds from the RunExport call to the final state.
  v1::Run RunAndWait(const std::string& export_name, bool full, double* seconds) {
    auto start = Clock::now();
    v1::Run run;
    {
      grpc::ClientContext ctx;
      Prepare(ctx);
      v1::RunExportRequest req;
      req.set_export_(export_name);
      req.set_full(full);
      Check(runs_->RunExport(&ctx, req, &run), "RunExport " + export_name);
    }
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::WatchRunRequest req;
    req.set_run_id(run.id());
    auto reader = runs_->WatchRun(&ctx, req);
    v1::Run update;
    while (reader->Read(&update)) run = update;
    Check(reader->Finish(), "WatchRun " + run.id());
    *seconds = Seconds(Clock::now() - start);
    return run;
  }

  // Queues a run of the export; its id.
  std::string Trigger(const std::string& export_name) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::RunExportRequest req;
    req.set_export_(export_name);
    v1::Run run;
    Check(runs_->RunExport(&ctx, req, &run), "RunExport " + export_name);
    return run.id();
  }

  // Watches a run to its end.
  v1::Run Wait(const std::string& run_id) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::WatchRunRequest req;
    req.set_run_id(run_id);
    auto reader = runs_->WatchRun(&ctx, req);
    v1::Run run, update;
    while (reader->Read(&update)) run = update;
    Check(reader->Finish(), "WatchRun " + run_id);
    return run;
  }

  static double ProcessCpu() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }

 private:
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SegmentService::Stub> segments_;
  std::unique_ptr<v1::ConnectionService::Stub> connections_;
  std::unique_ptr<v1::ExportService::Stub> exports_;
  std::unique_ptr<v1::RunService::Stub> runs_;
};

const char* StateName(v1::RunState state) {
  switch (state) {
    case v1::RUN_STATE_SUCCEEDED: return "succeeded";
    case v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS: return "succeeded with rejections";
    case v1::RUN_STATE_FAILED: return "FAILED";
    case v1::RUN_STATE_CANCELED: return "canceled";
    case v1::RUN_STATE_SKIPPED: return "skipped";
    default: return "not final";
  }
}

bool Succeeded(const v1::Run& run) {
  return run.state() == v1::RUN_STATE_SUCCEEDED ||
         run.state() == v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS;
}

double ServerSeconds(const v1::Run& run) {
  if (run.finished_at_micros() == 0 || run.created_at_micros() == 0) return -1;
  return static_cast<double>(run.finished_at_micros() - run.created_at_micros()) / 1e6;
}

std::string Describe(const v1::Run& run) {
  std::ostringstream out;
  out << "run " << run.id() << ": " << StateName(run.state());
  if (!run.message().empty()) out << " (" << run.message() << ")";
  for (const auto& s : run.segments()) {
    out << "\n    segment " << s.segment_name() << ": total " << s.total_members() << ", to_add "
        << s.to_add() << ", to_update " << s.to_update() << ", to_remove " << s.to_remove()
        << ", unchanged " << s.unchanged() << " | added " << s.added() << ", updated "
        << s.updated() << ", removed " << s.removed() << ", rejected " << s.rejected()
        << ", retryable " << s.retryable();
  }
  return out.str();
}

v1::SegmentProgress Progress(const v1::Run& run) {
  return run.segments_size() > 0 ? run.segments(0) : v1::SegmentProgress();
}

// ---------------------------------------------------------------- the report

struct Row {
  std::string figure;
  std::string value;
  std::string target;
  std::string verdict;  // PASS, MISS, or "" (information only).
};

std::string Fixed(double v, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << v;
  return out.str();
}

std::string Thousands(double v) {
  std::string digits = std::to_string(static_cast<long long>(std::llround(v)));
  std::string out;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (n > 0 && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

// CPU microseconds per profile, e.g. "4.20".
std::string PerProfileUs(double cpu_seconds, std::int64_t profiles) {
  return profiles > 0 ? Fixed(cpu_seconds * 1e6 / static_cast<double>(profiles), 2) : "-";
}

// Bytes the store takes on disk: all files of the data directory, and (from SQLite's
// dbstat table) the pages of the snapshot chunks and of the delivered state.
struct StoreBytes {
  std::int64_t files = 0;
  std::int64_t snapshots = 0;
  std::int64_t delivered = 0;
};

StoreBytes MeasureStore(const std::string& data_dir) {
  StoreBytes out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir)) {
    if (entry.is_regular_file()) out.files += static_cast<std::int64_t>(entry.file_size());
  }
  sqlite3* db = nullptr;
  const std::string path = data_dir + "/exportd.db";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10'000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name", -1, &stmt,
                           nullptr) == SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        std::string name = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        std::int64_t size = sqlite3_column_int64(stmt, 1);
        if (name.rfind("segment_chunks", 0) == 0) out.snapshots += size;
        if (name.rfind("delivered", 0) == 0) out.delivered += size;
      }
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

std::string Verdict(bool pass) { return pass ? "PASS" : "MISS"; }

std::string Table(const std::vector<Row>& rows) {
  size_t w[3] = {6, 5, 6};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.figure.size());
    w[1] = std::max(w[1], r.value.size());
    w[2] = std::max(w[2], r.target.size());
  }
  std::ostringstream out;
  auto line = [&](const std::string& a, const std::string& b, const std::string& c,
                  const std::string& d) {
    out << "| " << std::left << std::setw(static_cast<int>(w[0])) << a << " | " << std::right
        << std::setw(static_cast<int>(w[1])) << b << " | " << std::left
        << std::setw(static_cast<int>(w[2])) << c << " | " << std::setw(7) << d << " |\n";
  };
  line("figure", "value", "target", "verdict");
  out << "|" << std::string(w[0] + 2, '-') << "|" << std::string(w[1] + 1, '-') << ":|"
      << std::string(w[2] + 2, '-') << "|" << std::string(9, '-') << "|\n";
  for (const auto& r : rows) line(r.figure, r.value, r.target, r.verdict);
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseFlags(argc, argv, o)) return 2;
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Machine machine = DescribeMachine();
  std::vector<Row> rows;
  std::vector<std::string> notes;

  const char* tmpdir = std::getenv("TMPDIR");
  const std::string base = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
  CheckDiskSpace(base, o);
  std::string dir_template = base + "/export_bench.XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) Fail("mkdtemp in " + base + " failed");
  const std::string dir = dir_template;
  const std::string data_dir = dir + "/data";
  std::filesystem::create_directories(data_dir);
  std::cout << "export_bench: " << Thousands(static_cast<double>(o.profiles))
            << " profiles; working in " << dir << (o.keep ? " (kept)" : "") << "\n"
            << "machine: " << machine.nproc << " CPUs, " << machine.model << ", "
            << Fixed(machine.mem_gib, 1) << " GiB, load average " << machine.load_start << "\n"
            << std::flush;

  int sandbox_port = 0;
  const bool lean = o.sandbox_lean == "true" || (o.sandbox_lean == "auto" && o.profiles > 10'000'000);
  auto sandbox = StartSandbox(o, dir, "sandbox", {"--lean", lean ? "true" : "false"}, &sandbox_port);
  std::vector<std::string> exportd_argv = {o.exportd,       "--listen",     "127.0.0.1:0",
                                           "--data-dir",    data_dir,       "--plugin-dir",
                                           o.plugin_dir};
  if (!o.store.empty()) {
    exportd_argv.push_back("--store");
    exportd_argv.push_back(o.store);
  }
  exportd_argv.insert(exportd_argv.end(), o.exportd_args.begin(), o.exportd_args.end());
  Child exportd("exportd", exportd_argv, dir + "/exportd.log");
  const int exportd_port = exportd.WaitForPort(60);
  std::string token = ReadFile(data_dir + "/admin.token");
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) Fail("no admin token in " + data_dir + "/admin.token");
  std::cout << "sandbox on 127.0.0.1:" << sandbox_port << ", exportd on 127.0.0.1:"
            << exportd_port << "\n"
            << std::flush;
  Client client(exportd_port, token);

  // ---- Phase 1: upload N profiles.
  const std::string segment = "bench-segment";
  client.CreateSegment(segment);
  double upload_cpu = 0;
  double cpu0 = exportd.CpuSeconds();
  double upload_s = client.Upload(
      segment, o.profiles, o.chunk_rows,
      [](std::int64_t i, v1::MemberRow* row) { FillRow(i, !InvalidEmail(i), false, row); },
      &upload_cpu);
  double upload_exportd_cpu = exportd.CpuSeconds() - cpu0;
  double upload_rate = static_cast<double>(o.profiles) / upload_s;
  std::cout << "upload: " << Fixed(upload_s, 2) << " s, " << Thousands(upload_rate)
            << " profiles/s (exportd CPU " << Fixed(upload_exportd_cpu, 2)
            << " s, bench client CPU " << Fixed(upload_cpu, 2) << " s)\n"
            << std::flush;
  rows.push_back({"upload " + Thousands(static_cast<double>(o.profiles)) + " profiles (profiles/s)",
                  Thousands(upload_rate), ">= 300,000", Verdict(upload_rate >= 300'000)});
  rows.push_back({"  upload wall time / exportd CPU (s)",
                  Fixed(upload_s, 2) + " / " + Fixed(upload_exportd_cpu, 2), "", ""});
  rows.push_back({"  upload exportd CPU per profile (us)", PerProfileUs(upload_exportd_cpu, o.profiles),
                  "", ""});

  // ---- Phase 2: first run, everything.
  client.CreateConnection("bench-sandbox", sandbox_port, 0);
  client.CreateExport("bench-export", "bench-sandbox", segment);
  SandboxCounts before = ReadStats(sandbox_port);
  cpu0 = exportd.CpuSeconds();
  double sandbox_cpu0 = sandbox->CpuSeconds();
  double first_s = 0;
  v1::Run first = client.RunAndWait("bench-export", false, &first_s);
  double first_exportd_cpu = exportd.CpuSeconds() - cpu0;
  double first_sandbox_cpu = sandbox->CpuSeconds() - sandbox_cpu0;
  SandboxCounts first_counts = Minus(ReadStats(sandbox_port), before);
  std::int64_t hwm_first_kb = exportd.StatusKb("VmHWM");
  std::cout << "first run: " << Fixed(first_s, 2) << " s (server " << Fixed(ServerSeconds(first), 2)
            << " s), exportd CPU " << Fixed(first_exportd_cpu, 2) << " s, sandbox CPU "
            << Fixed(first_sandbox_cpu, 2) << " s, " << first_counts.subscribe_ok
            << " subscribe requests, " << first_counts.subscribe_records << " records\n  "
            << Describe(first) << "\n"
            << std::flush;
  const std::int64_t invalid = CountInvalid(o.profiles);
  const std::int64_t valid = o.profiles - invalid;
  {
    bool ok = Succeeded(first);
    double rate = static_cast<double>(o.profiles) / first_s;
    rows.push_back({"first run, end to end (s)", Fixed(first_s, 2),
                    "<= " + Fixed(10.0 * static_cast<double>(o.profiles) / 1e6, 1) +
                        " (10 s per 1M)",
                    Verdict(ok && first_s <= 10.0 * static_cast<double>(o.profiles) / 1e6)});
    rows.push_back({"  first run (profiles/s)", Thousands(rate), ">= 100,000", Verdict(ok && rate >= 100'000)});
    rows.push_back({"  first run exportd / sandbox CPU (s)",
                    Fixed(first_exportd_cpu, 2) + " / " + Fixed(first_sandbox_cpu, 2), "", ""});
    rows.push_back({"  first run exportd CPU per profile (us)",
                    PerProfileUs(first_exportd_cpu, o.profiles), "", ""});
    auto p = Progress(first);
    std::int64_t members = ListMemberCount(sandbox_port, segment);
    bool exact = ok && p.added() == valid && p.rejected() == invalid &&
                 first_counts.subscribe_records == valid && members == valid;
    rows.push_back({"  first run added / rejected; list members",
                    std::to_string(p.added()) + " / " + std::to_string(p.rejected()) + "; " +
                        std::to_string(members),
                    std::to_string(valid) + " / " + std::to_string(invalid) + "; " +
                        std::to_string(valid),
                    Verdict(exact)});
    std::int64_t want_requests = (valid + kBatchSize - 1) / kBatchSize;
    rows.push_back({"  first run subscribe requests", std::to_string(first_counts.subscribe_ok),
                    "~" + std::to_string(want_requests) + " (valid/batch)",
                    Verdict(first_counts.subscribe_ok <= (o.profiles + kBatchSize - 1) / kBatchSize &&
                            first_counts.subscribe_other == 0)});
    if (!ok) notes.push_back("first run did not succeed: " + Describe(first));
  }

  // ---- Phase 3: 1% churn, re-upload, incremental run.
  const Churn churn = PlanChurn(o.profiles, o.changed_percent);
  const std::int64_t n2 = o.profiles - churn.leaves + churn.joins;
  double upload2_cpu = 0;
  // Snapshot 2 in order: the members of snapshot 1 minus the leavers, then the joiners.
  double upload2_s = client.Upload(
      segment, n2, o.chunk_rows,
      [&](std::int64_t k, v1::MemberRow* row) {
        // Map position k to a member index, skipping leavers (index % period == 1).
        if (k < o.profiles - churn.leaves) {
          // Position k among non-leavers: each full period holds period-1 of them.
          std::int64_t per = churn.period - 1;
          std::int64_t block = k / per, offset = k % per;
          std::int64_t index = block * churn.period + (offset >= 1 ? offset + 1 : offset);
          FillRow(index, !InvalidEmail(index), index % churn.period == 2, row);
        } else {
          std::int64_t index = o.profiles + (k - (o.profiles - churn.leaves));
          FillRow(index, true, false, row);
        }
      },
      &upload2_cpu);
  std::cout << "second upload (" << Thousands(static_cast<double>(n2)) << " profiles): "
            << Fixed(upload2_s, 2) << " s; churn: " << churn.joins << " join, " << churn.leaves
            << " leave, " << churn.changes << " change\n"
            << std::flush;
  before = ReadStats(sandbox_port);
  cpu0 = exportd.CpuSeconds();
  sandbox_cpu0 = sandbox->CpuSeconds();
  double incr_s = 0;
  v1::Run incr = client.RunAndWait("bench-export", false, &incr_s);
  double incr_exportd_cpu = exportd.CpuSeconds() - cpu0;
  double incr_sandbox_cpu = sandbox->CpuSeconds() - sandbox_cpu0;
  SandboxCounts incr_counts = Minus(ReadStats(sandbox_port), before);
  std::cout << "incremental run: " << Fixed(incr_s, 2) << " s (server "
            << Fixed(ServerSeconds(incr), 2) << " s), exportd CPU " << Fixed(incr_exportd_cpu, 2)
            << " s, " << incr_counts.subscribe_ok << " subscribe + " << incr_counts.unsubscribe_ok
            << " unsubscribe requests, " << incr_counts.subscribe_records << " + "
            << incr_counts.unsubscribe_records << " records\n  " << Describe(incr) << "\n"
            << std::flush;
  {
    bool ok = Succeeded(incr);
    auto p = Progress(incr);
    const std::int64_t changed = churn.joins + churn.leaves + churn.changes;
    rows.push_back({"second upload " + Thousands(static_cast<double>(n2)) + " profiles (profiles/s)",
                    Thousands(static_cast<double>(n2) / upload2_s), ">= 300,000",
                    Verdict(static_cast<double>(n2) / upload2_s >= 300'000)});
    rows.push_back({"incremental run, " + Thousands(static_cast<double>(changed)) +
                        " changed (s)",
                    Fixed(incr_s, 2), "<= 2.0", Verdict(ok && incr_s <= 2.0)});
    rows.push_back({"  incremental exportd / sandbox CPU (s)",
                    Fixed(incr_exportd_cpu, 2) + " / " + Fixed(incr_sandbox_cpu, 2), "", ""});
    rows.push_back({"  incremental exportd CPU per profile (us)",
                    PerProfileUs(incr_exportd_cpu, n2), "", ""});
    const double share = first_exportd_cpu > 0 ? 100.0 * incr_exportd_cpu / first_exportd_cpu : 0;
    rows.push_back({"  incremental / first run exportd CPU (%)", Fixed(share, 1), "<= 5",
                    Verdict(share <= 5)});
    const std::int64_t sub_ideal = (churn.joins + churn.changes + kBatchSize - 1) / kBatchSize;
    const std::int64_t unsub_ideal = (churn.leaves + kBatchSize - 1) / kBatchSize;
    rows.push_back({"  incremental subscribe requests", std::to_string(incr_counts.subscribe_ok),
                    "~" + std::to_string(sub_ideal) + " (ceil(changed/batch))",
                    Verdict(incr_counts.subscribe_ok <= sub_ideal + 1)});
    rows.push_back({"  incremental unsubscribe requests",
                    std::to_string(incr_counts.unsubscribe_ok),
                    "~" + std::to_string(unsub_ideal) + " (ceil(left/batch))",
                    Verdict(incr_counts.unsubscribe_ok <= unsub_ideal + 1)});
    bool only_changed = ok && p.added() == churn.joins && p.updated() == churn.changes &&
                        p.removed() == churn.leaves &&
                        incr_counts.subscribe_records == churn.joins + churn.changes &&
                        incr_counts.unsubscribe_records == churn.leaves;
    rows.push_back({"  added / updated / removed (sent records)",
                    std::to_string(p.added()) + " / " + std::to_string(p.updated()) + " / " +
                        std::to_string(p.removed()) + " (" +
                        std::to_string(incr_counts.subscribe_records) + "+" +
                        std::to_string(incr_counts.unsubscribe_records) + ")",
                    std::to_string(churn.joins) + " / " + std::to_string(churn.changes) + " / " +
                        std::to_string(churn.leaves) + " (" +
                        std::to_string(churn.joins + churn.changes) + "+" +
                        std::to_string(churn.leaves) + ")",
                    Verdict(only_changed)});
    rows.push_back({"  to_add (incl. rejected retried) / unchanged",
                    std::to_string(p.to_add()) + " / " + std::to_string(p.unchanged()),
                    std::to_string(churn.joins) + "+" + std::to_string(invalid) + " / " +
                        std::to_string(valid - churn.leaves - churn.changes),
                    ""});
    std::int64_t members = ListMemberCount(sandbox_port, segment);
    std::int64_t want_members = valid - churn.leaves + churn.joins;
    rows.push_back({"  list members after run 2", std::to_string(members),
                    std::to_string(want_members), Verdict(members == want_members)});
    if (!ok) notes.push_back("incremental run did not succeed: " + Describe(incr));
  }
  std::int64_t hwm_kb = exportd.StatusKb("VmHWM");
  {
    // What the store holds on disk for this segment, per member.
    StoreBytes bytes = MeasureStore(data_dir);
    const double members = static_cast<double>(n2);
    rows.push_back({"store on disk, bytes per member (total)",
                    Fixed(static_cast<double>(bytes.files) / members, 0), "", ""});
    rows.push_back({"  snapshot / delivered state bytes per member",
                    Fixed(static_cast<double>(bytes.snapshots) / members, 0) + " / " +
                        Fixed(static_cast<double>(bytes.delivered) / members, 0),
                    "", ""});
  }

  // ---- Phase 4: a rate-limited sandbox, full sync of a smaller segment.
  if (!o.skip_throttle) {
    int slow_port = 0;
    auto slow = StartSandbox(o, dir, "sandbox-throttled",
                             {"--rate-limit", "subscribe=" + std::to_string(o.rate) + "/s"},
                             &slow_port);
    const std::string small = "bench-throttled";
    client.CreateSegment(small);
    double cpu_unused = 0;
    client.Upload(
        small, o.throttle_profiles, o.chunk_rows,
        [](std::int64_t i, v1::MemberRow* row) { FillRow(i, !InvalidEmail(i), false, row); },
        &cpu_unused);
    client.CreateConnection("bench-throttled", slow_port, 0);
    client.CreateExport("bench-throttled", "bench-throttled", small);
    before = ReadStats(slow_port);
    double slow_s = 0;
    v1::Run throttled = client.RunAndWait("bench-throttled", true, &slow_s);
    SandboxCounts slow_counts = Minus(ReadStats(slow_port), before);
    const double ideal =
        static_cast<double>(o.throttle_profiles) / (static_cast<double>(kBatchSize) * o.rate);
    const double ratio = slow_s / ideal;
    std::cout << "throttled run: " << Fixed(slow_s, 2) << " s, ideal " << Fixed(ideal, 2) << " s, "
              << slow_counts.subscribe_ok << " subscribe requests answered 200, "
              << slow_counts.subscribe_429 << " answered 429\n  " << Describe(throttled) << "\n"
              << std::flush;
    bool ok = Succeeded(throttled);
    rows.push_back({"throttled run " + Thousands(static_cast<double>(o.throttle_profiles)) + " @ " +
                        std::to_string(o.rate) + " req/s (x ideal)",
                    Fixed(ratio, 2), "<= 1.10", Verdict(ok && ratio <= 1.10)});
    rows.push_back({"  throttled time / ideal N/(batch*R) (s)",
                    Fixed(slow_s, 2) + " / " + Fixed(ideal, 2), "", ""});
    rows.push_back({"  throttled subscribe 200 / 429", std::to_string(slow_counts.subscribe_ok) +
                        " / " + std::to_string(slow_counts.subscribe_429), "", ""});
    if (!ok) notes.push_back("throttled run did not succeed: " + Describe(throttled));
    slow->Stop();
    hwm_kb = exportd.StatusKb("VmHWM");
  }

  // ---- Phase 5: M exports x K members on N replicas of one PostgreSQL.
  if (o.replicas > 0) {
    std::vector<std::unique_ptr<Child>> more;
    for (int r = 1; r < o.replicas; ++r) {
      std::vector<std::string> argv = exportd_argv;
      argv.push_back("--replica-id");
      argv.push_back("bench-" + std::to_string(r + 1));
      more.push_back(std::make_unique<Child>("exportd-" + std::to_string(r + 1), argv,
                                             dir + "/exportd-" + std::to_string(r + 1) + ".log"));
      more.back()->WaitForPort(60);
    }
    for (int m = 0; m < o.replica_exports; ++m) {
      const std::string name = "replicas-" + std::to_string(m);
      client.CreateSegment(name);
      double ignored = 0;
      client.Upload(
          name, o.replica_profiles, o.chunk_rows,
          [m](std::int64_t i, v1::MemberRow* row) {
            FillRow(i + (m + 1) * 100'000'000LL, !InvalidEmail(i), false, row);
          },
          &ignored);
      client.CreateExport(name, "bench-sandbox", name);
    }
    std::vector<double> cpu_start = {exportd.CpuSeconds()};
    for (const auto& c : more) cpu_start.push_back(c->CpuSeconds());
    auto start = Clock::now();
    std::vector<std::string> ids;
    for (int m = 0; m < o.replica_exports; ++m) ids.push_back(client.Trigger("replicas-" + std::to_string(m)));
    std::map<std::string, int> by_replica;
    bool ok = true;
    std::int64_t added = 0;
    for (const std::string& id : ids) {
      v1::Run run = client.Wait(id);
      ok = ok && Succeeded(run);
      ++by_replica[run.replica()];
      for (const auto& seg : run.segments()) added += seg.added();
    }
    const double wall = Seconds(Clock::now() - start);
    double cpu = exportd.CpuSeconds() - cpu_start[0];
    for (size_t r = 0; r < more.size(); ++r) cpu += more[r]->CpuSeconds() - cpu_start[r + 1];
    std::string spread;
    for (const auto& [replica, n] : by_replica) {
      spread += (spread.empty() ? "" : ", ") + replica + ": " + std::to_string(n);
    }
    const double total = static_cast<double>(o.replica_exports) * static_cast<double>(o.replica_profiles);
    rows.push_back({std::to_string(o.replica_exports) + " exports x " +
                        Thousands(static_cast<double>(o.replica_profiles)) + " on " +
                        std::to_string(o.replicas) + " replica(s) (profiles/s)",
                    Thousands(total / wall), "", ok ? "ok" : "FAILED"});
    rows.push_back({"  wall time / exportd CPU, all replicas (s)",
                    Fixed(wall, 2) + " / " + Fixed(cpu, 2), "", ""});
    rows.push_back({"  runs per replica; records added", spread + "; " + Thousands(static_cast<double>(added)), "", ""});
    std::cout << "replicas: " << o.replica_exports << " runs on " << o.replicas << " replica(s) in "
              << Fixed(wall, 2) << " s (" << spread << ")\n";
    if (!ok) notes.push_back("a run of the replicas phase did not succeed");
    for (auto& c : more) c->Stop();
  }

  // Memory set by buffers and batches, not by the segment: 256 MB up to 10M, 512 MB beyond.
  const std::int64_t rss_target_mb = o.profiles > 10'000'000 ? 512 : 256;
  rows.push_back({"exportd peak RSS, VmHWM (MB)", Fixed(static_cast<double>(hwm_kb) / 1024.0, 0),
                  "<= " + std::to_string(rss_target_mb),
                  Verdict(hwm_kb > 0 && hwm_kb <= rss_target_mb * 1024)});
  rows.push_back({"  VmHWM after the first run (MB)",
                  Fixed(static_cast<double>(hwm_first_kb) / 1024.0, 0), "", ""});
  machine.load_end = LoadAverage();

  std::ostringstream report;
  report << Table(rows);
  std::ostringstream machine_text;
  machine_text << machine.nproc << " CPUs (" << machine.model << "), "
               << Fixed(machine.mem_gib, 1) << " GiB RAM, Linux " << machine.kernel
               << "; load average at start " << machine.load_start << ", at end "
               << machine.load_end;
  std::cout << "\n" << report.str() << "\nmachine: " << machine_text.str() << "\n";
  for (const auto& note : notes) std::cout << "note: " << note << "\n";

  if (o.write_results) {
    std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    std::ostringstream cmd;
    for (int i = 0; i < argc; ++i) cmd << (i ? " " : "") << argv[i];
    std::ofstream out(o.results);
    out << "# export_bench results\n\n"
        << "Written by `export_bench --write-results` (see README.md for what each figure "
           "means). A shared or loaded machine understates exportd: read the load average "
           "and the CPU-second rows with the wall-clock ones.\n\n"
        << "- date: " << date << "\n"
        << "- command: `" << cmd.str() << "`\n"
        << "- build type: " << EXPORT_BENCH_BUILD_TYPE << "\n"
        << "- machine: " << machine_text.str() << "\n"
        << "- profiles: " << o.profiles << " (2% invalid emails), churn " << o.changed_percent
        << "%, throttled segment " << o.throttle_profiles << " at " << o.rate
        << " subscribe requests/s, batch " << kBatchSize << "\n\n"
        << report.str();
    if (!notes.empty()) {
      out << "\n";
      for (const auto& note : notes) out << "- note: " << note << "\n";
    }
    std::cout << "wrote " << o.results << "\n";
  }

  exportd.Stop();
  sandbox->Stop();
  if (!o.keep) std::filesystem::remove_all(dir);
  curl_global_cleanup();
  return 0;
}
