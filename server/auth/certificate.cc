#include "server/auth/certificate.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace exportd::auth {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};

std::string Subject(X509* cert) {
  std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
  if (out == nullptr) return "";
  if (X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
    return "";
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : "";
}

bool IsPrintableAscii(absl::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> CertificateIdentities(absl::string_view pem) {
  std::vector<std::string> identities;
  std::unique_ptr<BIO, BioFree> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (in == nullptr) return identities;
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return identities;
  if (std::string subject = Subject(cert.get()); !subject.empty()) {
    identities.push_back(absl::StrCat(kSubjectIdentityPrefix, subject));
  }
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return identities;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    const ASN1_IA5STRING* text = nullptr;
    switch (name->type) {
      case GEN_DNS:
        text = name->d.dNSName;
        break;
      case GEN_URI:
        text = name->d.uniformResourceIdentifier;
        break;
      case GEN_EMAIL:
        text = name->d.rfc822Name;
        break;
      default:
        continue;
    }
    const char* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(text));
    const int length = ASN1_STRING_length(text);
    if (data == nullptr || length <= 0) continue;
    absl::string_view value(data, static_cast<size_t>(length));
    // "good.example\0.evil.example" must not pass for either name, and no
    // certificate may put a line break into a log that shows its identities.
    if (!IsPrintableAscii(value)) continue;
    identities.push_back(absl::StrCat(kSanIdentityPrefix, value));
  }
  return identities;
}

}  // namespace exportd::auth
