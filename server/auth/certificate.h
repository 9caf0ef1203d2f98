// The identities of a client certificate, in the form a tokens file maps to a
// principal (`cert:<identity> <principal> <role>`):
//
//   subject=<the subject, RFC 2253>   e.g. subject=CN=exporter,O=Team
//   san=<a DNS, URI or email SAN>     e.g. san=spiffe://team/exporter
//
// The subject is written as `openssl x509 -noout -subject -nameopt RFC2253`
// prints it. The TLS layer turns the verified peer certificate (gRPC's
// `x509_pem_cert` auth property) into identities and asks the Authenticator:
//
//   std::vector<std::string> ids = CertificateIdentities(pem);
//   absl::StatusOr<Principal> who = authenticator.AuthenticateCertificate(ids);
#ifndef EXPORTD_SERVER_AUTH_CERTIFICATE_H_
#define EXPORTD_SERVER_AUTH_CERTIFICATE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace exportd::auth {

inline constexpr absl::string_view kSubjectIdentityPrefix = "subject=";
inline constexpr absl::string_view kSanIdentityPrefix = "san=";

// The first certificate in `pem`: its subject first (when not empty), then
// its DNS, URI and email subject alternative names in certificate order.
// Other SAN types (IP addresses, directory names) are left out, and so is a
// name holding a NUL or another character that is not printable ASCII. Empty when `pem` holds no
// certificate. It does not verify the certificate: the TLS handshake did.
std::vector<std::string> CertificateIdentities(absl::string_view pem);

}  // namespace exportd::auth

#endif  // EXPORTD_SERVER_AUTH_CERTIFICATE_H_
