// Certificates for TLS tests, made at test time by the openssl command in a
// directory the test owns: a CA, server certificates for 127.0.0.1, ::1 and
// localhost, and client certificates with a chosen subject and SANs. Keys are
// EC P-256, unencrypted PEM; certificates are valid for two days.
//
//   exportd::sdk::testing::TempDir dir;
//   auto ca = TestCa::Create(dir.path(), "team");
//   ASSERT_TRUE(ca.ok()) << ca.status();
//   auto server = ca->Issue("server", ServerCertificate());
//   auto client = ca->Issue("reporting", ClientCertificate("/CN=reporting/O=Data",
//                                                          {"URI:spiffe://team/reporting"}));
//   options.tls_cert_file = server->cert_file; ...
//   auto served = ServedCertificate(port, dir.path());  // "subject=CN = exportd ..."
#ifndef EXPORTD_TESTS_SUPPORT_TEST_CERTIFICATES_H_
#define EXPORTD_TESTS_SUPPORT_TEST_CERTIFICATES_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace exportd::testing {

// The openssl command the helpers run.
inline constexpr char kOpenSsl[] = "/usr/bin/openssl";

// What to put in a certificate.
struct CertificateSpec {
  // An openssl -subj string, e.g. "/CN=exportd" or "/CN=reporting/O=Data team".
  std::string subject = "/CN=exportd";
  // subjectAltName entries, e.g. "IP:127.0.0.1", "DNS:localhost", "URI:spiffe://team/x".
  std::vector<std::string> alt_names;
  // extendedKeyUsage: "serverAuth" or "clientAuth".
  std::string key_usage = "serverAuth";
};

// A server certificate valid for 127.0.0.1, ::1 and localhost.
CertificateSpec ServerCertificate(const std::string& subject = "/CN=exportd");
// A client certificate with `subject` and `alt_names`.
CertificateSpec ClientCertificate(const std::string& subject,
                                  std::vector<std::string> alt_names = {});

// A certificate and its key, as files, and the PEM text of the certificate.
struct IssuedCertificate {
  std::string cert_file;
  std::string key_file;
  std::string cert_pem;
  std::string key_pem;
  // The serial number as openssl prints it, e.g. "5F3A...".
  std::string serial;
};

class TestCa {
 public:
  // Makes a self-signed CA, "<dir>/<name>-ca.pem" and "<dir>/<name>-ca.key",
  // with the subject "/CN=<name> test CA".
  static absl::StatusOr<TestCa> Create(const std::filesystem::path& dir, const std::string& name);

  const std::string& cert_file() const { return cert_file_; }
  const std::string& cert_pem() const { return cert_pem_; }

  // Issues "<dir>/<name>.pem" and "<dir>/<name>.key" (replacing files of that
  // name), each with a fresh random serial number.
  absl::StatusOr<IssuedCertificate> Issue(const std::string& name,
                                          const CertificateSpec& spec) const;

 private:
  TestCa(std::filesystem::path dir, std::string cert_file, std::string key_file,
         std::string cert_pem)
      : dir_(std::move(dir)),
        cert_file_(std::move(cert_file)),
        key_file_(std::move(key_file)),
        cert_pem_(std::move(cert_pem)) {}

  std::filesystem::path dir_;
  std::string cert_file_;
  std::string key_file_;
  std::string cert_pem_;
};

// Runs `argv` to completion, its output to `log_path` (replaced); an error
// with the output unless it exits 0.
absl::Status RunToCompletion(std::vector<std::string> argv, const std::string& log_path);

// The whole of a file, or NOT_FOUND.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// The subject and serial number ("subject=...\nserial=...") of the
// certificate a TLS server on 127.0.0.1:`port` presents, read with
// `openssl s_client` from a new connection. Scratch files go to `dir`.
absl::StatusOr<std::string> ServedCertificate(int port, const std::filesystem::path& dir);

}  // namespace exportd::testing

#endif  // EXPORTD_TESTS_SUPPORT_TEST_CERTIFICATES_H_
