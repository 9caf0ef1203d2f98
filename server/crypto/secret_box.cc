#include "server/crypto/secret_box.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace exportd::crypto {
namespace {

// What CheckValue() authenticates; changing it changes every check value.
constexpr absl::string_view kCheckLabel = "exportd master key check v1";
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

}  // namespace

absl::StatusOr<std::unique_ptr<SecretBox>> SecretBox::FromKey(absl::string_view key) {
  if (key.size() != kKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("master key must be ", kKeyBytes, " bytes, got ", key.size()));
  }
  return std::unique_ptr<SecretBox>(new SecretBox(std::string(key)));
}

absl::StatusOr<std::unique_ptr<SecretBox>> SecretBox::Load(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("master key file '", path, "' does not exist"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read master key file '", path, "': ", std::strerror(errno)));
  }
  // A key file is 64 hex characters and maybe a newline; read a little more
  // so that a longer file is refused rather than cut.
  std::string text(4 * kKeyBytes, '\0');
  ssize_t n = ::read(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read master key file '", path, "': ", std::strerror(err)));
  }
  text.resize(static_cast<size_t>(n));
  std::string hex(absl::StripAsciiWhitespace(text));
  if (hex.size() != 2 * kKeyBytes ||
      hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return absl::FailedPreconditionError(absl::StrCat(
        "master key file '", path, "' must hold ", 2 * kKeyBytes,
        " hexadecimal characters; restore the original file or point --master-key-file at it"));
  }
  return FromKey(absl::HexStringToBytes(hex));
}

absl::StatusOr<std::unique_ptr<SecretBox>> SecretBox::Create(const std::string& path) {
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) != 1) {
    return absl::InternalError("cannot draw random bytes for the master key");
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create master key file '", path, "': ", std::strerror(errno)));
  }
  std::string hex = absl::BytesToHexString(key) + "\n";
  bool ok = ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
  ok = (::fsync(fd) == 0) && ok;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write master key file '", path, "'"));
  return FromKey(key);
}

absl::StatusOr<std::string> SecretBox::Seal(absl::string_view plaintext,
                                            absl::string_view aad) const {
  std::string out(1 + kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  bytes[0] = kBoundFormat;
  unsigned char* nonce = bytes + 1;
  unsigned char* cipher = nonce + kNonceBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return absl::InternalError("RAND_bytes failed");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
  const auto* aad_bytes = reinterpret_cast<const unsigned char*>(aad.data());
  const auto* plain = reinterpret_cast<const unsigned char*>(plaintext.data());
  unsigned char* tag = cipher + plaintext.size();
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad_bytes, static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &len, plain, static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag) != 1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  return out;
}

absl::StatusOr<std::string> SecretBox::Open(absl::string_view sealed, absl::string_view aad) const {
  const unsigned char format = Format(sealed);
  if (sealed.size() < 1 + kNonceBytes + kTagBytes ||
      (format != kUnboundFormat && format != kBoundFormat)) {
    return absl::DataLossError("sealed secret is malformed");
  }
  // Format 1 was sealed without additional data.
  if (format == kUnboundFormat) aad = absl::string_view();
  const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  const unsigned char* nonce = bytes + 1;
  const unsigned char* cipher = nonce + kNonceBytes;
  size_t cipher_len = sealed.size() - 1 - kNonceBytes - kTagBytes;
  std::string out(cipher_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
  const auto* aad_bytes = reinterpret_cast<const unsigned char*>(aad.data());
  auto* plain = reinterpret_cast<unsigned char*>(out.data());
  std::string tag(reinterpret_cast<const char*>(cipher + cipher_len), kTagBytes);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad_bytes, static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain, &len, cipher, static_cast<int>(cipher_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), plain + len, &len) != 1) {
    return absl::DataLossError(
        "cannot decrypt a stored secret: the master key differs from the one it was sealed with, "
        "or the value was sealed for another place");
  }
  return out;
}

unsigned char SecretBox::Format(absl::string_view sealed) {
  return sealed.empty() ? 0 : static_cast<unsigned char>(sealed[0]);
}

std::string SecretBox::CheckValue() const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(kCheckLabel.data()), kCheckLabel.size(), mac,
       &mac_len);
  absl::string_view bytes(reinterpret_cast<const char*>(mac), mac_len);
  return absl::StrCat("hmac-sha256:", absl::BytesToHexString(bytes));
}

bool SecretBox::MatchesCheckValue(absl::string_view check_value) const {
  const std::string mine = CheckValue();
  return check_value.size() == mine.size() &&
         CRYPTO_memcmp(check_value.data(), mine.data(), mine.size()) == 0;
}

}  // namespace exportd::crypto
