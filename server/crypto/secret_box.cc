#include "server/crypto/secret_box.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace exportd::crypto {
namespace {

constexpr unsigned char kFormatVersion = 1;
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

absl::StatusOr<std::unique_ptr<SecretBox>> SecretBox::LoadOrCreate(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string hex(absl::StripAsciiWhitespace(text.str()));
    if (hex.size() != 2 * kKeyBytes ||
        hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          "master key file '", path, "' must hold ", 2 * kKeyBytes,
          " hexadecimal characters; restore the original file or point --master-key-file at it"));
    }
    return FromKey(absl::HexStringToBytes(hex));
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) != 1) {
    return absl::InternalError("cannot draw random bytes for the master key");
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
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

absl::StatusOr<std::string> SecretBox::Seal(absl::string_view plaintext) const {
  std::string out(1 + kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  bytes[0] = kFormatVersion;
  unsigned char* nonce = bytes + 1;
  unsigned char* cipher = nonce + kNonceBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return absl::InternalError("RAND_bytes failed");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          cipher + plaintext.size()) != 1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  return out;
}

absl::StatusOr<std::string> SecretBox::Open(absl::string_view sealed) const {
  if (sealed.size() < 1 + kNonceBytes + kTagBytes ||
      static_cast<unsigned char>(sealed[0]) != kFormatVersion) {
    return absl::DataLossError("sealed secret is malformed");
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  const unsigned char* nonce = bytes + 1;
  const unsigned char* cipher = nonce + kNonceBytes;
  size_t cipher_len = sealed.size() - 1 - kNonceBytes - kTagBytes;
  std::string out(cipher_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
  auto* plain = reinterpret_cast<unsigned char*>(out.data());
  std::string tag(reinterpret_cast<const char*>(cipher + cipher_len), kTagBytes);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain, &len, cipher, static_cast<int>(cipher_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), plain + len, &len) != 1) {
    return absl::DataLossError(
        "cannot decrypt a stored secret: the master key differs from the one it was sealed with");
  }
  return out;
}

}  // namespace exportd::crypto
