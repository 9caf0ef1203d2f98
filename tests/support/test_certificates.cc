#include "tests/support/test_certificates.h"

#include <fstream>
#include <iterator>
#include <random>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "tests/support/child_process.h"

namespace exportd::testing {
namespace {

constexpr char kDays[] = "2";

absl::Status WriteWholeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// A serial number no other certificate of the test run has.
std::string RandomSerial() {
  std::random_device random;
  std::uniform_int_distribution<uint32_t> word;
  // A leading 1 keeps the number positive and of a fixed width.
  return absl::StrCat("0x1", absl::Hex(word(random), absl::kZeroPad8),
                      absl::Hex(word(random), absl::kZeroPad8));
}

}  // namespace

CertificateSpec ServerCertificate(const std::string& subject) {
  CertificateSpec spec;
  spec.subject = subject;
  spec.alt_names = {"IP:127.0.0.1", "IP:::1", "DNS:localhost"};
  spec.key_usage = "serverAuth";
  return spec;
}

CertificateSpec ClientCertificate(const std::string& subject, std::vector<std::string> alt_names) {
  CertificateSpec spec;
  spec.subject = subject;
  spec.alt_names = std::move(alt_names);
  spec.key_usage = "clientAuth";
  return spec;
}

absl::Status RunToCompletion(std::vector<std::string> argv, const std::string& log_path) {
  std::string command = absl::StrJoin(argv, " ");
  std::error_code ignored;
  std::filesystem::remove(log_path, ignored);  // the output of this run only
  ChildProcess child(std::move(argv), log_path);
  int status = child.Wait();
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("'", command, "' exited with status ", status, ":\n", child.Log()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

absl::StatusOr<TestCa> TestCa::Create(const std::filesystem::path& dir, const std::string& name) {
  const std::string cert = (dir / (name + "-ca.pem")).string();
  const std::string key = (dir / (name + "-ca.key")).string();
  absl::Status made = RunToCompletion({kOpenSsl,
                                       "req",
                                       "-x509",
                                       "-newkey",
                                       "ec",
                                       "-pkeyopt",
                                       "ec_paramgen_curve:P-256",
                                       "-nodes",
                                       "-keyout",
                                       key,
                                       "-out",
                                       cert,
                                       "-days",
                                       kDays,
                                       "-subj",
                                       absl::StrCat("/CN=", name, " test CA"),
                                       "-set_serial",
                                       RandomSerial(),
                                       "-addext",
                                       "basicConstraints=critical,CA:TRUE",
                                       "-addext",
                                       "keyUsage=critical,keyCertSign,cRLSign"},
                                      (dir / (name + "-ca.log")).string());
  if (!made.ok()) return made;
  absl::StatusOr<std::string> pem = ReadWholeFile(cert);
  if (!pem.ok()) return pem.status();
  return TestCa(dir, cert, key, *std::move(pem));
}

absl::StatusOr<IssuedCertificate> TestCa::Issue(const std::string& name,
                                                const CertificateSpec& spec) const {
  IssuedCertificate issued;
  issued.cert_file = (dir_ / (name + ".pem")).string();
  issued.key_file = (dir_ / (name + ".key")).string();
  const std::string csr = (dir_ / (name + ".csr")).string();
  const std::string extensions = (dir_ / (name + ".ext")).string();
  const std::string log = (dir_ / (name + ".log")).string();
  std::string ext =
      absl::StrCat("basicConstraints=CA:FALSE\nextendedKeyUsage=", spec.key_usage, "\n");
  if (!spec.alt_names.empty()) {
    absl::StrAppend(&ext, "subjectAltName=", absl::StrJoin(spec.alt_names, ","), "\n");
  }
  absl::Status status = WriteWholeFile(extensions, ext);
  if (status.ok()) {
    status = RunToCompletion(
        {kOpenSsl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", issued.key_file, "-out", csr, "-subj", spec.subject},
        log);
  }
  if (status.ok()) {
    status = RunToCompletion({kOpenSsl, "x509", "-req", "-in", csr, "-CA", cert_file_, "-CAkey",
                              key_file_, "-set_serial", RandomSerial(), "-days", kDays, "-extfile",
                              extensions, "-out", issued.cert_file},
                             log);
  }
  const std::string serial_file = (dir_ / (name + ".serial")).string();
  if (status.ok()) {
    status = RunToCompletion({kOpenSsl, "x509", "-in", issued.cert_file, "-noout", "-serial"},
                             serial_file);
  }
  if (!status.ok()) return status;
  absl::StatusOr<std::string> cert = ReadWholeFile(issued.cert_file);
  absl::StatusOr<std::string> key = ReadWholeFile(issued.key_file);
  absl::StatusOr<std::string> serial = ReadWholeFile(serial_file);
  if (!cert.ok()) return cert.status();
  if (!key.ok()) return key.status();
  if (!serial.ok()) return serial.status();
  issued.cert_pem = *std::move(cert);
  issued.key_pem = *std::move(key);
  issued.serial = std::string(absl::StripSuffix(absl::StripPrefix(*serial, "serial="), "\n"));
  return issued;
}

absl::StatusOr<std::string> ServedCertificate(int port, const std::filesystem::path& dir) {
  static int calls = 0;
  const std::string base = (dir / ("served-" + std::to_string(++calls))).string();
  // s_client prints the peer's certificate as PEM; it ends at stdin's EOF.
  absl::Status status =
      RunToCompletion({kOpenSsl, "s_client", "-connect", absl::StrCat("127.0.0.1:", port),
                       "-servername", "localhost", "-alpn", "h2"},
                      base + ".log");
  absl::StatusOr<std::string> log = ReadWholeFile(base + ".log");
  if (!log.ok()) return log.status();
  const size_t begin = log->find("-----BEGIN CERTIFICATE-----");
  const std::string end_marker = "-----END CERTIFICATE-----";
  const size_t end = log->find(end_marker, begin == std::string::npos ? 0 : begin);
  if (begin == std::string::npos || end == std::string::npos) {
    return absl::UnavailableError(
        absl::StrCat("no certificate from 127.0.0.1:", port, " (", status.message(), "):\n", *log));
  }
  status =
      WriteWholeFile(base + ".pem", log->substr(begin, end + end_marker.size() - begin) + "\n");
  if (status.ok()) {
    status = RunToCompletion(
        {kOpenSsl, "x509", "-in", base + ".pem", "-noout", "-subject", "-serial"}, base + ".txt");
  }
  if (!status.ok()) return status;
  return ReadWholeFile(base + ".txt");
}

}  // namespace exportd::testing
