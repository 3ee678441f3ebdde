#include "rpc/security.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace tandem::rpc {
namespace {

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::string> read_file_text(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error("{} {}: cannot read the file", what, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ApiKeys api_keys_of(const std::vector<std::string>& keys) {
  ApiKeys out;
  for (const auto& k : keys) out.digests.push_back(sha256(k));
  return out;
}

Result<ApiKeys> load_api_keys(const std::string& path) {
  auto text = read_file_text(path, "--api-key-file");
  if (!text) return text.error();
  std::vector<std::string> keys;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    const std::string_view k = trim(line);
    if (k.empty() || k.front() == '#') continue;
    keys.emplace_back(k);
  }
  if (keys.empty()) return make_error("--api-key-file {}: no key in the file (one key per line)", path);
  return api_keys_of(keys);
}

bool key_accepted(const ApiKeys& keys, std::string_view presented) {
  if (!keys.enabled()) return true;
  const auto d = sha256(presented);
  bool ok = false;
  for (const auto& k : keys.digests) ok |= CRYPTO_memcmp(k.data(), d.data(), d.size()) == 0;  // no early exit
  return ok;
}

std::optional<std::string_view> bearer_token(std::string_view a) {
  a = trim(a);
  constexpr std::string_view kScheme = "bearer ";
  if (a.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != kScheme[i]) return std::nullopt;
  const std::string_view t = trim(a.substr(kScheme.size()));
  if (t.empty()) return std::nullopt;
  return t;
}

Result<TlsFiles> load_tls(const std::string& cert, const std::string& key, const std::string& client_ca) {
  TlsFiles t;
  if (cert.empty() != key.empty())
    return make_error("--tls-cert and --tls-key go together (got only {})", cert.empty() ? "--tls-key" : "--tls-cert");
  if (!client_ca.empty() && cert.empty())
    return make_error("--tls-client-ca {} needs --tls-cert and --tls-key (mutual TLS is TLS first)", client_ca);
  if (cert.empty()) return t;
  t.cert_path = cert;
  t.key_path = key;
  t.client_ca_path = client_ca;
  auto c = read_file_text(cert, "--tls-cert");
  if (!c) return c.error();
  auto k = read_file_text(key, "--tls-key");
  if (!k) return k.error();
  if (c->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    return make_error("--tls-cert {}: not a PEM certificate", cert);
  if (k->find("PRIVATE KEY-----") == std::string::npos) return make_error("--tls-key {}: not a PEM private key", key);
  t.cert_pem = std::move(*c);
  t.key_pem = std::move(*k);
  if (!client_ca.empty()) {
    auto ca = read_file_text(client_ca, "--tls-client-ca");
    if (!ca) return ca.error();
    if (ca->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      return make_error("--tls-client-ca {}: not a PEM certificate", client_ca);
    t.client_ca_pem = std::move(*ca);
  }
  return t;
}

bool is_loopback_listen(const std::string& hp) {
  const size_t colon = hp.rfind(':');
  std::string host = colon == std::string::npos ? hp : hp.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string exposure_warning(const char* what, const std::string& listen, bool tls, bool keys) {
  if (is_loopback_listen(listen) || (tls && keys)) return {};
  return fmt::format("{} listens on {}, beyond this machine, {}: anyone who can reach it can {} (set {})", what,
                     listen, !tls && !keys ? "in plaintext and without API keys" : !tls ? "in plaintext" : "without API keys",
                     !keys ? "use it" : "read the traffic", !tls && !keys ? "--tls-cert/--tls-key and --api-key-file"
                                                          : !tls ? "--tls-cert/--tls-key" : "--api-key-file");
}

}  // namespace tandem::rpc
